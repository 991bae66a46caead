//! Retried mutations: the same idempotency key applies once and returns the first result.

mod common;

use common::Server;
use serde_json::json;

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
