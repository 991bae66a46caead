//! The whole lifecycle over HTTP against the running server: warehouses, items, adjustments,
//! allocations through every state, and every query reading the projections afterwards.

mod common;

use common::Server;
use serde_json::json;

const ITEM_FIELDS: &str = "id sku productId warehouseId onHand allocated available reorderThreshold
    reorderQuantity lowStock active version updatedAt";

#[tokio::test]
async fn warehouse_item_adjustment_and_allocation_lifecycle() {
    let server = Server::start().await;

    // Warehouse: create, update, list.
    let warehouse = server.create_warehouse("ams1").await;
    let updated = server
        .data(
            "mutation($id: ID!) { warehouseUpdate(input: {id: $id, name: \"Amsterdam Dock\", address: \"Dock 4\"}) {
                warehouse { name address code version active } userErrors { code } } }",
            json!({ "id": warehouse }),
        )
        .await;
    assert_eq!(
        updated["warehouseUpdate"]["warehouse"],
        json!({"name": "Amsterdam Dock", "address": "Dock 4", "code": "AMS1", "version": 2, "active": true})
    );

    // Item: create with 20 on hand, threshold 5.
    let item = server.create_item(&warehouse, "SKU-1", 20, 5).await;

    // Adjust: receive 10, sell 3 (with a reference).
    let received = server.adjust(&item, 10, "RECEIVED").await;
    assert_eq!(received["inventoryItem"]["onHand"], 30);
    let sold = server
        .data(
            "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: -3, reason: SOLD, reference: \"till-7\", expectedVersion: 2}) {
                inventoryItem { onHand version } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        sold["inventoryAdjust"]["inventoryItem"],
        json!({"onHand": 27, "version": 3})
    );

    // A stale expectedVersion is refused and changes nothing.
    let stale = server
        .data(
            "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: -1, reason: SOLD, expectedVersion: 2}) {
                inventoryItem { onHand } userErrors { code field } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        stale["inventoryAdjust"],
        json!({"inventoryItem": null, "userErrors": [{"code": "VERSION_CONFLICT", "field": ["input", "expectedVersion"]}]})
    );

    // Allocate 7: created → confirmed → fulfilled.
    let created = server
        .data(
            "mutation($i: ID!) { allocationCreate(input: {orderId: \"order-1\", itemId: $i, quantity: 7}) {
                allocation { id status quantity orderId itemId warehouseId version }
                inventoryItem { onHand allocated available } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await["allocationCreate"]
        .clone();
    let allocation = created["allocation"]["id"]
        .as_str()
        .expect("allocation id")
        .to_owned();
    assert_eq!(created["allocation"]["status"], "CREATED");
    assert_eq!(created["allocation"]["warehouseId"], json!(warehouse));
    assert_eq!(
        created["inventoryItem"],
        json!({"onHand": 27, "allocated": 7, "available": 20})
    );

    // Fulfilling before confirming is an invalid transition.
    let early = server
        .data(
            "mutation($a: ID!) { allocationFulfill(input: {id: $a}) { allocation { status } userErrors { code } } }",
            json!({ "a": allocation }),
        )
        .await;
    assert_eq!(
        early["allocationFulfill"]["userErrors"][0]["code"],
        "INVALID_STATE_TRANSITION"
    );

    let confirmed = server
        .data(
            "mutation($a: ID!) { allocationConfirm(input: {id: $a}) { allocation { status version } userErrors { code } } }",
            json!({ "a": allocation }),
        )
        .await;
    assert_eq!(
        confirmed["allocationConfirm"]["allocation"],
        json!({"status": "CONFIRMED", "version": 2})
    );
    let fulfilled = server
        .data(
            "mutation($a: ID!) { allocationFulfill(input: {id: $a}) { allocation { status }
                inventoryItem { onHand allocated available } userErrors { code } } }",
            json!({ "a": allocation }),
        )
        .await;
    assert_eq!(
        fulfilled["allocationFulfill"]["allocation"]["status"],
        "FULFILLED"
    );
    assert_eq!(
        fulfilled["allocationFulfill"]["inventoryItem"],
        json!({"onHand": 20, "allocated": 0, "available": 20})
    );

    // A second allocation, cancelled: its stock comes back.
    let second = server
        .data(
            "mutation($i: ID!) { allocationCreate(input: {orderId: \"order-2\", itemId: $i, quantity: 16}) {
                allocation { id } inventoryItem { available lowStock } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await["allocationCreate"]
        .clone();
    assert_eq!(
        second["inventoryItem"],
        json!({"available": 4, "lowStock": true})
    );
    let second_id = second["allocation"]["id"].as_str().expect("id").to_owned();
    let cancelled = server
        .data(
            "mutation($a: ID!) { allocationCancel(input: {id: $a, reason: \"order withdrawn\"}) {
                allocation { status cancelReason } inventoryItem { available lowStock } userErrors { code } } }",
            json!({ "a": second_id }),
        )
        .await;
    assert_eq!(
        cancelled["allocationCancel"],
        json!({"allocation": {"status": "CANCELLED", "cancelReason": "order withdrawn"},
               "inventoryItem": {"available": 20, "lowStock": false}, "userErrors": []})
    );
    let again = server
        .data(
            "mutation($a: ID!) { allocationCancel(input: {id: $a, reason: \"again\"}) { userErrors { code } } }",
            json!({ "a": second_id }),
        )
        .await;
    assert_eq!(
        again["allocationCancel"]["userErrors"][0]["code"],
        "INVALID_STATE_TRANSITION"
    );

    // Reorder settings, then deactivation.
    let settings = server
        .data(
            "mutation($i: ID!) { inventoryItemUpdateReorderSettings(input: {itemId: $i, reorderThreshold: 8, reorderQuantity: 40}) {
                inventoryItem { reorderThreshold reorderQuantity } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        settings["inventoryItemUpdateReorderSettings"]["inventoryItem"],
        json!({"reorderThreshold": 8, "reorderQuantity": 40})
    );

    // Queries read the projections: poll until they caught up with the last mutation.
    let query = format!(
        "query($i: ID!, $w: ID!, $a: ID!) {{
            inventoryItem(id: $i) {{ {ITEM_FIELDS} }}
            inventoryItemBySku(warehouseId: $w, sku: \"SKU-1\") {{ id }}
            inventoryItems(warehouseId: $w, first: 10) {{ edges {{ cursor node {{ id }} }} pageInfo {{ hasNextPage }} }}
            allocation(id: $a) {{ status quantity }}
            allocations(orderId: \"order-1\") {{ edges {{ node {{ id status }} }} }}
            cancelled: allocations(itemId: $i, status: CANCELLED) {{ edges {{ node {{ orderId }} }} }}
            inventoryHistory(itemId: $i) {{ edges {{ node {{ reason delta quantityAfter reference actor }} }} }}
            stockMovementReport(warehouseId: $w) {{ rows {{ sku day }} totals {{ received removed allocated released fulfilled net }} }}
            events(aggregateId: $i) {{ edges {{ node {{ eventType sequenceNumber schemaVersion metadata {{ actor correlationId }} }} }} }}
            warehouses {{ edges {{ node {{ id name }} }} }}
        }}"
    );
    let data = server
        .eventually(
            &query,
            json!({ "i": item, "w": warehouse, "a": allocation }),
            |d| d["inventoryItem"]["reorderThreshold"] == 8,
        )
        .await;
    let current = &data["inventoryItem"];
    assert_eq!(current["onHand"], 20);
    assert_eq!(current["allocated"], 0);
    assert_eq!(current["available"], 20);
    assert_eq!(current["lowStock"], false);
    assert_eq!(current["active"], true);
    assert_eq!(data["inventoryItemBySku"]["id"], json!(item));
    assert_eq!(
        data["inventoryItems"]["edges"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        data["allocation"],
        json!({"status": "FULFILLED", "quantity": 7})
    );
    assert_eq!(
        data["allocations"]["edges"][0]["node"]["status"],
        "FULFILLED"
    );
    assert_eq!(
        data["cancelled"]["edges"],
        json!([{"node": {"orderId": "order-2"}}])
    );
    let history: Vec<_> = data["inventoryHistory"]["edges"]
        .as_array()
        .expect("history")
        .iter()
        .map(|e| {
            (
                e["node"]["reason"].clone(),
                e["node"]["delta"].clone(),
                e["node"]["quantityAfter"].clone(),
            )
        })
        .collect();
    assert_eq!(
        history,
        vec![
            (json!("initial"), json!(20), json!(20)),
            (json!("received"), json!(10), json!(30)),
            (json!("sold"), json!(-3), json!(27)),
            (json!("allocation_fulfilled"), json!(-7), json!(20)),
        ]
    );
    assert_eq!(
        data["inventoryHistory"]["edges"][2]["node"]["reference"],
        "till-7"
    );
    assert_eq!(
        data["stockMovementReport"]["totals"],
        json!({"received": 30, "removed": 3, "allocated": 23, "released": 16, "fulfilled": 7, "net": 20})
    );
    let types: Vec<_> = data["events"]["edges"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            e["node"]["eventType"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types,
        [
            "InventoryItemCreated",
            "StockLevelChanged",
            "StockLevelChanged",
            "StockAllocated",
            "StockLevelChanged",
            "StockAllocated",
            "LowStockThresholdReached",
            "StockDeallocated",
            "ReorderSettingsChanged",
        ]
    );

    // Deactivation: the item takes no more stock or allocations; the warehouse no more items.
    let deactivated = server
        .data(
            "mutation($i: ID!) { inventoryItemDeactivate(input: {itemId: $i, reason: \"discontinued\"}) {
                inventoryItem { active } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        deactivated["inventoryItemDeactivate"]["inventoryItem"]["active"],
        false
    );
    assert_eq!(
        server.adjust(&item, 1, "RECEIVED").await["userErrors"][0]["code"],
        "INACTIVE"
    );
    server
        .data(
            "mutation($w: ID!) { warehouseDeactivate(input: {id: $w, reason: \"closed\"}) { userErrors { code } } }",
            json!({ "w": warehouse }),
        )
        .await;
    let refused = server
        .data(
            "mutation($w: ID!) { inventoryItemCreate(input: {warehouseId: $w, sku: \"NEW\", productId: \"P\"}) {
                inventoryItem { id } userErrors { code field } } }",
            json!({ "w": warehouse }),
        )
        .await;
    assert_eq!(
        refused["inventoryItemCreate"]["userErrors"],
        json!([{"code": "INACTIVE", "field": ["input", "warehouseId"]}])
    );

    // Point in time: the item as of version 2 (after receiving 10), rebuilt from its events.
    let past = server
        .data(
            "query($i: ID!, $a: ID!) { inventoryItemAsOf(id: $i, version: 2) { onHand version active }
                allocationAsOf(id: $a, version: 1) { status } }",
            json!({ "i": item, "a": allocation }),
        )
        .await;
    assert_eq!(
        past["inventoryItemAsOf"],
        json!({"onHand": 30, "version": 2, "active": true})
    );
    assert_eq!(past["allocationAsOf"]["status"], "CREATED");

    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn the_same_idempotency_key_applies_once_and_returns_the_first_result() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("IDEM").await;
    let item = server.create_item(&warehouse, "SKU-1", 10, 0).await;
    let adjust = "mutation($i: ID!, $d: Int!) { inventoryAdjust(input: {itemId: $i, delta: $d, reason: RECEIVED, idempotencyKey: \"delivery-42\"}) {
        inventoryItem { onHand version updatedAt } userErrors { code field } } }";
    let first = server.data(adjust, json!({ "i": item, "d": 5 })).await;
    let second = server.data(adjust, json!({ "i": item, "d": 5 })).await;
    assert_eq!(first, second);
    assert_eq!(first["inventoryAdjust"]["inventoryItem"]["onHand"], 15);

    // Concurrent retries of one key: still applied once.
    let concurrent = "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 1, reason: RECEIVED, idempotencyKey: \"burst\"}) {
        inventoryItem { onHand version } userErrors { code } } }";
    let results =
        futures::future::join_all((0..16).map(|_| server.data(concurrent, json!({ "i": item }))))
            .await;
    assert!(
        results.iter().all(|r| *r == results[0]),
        "all retries see the first result: {results:?}"
    );

    // The same key with a different input is refused.
    let reused = server.data(adjust, json!({ "i": item, "d": 6 })).await;
    assert_eq!(
        reused["inventoryAdjust"]["userErrors"][0]["field"],
        json!(["input", "idempotencyKey"])
    );

    let events = server
        .data(
            "query($i: ID!) { events(aggregateId: $i) { edges { node { eventType } } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        events["events"]["edges"].as_array().map(Vec::len),
        Some(3),
        "created + 2 adjustments"
    );

    // Creating with a key twice returns the same new warehouse rather than a second one.
    let create = "mutation { warehouseCreate(input: {name: \"W\", code: \"ONCE\", idempotencyKey: \"w-1\"}) { warehouse { id } userErrors { code } } }";
    let a = server.data(create, json!({})).await;
    let b = server.data(create, json!({})).await;
    assert_eq!(a, b);
    assert_eq!(a["warehouseCreate"]["userErrors"], json!([]));
}

#[tokio::test]
async fn pagination_walks_every_item_once() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("PAGE").await;
    let mut created = Vec::new();
    for n in 0..7 {
        created.push(
            server
                .create_item(
                    &warehouse,
                    &format!("SKU-{n}"),
                    10,
                    if n % 2 == 0 { 20 } else { 0 },
                )
                .await,
        );
    }
    let query = "query($w: ID!, $after: String, $low: Boolean!) { inventoryItems(warehouseId: $w, first: 3, after: $after, lowStockOnly: $low) {
        edges { cursor node { id } } pageInfo { hasNextPage endCursor } } }";
    let mut seen = Vec::new();
    let mut after = serde_json::Value::Null;
    let _ = server
        .eventually(
            query,
            json!({ "w": warehouse, "after": null, "low": false }),
            |_| true,
        )
        .await;
    // Wait until every item is projected.
    server
        .eventually(
            "query($w: ID!) { inventoryItems(warehouseId: $w, first: 100) { edges { node { id } } } }",
            json!({ "w": warehouse }),
            |d| d["inventoryItems"]["edges"].as_array().map(Vec::len) == Some(7),
        )
        .await;
    loop {
        let page = server
            .data(
                query,
                json!({ "w": warehouse, "after": after, "low": false }),
            )
            .await;
        let connection = &page["inventoryItems"];
        for edge in connection["edges"].as_array().expect("edges") {
            seen.push(edge["node"]["id"].as_str().expect("id").to_owned());
        }
        if connection["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, created);
    let low = server
        .data(query, json!({ "w": warehouse, "after": null, "low": true }))
        .await;
    assert_eq!(
        low["inventoryItems"]["edges"].as_array().map(Vec::len),
        Some(3)
    );
    assert_eq!(low["inventoryItems"]["pageInfo"]["hasNextPage"], true);
}
