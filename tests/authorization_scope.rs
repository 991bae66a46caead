//! Warehouse scoping of reads: a viewer scoped to one warehouse reads nothing outside it (ids,
//! lists, pages, refetches and links alike; an operator scoped elsewhere likewise), and one
//! scoped to two pages through both, merged in creation order with exact counts. Harness:
//! `authz`.

mod authz;
mod common;

use authz::{code, id, ids, known, start, story};
use inventory_service::auth::Role;
use serde_json::{json, Value};
use uuid::Uuid;

#[tokio::test]
async fn a_scoped_viewer_reads_nothing_outside_its_warehouse() {
    let app = start().await;
    let s = story(&app).await;
    let viewer = known("viewer-a", Role::Viewer, &[s.a]);

    // Lists hold only A's rows, and count only them.
    let data = app
        .data(
            &viewer,
            "{ inventoryItems { totalCount edges { node { id warehouseId warehouse { id } } } } \
               warehouses { totalCount edges { node { id } } } \
               allocations { totalCount edges { node { id item { id } warehouse { id } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1, s.a2]);
    assert_eq!(data["inventoryItems"]["totalCount"], 2);
    assert_eq!(ids(&data["warehouses"]), vec![s.a]);
    assert_eq!(data["warehouses"]["totalCount"], 1);
    assert_eq!(ids(&data["allocations"]), vec![s.alloc_a]);
    assert_eq!(data["allocations"]["totalCount"], 1);

    // Pages walk only A's items, both ways.
    let data = app
        .data(
            &viewer,
            "{ inventoryItems(first: 1) { edges { node { id } } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1]);
    let cursor = data["inventoryItems"]["pageInfo"]["endCursor"].clone();
    let data = app
        .data(
            &viewer,
            "query($after: String) { inventoryItems(first: 1, after: $after) { edges { node { id } } pageInfo { hasNextPage } } }",
            json!({ "after": cursor }),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a2]);
    assert_eq!(data["inventoryItems"]["pageInfo"]["hasNextPage"], false);
    let data = app
        .data(
            &viewer,
            "{ inventoryItems(last: 5) { edges { node { id } } pageInfo { hasPreviousPage } } }",
            json!({}),
        )
        .await;
    assert_eq!(ids(&data["inventoryItems"]), vec![s.a1, s.a2]);

    // Relay refetch answers null for B's objects.
    let data = app
        .data(
            &viewer,
            "query($a: ID!, $b: ID!, $w: ID!) { node(id: $b) { id } nodes(ids: [$a, $b, $w]) { id } }",
            json!({ "a": s.a1, "b": s.b1, "w": s.b }),
        )
        .await;
    assert_eq!(data["node"], Value::Null);
    assert_eq!(
        data["nodes"],
        json!([{ "id": s.a1.to_string() }, null, null])
    );

    // Everything naming B or what lies in it is FORBIDDEN, and says nothing more.
    let refused = [
        ("query($b: ID!) { inventoryItem(id: $b) { id } }", s.b1),
        ("query($b: ID!) { warehouse(id: $b) { id } }", s.b),
        ("query($b: ID!) { allocation(id: $b) { id } }", s.alloc_b),
        (
            "query($b: ID!) { inventoryItemBySku(warehouseId: $b, sku: \"B-1\") { id } }",
            s.b,
        ),
        (
            "query($b: ID!) { inventoryItems(warehouseId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { allocations(itemId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { allocations(warehouseId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { inventoryHistory(itemId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { stockMovementReport(warehouseId: $b) { totals { net } } }",
            s.b,
        ),
        (
            "query($b: ID!) { stockMovementReport(itemId: $b) { totals { net } } }",
            s.b1,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.b1,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.b,
        ),
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            s.alloc_b,
        ),
        (
            "query($b: ID!) { inventoryItemAsOf(id: $b, version: 1) { id } }",
            s.b1,
        ),
        (
            "query($b: ID!) { allocationAsOf(id: $b, version: 1) { id } }",
            s.alloc_b,
        ),
        (
            "query($b: ID!) { warehouseAsOf(id: $b, version: 1) { id } }",
            s.b,
        ),
        // Nothing stored under this id: a scoped caller reads only what is known to be its own.
        (
            "query($b: ID!) { events(aggregateId: $b) { totalCount } }",
            Uuid::now_v7(),
        ),
    ];
    for (query, id) in refused {
        let response = app.run(&viewer, query, json!({ "b": id })).await;
        assert_eq!(
            code(&response).as_deref(),
            Some("FORBIDDEN"),
            "{query} for {id}: {:?}",
            response.errors
        );
        let data = response.data.into_json().expect("json");
        assert!(
            data.as_object()
                .is_none_or(|o| o.values().all(Value::is_null)),
            "{query}: {data}"
        );
    }

    // The same questions about A are answered.
    let data = app
        .data(
            &viewer,
            "query($a: ID!, $w: ID!, $al: ID!) { inventoryItem(id: $a) { id } \
             inventoryHistory(itemId: $a) { totalCount } events(aggregateId: $al) { totalCount } \
             allocations(itemId: $a) { totalCount } inventoryItemAsOf(id: $a, version: 1) { id } \
             stockMovementReport(warehouseId: $w) { rows { warehouseId } } }",
            json!({ "a": s.a1, "w": s.a, "al": s.alloc_a }),
        )
        .await;
    assert_eq!(id(&data["inventoryItem"]["id"]), s.a1);
    assert_eq!(data["allocations"]["totalCount"], 1);
    assert_eq!(data["events"]["totalCount"], 1);
    assert!(data["inventoryHistory"]["totalCount"].as_u64() >= Some(1));

    // An operator scoped to B reads B's and is refused A's alike.
    let operator = known("operator-b", Role::Operator, &[s.b]);
    let data = app
        .data(
            &operator,
            "{ inventoryItems { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert!(ids(&data["inventoryItems"])
        .iter()
        .all(|i| *i != s.a1 && *i != s.a2));
    assert!(ids(&data["inventoryItems"]).contains(&s.b1));
    let response = app
        .run(
            &operator,
            "query($a: ID!) { inventoryItem(id: $a) { id } }",
            json!({ "a": s.a1 }),
        )
        .await;
    assert_eq!(code(&response).as_deref(), Some("FORBIDDEN"));
    app.service.stop().await;
}

/// A principal with several warehouses lists them all, merged in creation order, with exact
/// pages and counts.
#[tokio::test]
async fn a_viewer_of_two_warehouses_pages_through_both() {
    let app = start().await;
    let a = app.warehouse("A").await;
    let b = app.warehouse("B").await;
    let c = app.warehouse("C").await;
    let mut mine = Vec::new();
    for n in 0..4 {
        mine.push(app.item(a, &format!("A-{n}")).await);
        app.item(b, &format!("B-{n}")).await;
        mine.push(app.item(c, &format!("C-{n}")).await);
    }
    app.allocation(mine[0], "ORD-1").await;
    app.allocation(mine[1], "ORD-1").await;
    app.projected(12, 2).await;
    let viewer = known("viewer-ac", Role::Viewer, &[a, c]);

    let mut forward = Vec::new();
    let mut after = Value::Null;
    loop {
        let data = app
            .data(
                &viewer,
                "query($after: String) { inventoryItems(first: 3, after: $after) { totalCount \
                 edges { node { id } } pageInfo { hasNextPage endCursor } } }",
                json!({ "after": after }),
            )
            .await;
        let page = &data["inventoryItems"];
        assert_eq!(page["totalCount"], 8);
        forward.extend(ids(page));
        if page["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(forward, mine);

    let mut backward = Vec::new();
    let mut before = Value::Null;
    loop {
        let data = app
            .data(
                &viewer,
                "query($before: String) { inventoryItems(last: 3, before: $before) { \
                 edges { node { id } } pageInfo { hasPreviousPage startCursor } } }",
                json!({ "before": before }),
            )
            .await;
        let page = &data["inventoryItems"];
        let mut rows = ids(page);
        rows.extend(backward);
        backward = rows;
        if page["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = page["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(backward, mine);

    let data = app
        .data(
            &viewer,
            "{ warehouses { totalCount edges { node { id } } } \
               allocations(orderId: \"ORD-1\") { totalCount } }",
            json!({}),
        )
        .await;
    let mut both = vec![a, c];
    both.sort();
    assert_eq!(ids(&data["warehouses"]), both);
    assert_eq!(data["warehouses"]["totalCount"], 2);
    assert_eq!(data["allocations"]["totalCount"], 2);
    app.service.stop().await;
}
