//! Warehouse scoping of subscriptions: a viewer scoped to one warehouse hears of nothing
//! outside it, on every feed. Harness: `authz`.

mod authz;
mod common;

use async_graphql::Response;
use authz::{admin, code, id, known, request, start, story, App};
use futures::{Stream, StreamExt};
use inventory_service::auth::{Principal, Role};
use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

/// Starts a subscription and waits until it listens (its resolver runs on the first poll).
async fn subscribe(
    app: &App,
    principal: &Principal,
    query: &str,
    variables: Value,
) -> impl Stream<Item = Response> + Unpin {
    let mut stream = Box::pin(
        app.schema
            .execute_stream(request(principal, query, variables)),
    );
    if let Ok(first) = tokio::time::timeout(Duration::from_millis(300), stream.next()).await {
        panic!("{query}: a response before anything happened: {first:?}");
    }
    stream
}

/// Reads a feed until a message of `field` satisfies `wanted`; every one up to it must lie in
/// `warehouse` (by `warehouse_of`). Earlier changes may still be on their way, so the wanted
/// message need not be the first, but nothing outside the warehouse may come before it.
async fn until(
    stream: &mut (impl Stream<Item = Response> + Unpin),
    field: &str,
    warehouse: Uuid,
    warehouse_of: fn(&Value) -> Uuid,
    wanted: impl Fn(&Value) -> bool,
) -> Value {
    loop {
        let response = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("an event within 10 s")
            .expect("the stream is open");
        assert!(response.errors.is_empty(), "{:?}", response.errors);
        let message = response.data.into_json().expect("json")[field].clone();
        assert_eq!(warehouse_of(&message), warehouse, "{field}: {message}");
        if wanted(&message) {
            return message;
        }
    }
}

#[tokio::test]
async fn a_scoped_viewer_hears_only_of_its_warehouse() {
    let app = start().await;
    let s = story(&app).await;
    let viewer = known("viewer-a", Role::Viewer, &[s.a]);

    let mut alerts = subscribe(
        &app,
        &viewer,
        "subscription { lowStockAlerts { itemId warehouseId } }",
        json!({}),
    )
    .await;
    let mut items = subscribe(
        &app,
        &viewer,
        "subscription { inventoryItemChanged { id warehouseId } }",
        json!({}),
    )
    .await;
    let mut events = subscribe(
        &app,
        &viewer,
        "subscription($a: ID!) { inventoryEvents(aggregateId: $a) { aggregateId eventType } }",
        json!({ "a": s.a2 }),
    )
    .await;
    // B's item runs low first, then A's: A's is the first (and only) alert the viewer gets.
    app.adjust(s.b1, -15).await;
    app.adjust(s.a2, -15).await;
    let a2 = s.a2;
    until(
        &mut alerts,
        "lowStockAlerts",
        s.a,
        |m| id(&m["warehouseId"]),
        |m| id(&m["itemId"]) == a2,
    )
    .await;
    until(
        &mut items,
        "inventoryItemChanged",
        s.a,
        |m| id(&m["warehouseId"]),
        |m| id(&m["id"]) == a2,
    )
    .await;
    let event = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an event")
        .expect("open");
    let event = event.data.into_json().expect("json");
    assert_eq!(id(&event["inventoryEvents"]["aggregateId"]), s.a2);

    // Naming B, or no aggregate at all for raw events, is refused when subscribing.
    for (query, variables) in [
        (
            "subscription($b: ID!) { lowStockAlerts(warehouseId: $b) { itemId } }",
            json!({ "b": s.b }),
        ),
        (
            "subscription($b: ID!) { inventoryItemChanged(warehouseId: $b) { id } }",
            json!({ "b": s.b }),
        ),
        (
            "subscription($b: ID!) { inventoryItemChanged(itemId: $b) { id } }",
            json!({ "b": s.b1 }),
        ),
        (
            "subscription($b: ID!) { inventoryEvents(aggregateId: $b) { eventType } }",
            json!({ "b": s.b1 }),
        ),
        ("subscription { inventoryEvents { eventType } }", json!({})),
        (
            "subscription { inventoryEvents(aggregateType: INVENTORY_ITEM) { eventType } }",
            json!({}),
        ),
    ] {
        let mut stream = app
            .schema
            .execute_stream(request(&viewer, query, variables));
        let response = tokio::time::timeout(Duration::from_secs(5), stream.next())
            .await
            .expect("an answer")
            .expect("a response");
        assert_eq!(
            code(&response).as_deref(),
            Some("FORBIDDEN"),
            "{query}: {:?}",
            response.errors
        );
    }

    // Allocation changes: B's is never heard of, A's is.
    let mut allocations = subscribe(
        &app,
        &viewer,
        "subscription { allocationChanged { id warehouse { id } } }",
        json!({}),
    )
    .await;
    let confirm =
        "mutation($id: ID!) { allocationConfirm(input: { id: $id }) { userErrors { code } } }";
    app.data(&admin(), confirm, json!({ "id": s.alloc_b }))
        .await;
    app.data(&admin(), confirm, json!({ "id": s.alloc_a }))
        .await;
    let alloc_a = s.alloc_a;
    until(
        &mut allocations,
        "allocationChanged",
        s.a,
        |m| id(&m["warehouse"]["id"]),
        |m| id(&m["id"]) == alloc_a,
    )
    .await;
    app.service.stop().await;
}
