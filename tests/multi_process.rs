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
