//! Relay connections over HTTP: a list walked page by page yields every row once.

mod common;

use common::Server;
use serde_json::json;

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
