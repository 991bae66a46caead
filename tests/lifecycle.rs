//! The lifecycle over HTTP against the running server, one test per capability: warehouses,
//! stock adjustments with versions, allocations through every state, reorder settings and
//! deactivation, point-in-time reads, and every query reading the projections after the whole
//! story. Each test starts its own server and tells the part of the story it needs.

mod common;

use common::Server;
use serde_json::{json, Value};

const ITEM_FIELDS: &str = "id sku productId warehouseId onHand allocated available reorderThreshold
    reorderQuantity lowStock active version updatedAt";

/// The steps of the story, each one mutation; the tests assert on what they return.
mod story {
    use super::*;

    pub async fn update_warehouse(server: &Server, warehouse: &str) -> Value {
        server
            .data(
                "mutation($id: ID!) { warehouseUpdate(input: {id: $id, name: \"Amsterdam Dock\", address: \"Dock 4\"}) {
                    warehouse { name address code version active } userErrors { code } } }",
                json!({ "id": warehouse }),
            )
            .await
    }

    /// Sells 3 with a reference, expecting version 2.
    pub async fn sell(server: &Server, item: &str) -> Value {
        server
            .data(
                "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: -3, reason: SOLD, reference: \"till-7\", expectedVersion: 2}) {
                    inventoryItem { onHand version } userErrors { code } } }",
                json!({ "i": item }),
            )
            .await
    }

    /// Sells 1 expecting version 2, which is stale after `sell`.
    pub async fn sell_stale(server: &Server, item: &str) -> Value {
        server
            .data(
                "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: -1, reason: SOLD, expectedVersion: 2}) {
                    inventoryItem { onHand } userErrors { code field } } }",
                json!({ "i": item }),
            )
            .await
    }

    /// A warehouse with an item of 20 (threshold 5) that received 10 and sold 3: 27 on hand.
    pub async fn stocked_item(server: &Server) -> (String, String) {
        let warehouse = server.create_warehouse("ams1").await;
        let item = server.create_item(&warehouse, "SKU-1", 20, 5).await;
        assert_eq!(
            server.adjust(&item, 10, "RECEIVED").await["inventoryItem"]["onHand"],
            30
        );
        assert_eq!(
            sell(server, &item).await["inventoryAdjust"]["inventoryItem"]["onHand"],
            27
        );
        (warehouse, item)
    }

    /// `allocationCreate` of order-1 for 7.
    pub async fn allocate_seven(server: &Server, item: &str) -> Value {
        server
            .data(
                "mutation($i: ID!) { allocationCreate(input: {orderId: \"order-1\", itemId: $i, quantity: 7}) {
                    allocation { id status quantity orderId itemId warehouseId version }
                    inventoryItem { onHand allocated available } userErrors { code } } }",
                json!({ "i": item }),
            )
            .await["allocationCreate"]
            .clone()
    }

    pub async fn fulfill(server: &Server, allocation: &str) -> Value {
        server
            .data(
                "mutation($a: ID!) { allocationFulfill(input: {id: $a}) { allocation { status }
                    inventoryItem { onHand allocated available } userErrors { code } } }",
                json!({ "a": allocation }),
            )
            .await
    }

    pub async fn confirm(server: &Server, allocation: &str) -> Value {
        server
            .data(
                "mutation($a: ID!) { allocationConfirm(input: {id: $a}) { allocation { status version } userErrors { code } } }",
                json!({ "a": allocation }),
            )
            .await
    }

    /// `allocationCreate` of order-2 for 16.
    pub async fn allocate_sixteen(server: &Server, item: &str) -> Value {
        server
            .data(
                "mutation($i: ID!) { allocationCreate(input: {orderId: \"order-2\", itemId: $i, quantity: 16}) {
                    allocation { id } inventoryItem { available lowStock } userErrors { code } } }",
                json!({ "i": item }),
            )
            .await["allocationCreate"]
            .clone()
    }

    pub async fn cancel(server: &Server, allocation: &str, reason: &str) -> Value {
        server
            .data(
                "mutation($a: ID!, $r: String!) { allocationCancel(input: {id: $a, reason: $r}) {
                    allocation { status cancelReason } inventoryItem { available lowStock } userErrors { code } } }",
                json!({ "a": allocation, "r": reason }),
            )
            .await
    }

    pub async fn reorder_settings(server: &Server, item: &str) -> Value {
        server
            .data(
                "mutation($i: ID!) { inventoryItemUpdateReorderSettings(input: {itemId: $i, reorderThreshold: 8, reorderQuantity: 40}) {
                    inventoryItem { reorderThreshold reorderQuantity } userErrors { code } } }",
                json!({ "i": item }),
            )
            .await
    }

    pub fn id(allocation: &Value) -> String {
        allocation["allocation"]["id"]
            .as_str()
            .expect("allocation id")
            .to_owned()
    }

    /// The whole story up to the reorder settings: the stocked item, order-1 fulfilled, order-2
    /// cancelled. Returns the warehouse, the item and order-1's allocation.
    pub async fn told(server: &Server) -> (String, String, String) {
        let (warehouse, item) = stocked_item(server).await;
        let allocation = id(&allocate_seven(server, &item).await);
        assert_eq!(
            confirm(server, &allocation).await["allocationConfirm"]["userErrors"],
            json!([])
        );
        assert_eq!(
            fulfill(server, &allocation).await["allocationFulfill"]["userErrors"],
            json!([])
        );
        let second = id(&allocate_sixteen(server, &item).await);
        assert_eq!(
            cancel(server, &second, "order withdrawn").await["allocationCancel"]["userErrors"],
            json!([])
        );
        assert_eq!(
            reorder_settings(server, &item).await["inventoryItemUpdateReorderSettings"]
                ["userErrors"],
            json!([])
        );
        (warehouse, item, allocation)
    }
}

#[tokio::test]
async fn a_warehouse_is_created_updated_and_deactivated() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("ams1").await;
    let updated = story::update_warehouse(&server, &warehouse).await;
    assert_eq!(
        updated["warehouseUpdate"]["warehouse"],
        json!({"name": "Amsterdam Dock", "address": "Dock 4", "code": "AMS1", "version": 2, "active": true})
    );
    // Deactivated, it takes no more items.
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
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn stock_adjustments_honour_the_expected_version() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("ams1").await;
    // Item: create with 20 on hand, threshold 5; receive 10, sell 3 (with a reference).
    let item = server.create_item(&warehouse, "SKU-1", 20, 5).await;
    let received = server.adjust(&item, 10, "RECEIVED").await;
    assert_eq!(received["inventoryItem"]["onHand"], 30);
    let sold = story::sell(&server, &item).await;
    assert_eq!(
        sold["inventoryAdjust"]["inventoryItem"],
        json!({"onHand": 27, "version": 3})
    );
    // A stale expectedVersion is refused and changes nothing.
    let stale = story::sell_stale(&server, &item).await;
    assert_eq!(
        stale["inventoryAdjust"],
        json!({"inventoryItem": null, "userErrors": [{"code": "VERSION_CONFLICT", "field": ["input", "expectedVersion"]}]})
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_allocation_is_created_confirmed_and_fulfilled() {
    let server = Server::start().await;
    let (warehouse, item) = story::stocked_item(&server).await;
    // Allocate 7: created → confirmed → fulfilled.
    let created = story::allocate_seven(&server, &item).await;
    let allocation = story::id(&created);
    assert_eq!(created["allocation"]["status"], "CREATED");
    assert_eq!(created["allocation"]["warehouseId"], json!(warehouse));
    assert_eq!(
        created["inventoryItem"],
        json!({"onHand": 27, "allocated": 7, "available": 20})
    );
    // Fulfilling before confirming is an invalid transition.
    let early = story::fulfill(&server, &allocation).await;
    assert_eq!(
        early["allocationFulfill"]["userErrors"][0]["code"],
        "INVALID_STATE_TRANSITION"
    );
    let confirmed = story::confirm(&server, &allocation).await;
    assert_eq!(
        confirmed["allocationConfirm"]["allocation"],
        json!({"status": "CONFIRMED", "version": 2})
    );
    let fulfilled = story::fulfill(&server, &allocation).await;
    assert_eq!(
        fulfilled["allocationFulfill"]["allocation"]["status"],
        "FULFILLED"
    );
    assert_eq!(
        fulfilled["allocationFulfill"]["inventoryItem"],
        json!({"onHand": 20, "allocated": 0, "available": 20})
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_cancelled_allocation_gives_its_stock_back_once() {
    let server = Server::start().await;
    let (_, item) = story::stocked_item(&server).await;
    let first = story::id(&story::allocate_seven(&server, &item).await);
    story::confirm(&server, &first).await;
    story::fulfill(&server, &first).await;
    // A second allocation, cancelled: its stock comes back.
    let second = story::allocate_sixteen(&server, &item).await;
    assert_eq!(
        second["inventoryItem"],
        json!({"available": 4, "lowStock": true})
    );
    let second_id = story::id(&second);
    let cancelled = story::cancel(&server, &second_id, "order withdrawn").await;
    assert_eq!(
        cancelled["allocationCancel"],
        json!({"allocation": {"status": "CANCELLED", "cancelReason": "order withdrawn"},
               "inventoryItem": {"available": 20, "lowStock": false}, "userErrors": []})
    );
    let again = story::cancel(&server, &second_id, "again").await;
    assert_eq!(
        again["allocationCancel"]["userErrors"][0]["code"],
        "INVALID_STATE_TRANSITION"
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn reorder_settings_change_and_a_deactivated_item_takes_no_stock() {
    let server = Server::start().await;
    let (_, item) = story::stocked_item(&server).await;
    let settings = story::reorder_settings(&server, &item).await;
    assert_eq!(
        settings["inventoryItemUpdateReorderSettings"]["inventoryItem"],
        json!({"reorderThreshold": 8, "reorderQuantity": 40})
    );
    // Deactivation: the item takes no more stock or allocations.
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
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn every_query_reads_the_projections_of_the_whole_story() {
    let server = Server::start().await;
    let (warehouse, item, allocation) = story::told(&server).await;
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

    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn an_item_and_an_allocation_are_rebuilt_as_of_a_version() {
    let server = Server::start().await;
    let (_, item, allocation) = story::told(&server).await;
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
