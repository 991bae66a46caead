//! Bad input gets a clear error and changes nothing; nothing a client sends crashes the
//! process.

mod common;

use common::Server;
use serde_json::{json, Value};

/// The item's version and figures, read from the store's audit trail and the projection.
async fn snapshot(server: &Server, item: &str) -> Value {
    server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand allocated version } events(aggregateId: $i) { edges { cursor } } }",
            json!({ "i": item }),
            |_| true,
        )
        .await
}

#[tokio::test]
async fn each_bad_mutation_is_a_user_error_and_changes_nothing() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("BAD").await;
    let item = server.create_item(&warehouse, "SKU-1", 10, 0).await;
    let before = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { version } }",
            json!({ "i": item }),
            |d| d["inventoryItem"]["version"] == 1,
        )
        .await;
    assert_eq!(before["inventoryItem"]["version"], 1);
    let before = snapshot(&server, &item).await;
    let unknown = "0190b3c2-0000-7000-8000-000000000000";
    let big = "x".repeat(100_000);

    // (mutation, variables, expected code, expected field)
    let cases: Vec<(&str, Value, &str, Option<&str>)> = vec![
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: 0, reason: CORRECTION}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("delta")),
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: -11, reason: SOLD}) { userErrors { code field message } } }",
            json!({"i": item}), "INSUFFICIENT_STOCK", Some("quantity")),
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: 5, reason: SOLD}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("delta")),
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: 1099511627776, reason: RECEIVED}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("delta")),
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: 999999999, reason: RECEIVED}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("delta")),
        ("mutation($i: ID!) { r: inventoryAdjust(input: {itemId: $i, delta: -9223372036854775808, reason: CORRECTION}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("delta")),
        ("mutation { r: inventoryAdjust(input: {itemId: \"not-a-uuid\", delta: 1, reason: RECEIVED}) { userErrors { code field message } } }",
            json!({}), "INVALID_INPUT", Some("itemId")),
        ("mutation($u: ID!) { r: inventoryAdjust(input: {itemId: $u, delta: 1, reason: RECEIVED}) { userErrors { code field message } } }",
            json!({"u": unknown}), "NOT_FOUND", Some("itemId")),
        ("mutation($w: ID!) { r: inventoryItemCreate(input: {warehouseId: $w, sku: \"\", productId: \"P\"}) { userErrors { code field message } } }",
            json!({"w": warehouse}), "INVALID_INPUT", Some("sku")),
        ("mutation($w: ID!) { r: inventoryItemCreate(input: {warehouseId: $w, sku: \"has space\", productId: \"P\"}) { userErrors { code field message } } }",
            json!({"w": warehouse}), "INVALID_INPUT", Some("sku")),
        ("mutation($w: ID!, $big: String!) { r: inventoryItemCreate(input: {warehouseId: $w, sku: \"OK\", productId: $big}) { userErrors { code field message } } }",
            json!({"w": warehouse, "big": big}), "INVALID_INPUT", Some("productId")),
        ("mutation($w: ID!) { r: inventoryItemCreate(input: {warehouseId: $w, sku: \"NEG\", productId: \"P\", initialQuantity: -1}) { userErrors { code field message } } }",
            json!({"w": warehouse}), "INVALID_INPUT", Some("initialQuantity")),
        ("mutation($w: ID!) { r: inventoryItemCreate(input: {warehouseId: $w, sku: \"SKU-1\", productId: \"P\"}) { userErrors { code field message } } }",
            json!({"w": warehouse}), "DUPLICATE_SKU", Some("sku")),
        ("mutation($u: ID!) { r: inventoryItemCreate(input: {warehouseId: $u, sku: \"X\", productId: \"P\"}) { userErrors { code field message } } }",
            json!({"u": unknown}), "NOT_FOUND", Some("warehouseId")),
        ("mutation($i: ID!) { r: allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 0}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("quantity")),
        ("mutation($i: ID!) { r: allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: -3}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("quantity")),
        ("mutation($i: ID!) { r: allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 11}) { userErrors { code field message } } }",
            json!({"i": item}), "INSUFFICIENT_STOCK", Some("quantity")),
        ("mutation($i: ID!) { r: allocationCreate(input: {orderId: \"  \", itemId: $i, quantity: 1}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("orderId")),
        ("mutation($u: ID!) { r: allocationConfirm(input: {id: $u}) { userErrors { code field message } } }",
            json!({"u": unknown}), "NOT_FOUND", Some("id")),
        ("mutation($i: ID!) { r: allocationConfirm(input: {id: $i}) { userErrors { code field message } } }",
            json!({"i": item}), "NOT_FOUND", Some("id")),
        ("mutation { r: allocationCancel(input: {id: \"42\", reason: \"x\"}) { userErrors { code field message } } }",
            json!({}), "INVALID_INPUT", Some("id")),
        ("mutation($i: ID!) { r: inventoryItemUpdateReorderSettings(input: {itemId: $i, reorderThreshold: -1}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("reorderThreshold")),
        ("mutation($i: ID!) { r: inventoryItemDeactivate(input: {itemId: $i, reason: \"\"}) { userErrors { code field message } } }",
            json!({"i": item}), "INVALID_INPUT", Some("reason")),
        ("mutation { r: warehouseCreate(input: {name: \"W\", code: \"bad\"}) { userErrors { code field message } } }",
            json!({}), "DUPLICATE_CODE", Some("code")),
        ("mutation { r: warehouseCreate(input: {name: \"\", code: \"NEW\"}) { userErrors { code field message } } }",
            json!({}), "INVALID_INPUT", Some("name")),
        ("mutation($i: ID!, $k: String!) { r: inventoryAdjust(input: {itemId: $i, delta: 1, reason: RECEIVED, idempotencyKey: $k}) { userErrors { code field message } } }",
            json!({"i": item, "k": "k".repeat(201)}), "INVALID_INPUT", Some("idempotencyKey")),
    ];
    for (mutation, variables, code, field) in cases {
        let response = server.gql(mutation, variables).await;
        assert!(response.get("errors").is_none(), "{mutation}: {response}");
        let errors = &response["data"]["r"]["userErrors"];
        assert_eq!(errors[0]["code"], code, "{mutation}: {errors}");
        assert_eq!(
            errors[0]["field"],
            json!(field.map(|f| ["input", f])),
            "{mutation}: {errors}"
        );
        assert!(
            errors[0]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 5 && m.len() < 300),
            "{errors}"
        );
    }
    assert_eq!(snapshot(&server, &item).await, before, "nothing changed");
}

#[tokio::test]
async fn malformed_requests_are_refused_and_the_server_stays_up() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("MAL").await;
    let item = server.create_item(&warehouse, "SKU-1", 10, 0).await;

    // A 10 MB string: refused before it is parsed.
    let huge = "x".repeat(10 * 1024 * 1024);
    let body = serde_json::to_vec(&json!({
        "query": "mutation($n: String!) { warehouseCreate(input: {name: $n, code: \"HUGE\"}) { userErrors { code } } }",
        "variables": { "n": huge },
    }))
    .expect("body");
    // The server answers 413 as soon as the limit is passed and closes the connection, so a
    // client still sending may see the connection cut instead of the answer: either is a refusal.
    match server.try_post_raw(body).await {
        Ok((status, response)) => {
            assert_eq!(status, 413);
            assert_eq!(
                response["errors"][0]["extensions"]["code"],
                "REQUEST_TOO_LARGE"
            );
        }
        Err(error) => eprintln!("10 MB request cut off while sending: {error}"),
    }
    // Just over the limit, small enough to be sent whole: always the 413 answer.
    let body = serde_json::to_vec(&json!({
        "query": "mutation($n: String!) { warehouseCreate(input: {name: $n, code: \"OVER\"}) { userErrors { code } } }",
        "variables": { "n": "y".repeat(1024 * 1024 + 1) },
    }))
    .expect("body");
    let (status, response) = server.post_raw(body).await;
    assert_eq!(status, 413);
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        "REQUEST_TOO_LARGE"
    );

    // Not JSON at all.
    let (status, response) = server.post_raw(b"{ this is not json".to_vec()).await;
    assert_eq!(status, 400);
    assert_eq!(response["errors"][0]["extensions"]["code"], "BAD_REQUEST");

    // Numbers beyond 64 bits, wrong types, unknown enum values: GraphQL validation errors.
    for (query, variables) in [
        ("mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 100000000000000000000, reason: RECEIVED}) { userErrors { code } } }", json!({"i": item})),
        ("mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: \"ten\", reason: RECEIVED}) { userErrors { code } } }", json!({"i": item})),
        ("mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 1, reason: STOLEN}) { userErrors { code } } }", json!({"i": item})),
        ("mutation($i: ID!, $d: Int!) { inventoryAdjust(input: {itemId: $i, delta: $d, reason: RECEIVED}) { userErrors { code } } }", json!({"i": item, "d": 1.5})),
    ] {
        let response = server.gql(query, variables).await;
        assert!(response["errors"][0]["message"].as_str().is_some(), "{query}: {response}");
        assert!(response["data"].is_null() || response["data"]["inventoryAdjust"].is_null(), "{response}");
    }

    // Query arguments: a malformed id or page size is a GraphQL error with a code.
    for query in [
        "{ inventoryItem(id: \"nope\") { id } }",
        "{ inventoryItems(first: 100000) { edges { cursor } } }",
        "{ inventoryItems(first: 0) { edges { cursor } } }",
        "{ inventoryItems(after: \"garbage\") { edges { cursor } } }",
        "{ stockMovementReport { totals { net } } }",
    ] {
        let response = server.gql(query, json!({})).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], "INVALID_INPUT",
            "{query}: {response}"
        );
    }
    // An unknown but well-formed id is simply null.
    let none = server
        .data(
            "{ inventoryItem(id: \"0190b3c2-0000-7000-8000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(none["inventoryItem"], Value::Null);

    // Too deep a query is refused by the depth limit.
    let deep = "{ inventoryItems { edges { node { warehouse { id __typename } } } } }";
    assert!(server.gql(deep, json!({})).await.get("errors").is_none());
    let mut nested = String::from("__typename");
    for _ in 0..20 {
        nested =
            format!("__type(name: \"Query\") {{ fields {{ type {{ ofType {{ {nested} }} }} }} }}");
    }
    let response = server.gql(&format!("{{ {nested} }}"), json!({})).await;
    assert!(
        response["errors"][0]["message"].as_str().is_some(),
        "{response}"
    );

    // Still alive, and the item untouched.
    let data = server
        .data(
            "query($i: ID!) { events(aggregateId: $i) { edges { cursor } } }",
            json!({"i": item}),
        )
        .await;
    assert_eq!(data["events"]["edges"].as_array().map(Vec::len), Some(1));
    let live = reqwest::get(format!("{}/health/live", server.url))
        .await
        .expect("live");
    assert_eq!(live.status(), 200);
}
