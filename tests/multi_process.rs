//! Two service processes sharing one store write to the same item at once: no update is lost,
//! no stock is oversold, and the projections agree with the store.

mod common;

use common::Server;
use serde_json::json;
use std::sync::Arc;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_on_one_store_lose_no_update_and_never_oversell() {
    let temp = tempfile::tempdir().expect("temp dir");
    let first = Arc::new(Server::start_on(temp.path()).await);
    let second = Arc::new(Server::start_on(temp.path()).await);
    let warehouse = first.create_warehouse("SHARED").await;
    let item = first.create_item(&warehouse, "BOTH", 0, 0).await;

    // 2 × 15 concurrent +1 adjustments, half through each process.
    let tasks: Vec<_> = (0..30)
        .map(|n| {
            let server = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let item = item.clone();
            tokio::spawn(async move { server.adjust(&item, 1, "RECEIVED").await })
        })
        .collect();
    for task in tasks {
        let payload = task.await.expect("task");
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
    }
    let events = second
        .data(
            "query($i: ID!) { events(aggregateId: $i, first: 500) { edges { node { eventType } } } }",
            json!({ "i": item }),
        )
        .await;
    let changes = events["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .filter(|e| e["node"]["eventType"] == "StockLevelChanged")
        .count();
    assert_eq!(
        changes, 30,
        "every adjustment from both processes is stored once"
    );

    // 2 × 10 concurrent allocations of 1 unit against 12 on hand... minus the 30 received:
    // bring on-hand to exactly 12 first.
    first.adjust(&item, -18, "CORRECTION").await;
    let create = "mutation($i: ID!) { allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 1}) { allocation { id } userErrors { code } } }";
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let server = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let item = item.clone();
            tokio::spawn(async move { server.data(create, json!({ "i": item })).await })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        let data = task.await.expect("task");
        if data["allocationCreate"]["allocation"].is_object() {
            won += 1;
        } else {
            assert_eq!(
                data["allocationCreate"]["userErrors"][0]["code"],
                "INSUFFICIENT_STOCK"
            );
        }
    }
    assert_eq!(won, 12);
    for server in [&first, &second] {
        let data = server
            .eventually(
                "query($i: ID!) { inventoryItem(id: $i) { onHand allocated available } }",
                json!({ "i": item }),
                |d| d["inventoryItem"]["allocated"] == 12,
            )
            .await;
        assert_eq!(
            data["inventoryItem"],
            json!({"onHand": 12, "allocated": 12, "available": 0})
        );
    }
    assert_eq!(first.settle_and_verify().await, Vec::<String>::new());
}

/// Each process remembers the states it committed last and decides on them; when another
/// process moved an item on, a rule must still be judged on the stored state, not the
/// remembered one.
#[tokio::test(flavor = "multi_thread")]
async fn a_state_remembered_by_one_process_never_decides_against_another_processs_change() {
    let temp = tempfile::tempdir().expect("temp dir");
    let first = Server::start_on(temp.path()).await;
    let second = Server::start_on(temp.path()).await;
    let warehouse = first.create_warehouse("STALE").await;
    let item = first.create_item(&warehouse, "MOVED", 1, 0).await;
    // The first process now remembers the item with 0 on hand...
    let emptied = first.adjust(&item, -1, "DAMAGED").await;
    assert_eq!(emptied["inventoryItem"]["onHand"], 0);
    // ...and the second receives stock.
    let received = second.adjust(&item, 5, "RECEIVED").await;
    assert_eq!(received["inventoryItem"]["onHand"], 5, "{received}");

    // An allocation through the first process sees the 5 (not a stale 0)...
    let create =
        "mutation($i: ID!) { allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 3}) {
        allocation { id } inventoryItem { onHand allocated version } userErrors { code } } }";
    let allocated = first.data(create, json!({ "i": item })).await;
    assert_eq!(
        allocated["allocationCreate"]["userErrors"],
        json!([]),
        "{allocated}"
    );
    assert_eq!(
        allocated["allocationCreate"]["inventoryItem"],
        json!({"onHand": 5, "allocated": 3, "version": 5})
    );
    // ...and an adjustment through the second builds on the first's allocation.
    let adjusted = second.adjust(&item, -2, "DAMAGED").await;
    assert_eq!(adjusted["userErrors"], json!([]), "{adjusted}");
    assert_eq!(adjusted["inventoryItem"]["onHand"], 3);
    assert_eq!(adjusted["inventoryItem"]["allocated"], 3);
    // Nothing more may be removed from stock that is allocated.
    let refused = first.adjust(&item, -1, "DAMAGED").await;
    assert_eq!(
        refused["userErrors"][0]["code"], "INSUFFICIENT_STOCK",
        "{refused}"
    );
}
