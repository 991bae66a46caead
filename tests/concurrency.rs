//! Correctness under real concurrency against the running server: no oversell, no lost
//! update, SKU uniqueness under a race.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_allocations_never_oversell_ten_units() {
    let server = std::sync::Arc::new(Server::start().await);
    let warehouse = server.create_warehouse("RACE").await;
    let item = server.create_item(&warehouse, "HOT", 10, 2).await;
    let create = "mutation($i: ID!, $o: String!) { allocationCreate(input: {orderId: $o, itemId: $i, quantity: 1}) {
        allocation { id } userErrors { code } } }";
    let tasks: Vec<_> = (0..64)
        .map(|n| {
            let server = server.clone();
            let item = item.clone();
            tokio::spawn(async move {
                server
                    .gql(create, json!({ "i": item, "o": format!("order-{n}") }))
                    .await
            })
        })
        .collect();
    let mut succeeded = 0;
    let mut insufficient = 0;
    for task in tasks {
        let response = task.await.expect("task");
        assert!(
            response.get("errors").is_none(),
            "no infrastructure error reaches a client: {response}"
        );
        let payload = &response["data"]["allocationCreate"];
        if payload["allocation"].is_object() {
            succeeded += 1;
        } else {
            assert_eq!(
                payload["userErrors"][0]["code"], "INSUFFICIENT_STOCK",
                "{payload}"
            );
            insufficient += 1;
        }
    }
    assert_eq!((succeeded, insufficient), (10, 54));

    let data = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand allocated available version }
                 allocations(itemId: $i, first: 100) { edges { node { status } } } }",
            json!({ "i": item }),
            // On DynamoDB each projector writes on its own: wait for both read models.
            |d| {
                d["allocations"]["edges"].as_array().map(Vec::len) == Some(10)
                    && d["inventoryItem"]["version"] == 12
            },
        )
        .await;
    assert_eq!(data["inventoryItem"]["available"], 0);
    assert_eq!(data["inventoryItem"]["allocated"], 10);
    assert_eq!(data["inventoryItem"]["onHand"], 10);
    // 1 creation + 10 reservations + 1 low-stock alert (crossing 2 → at most once).
    assert_eq!(data["inventoryItem"]["version"], 12);
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adjustments_on_one_item_lose_no_update() {
    let server = std::sync::Arc::new(Server::start().await);
    let warehouse = server.create_warehouse("ADJ").await;
    let item = server.create_item(&warehouse, "HOT", 0, 0).await;
    let tasks: Vec<_> = (1..=40)
        .map(|n| {
            let server = server.clone();
            let item = item.clone();
            tokio::spawn(async move { server.adjust(&item, n, "RECEIVED").await })
        })
        .collect();
    for task in tasks {
        let payload = task.await.expect("task");
        assert_eq!(payload["userErrors"], json!([]), "{payload}");
    }
    let data = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand version } }",
            json!({ "i": item }),
            // Creation at 0 (at the threshold: one alert), then 40 adjustments.
            |d| d["inventoryItem"]["version"] == 42,
        )
        .await;
    assert_eq!(data["inventoryItem"]["onHand"], 40 * 41 / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sku_raced_by_many_creators_exists_once() {
    let server = std::sync::Arc::new(Server::start().await);
    let warehouse = server.create_warehouse("SKUS").await;
    let create = "mutation($w: ID!) { inventoryItemCreate(input: {warehouseId: $w, sku: \"ONE\", productId: \"P\"}) {
        inventoryItem { id } userErrors { code } } }";
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let server = server.clone();
            let warehouse = warehouse.clone();
            tokio::spawn(async move { server.data(create, json!({ "w": warehouse })).await })
        })
        .collect();
    let mut codes = Vec::new();
    for task in tasks {
        let data = task.await.expect("task");
        codes.push(
            data["inventoryItemCreate"]["userErrors"][0]["code"]
                .as_str()
                .unwrap_or("OK")
                .to_owned(),
        );
    }
    assert_eq!(codes.iter().filter(|c| *c == "OK").count(), 1, "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| *c == "DUPLICATE_SKU").count(),
        15,
        "{codes:?}"
    );
    // The same SKU in another warehouse is fine.
    let other = server.create_warehouse("SKUS2").await;
    server.create_item(&other, "ONE", 0, 0).await;
}
