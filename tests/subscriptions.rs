//! Subscriptions over WebSocket against the running server: low-stock alerts arrive within a
//! second of the mutation that caused them, and every subscription's filters hold.

mod common;

use common::{Server, Subscription};
use serde_json::json;
use std::time::{Duration, Instant};

const QUIET: Duration = Duration::from_millis(400);

#[tokio::test]
async fn a_low_stock_alert_reaches_its_warehouse_subscriber_within_a_second() {
    let server = Server::start().await;
    let north = server.create_warehouse("NORTH").await;
    let south = server.create_warehouse("SOUTH").await;
    let north_item = server.create_item(&north, "N-1", 10, 3).await;
    let south_item = server.create_item(&south, "S-1", 10, 3).await;

    let query = "subscription($w: ID) { lowStockAlerts(warehouseId: $w) {
        itemId sku warehouseId available threshold suggestedReorderQuantity occurredAt } }";
    let mut north_alerts = Subscription::open(&server, query, json!({ "w": north }), false).await;
    let mut south_alerts = Subscription::open(&server, query, json!({ "w": south }), false).await;
    let mut all_alerts = Subscription::open(&server, query, json!({}), true).await;

    // 10 → 6: still above the threshold, no alert.
    server.adjust(&north_item, -4, "SOLD").await;
    assert_eq!(north_alerts.next(QUIET).await, None);

    // 6 → 2 crosses the threshold of 3.
    let sent = Instant::now();
    let payload = server.adjust(&north_item, -4, "SOLD").await;
    assert_eq!(payload["inventoryItem"]["lowStock"], true);
    let alert = north_alerts
        .next(Duration::from_secs(1))
        .await
        .expect("alert within a second");
    let latency = sent.elapsed();
    eprintln!("low-stock alert latency (mutation sent → alert received): {latency:?}");
    let alert = &alert["lowStockAlerts"];
    assert_eq!(alert["itemId"], json!(north_item));
    assert_eq!(alert["sku"], "N-1");
    assert_eq!(alert["warehouseId"], json!(north));
    assert_eq!(alert["available"], 2);
    assert_eq!(alert["threshold"], 3);
    assert_eq!(alert["suggestedReorderQuantity"], 25);
    assert!(
        all_alerts.next(Duration::from_secs(1)).await.is_some(),
        "unfiltered (graphql-ws) subscriber sees it"
    );
    assert_eq!(
        south_alerts.next(QUIET).await,
        None,
        "other warehouse's subscriber sees nothing"
    );

    // 2 → 1: already low, no second alert.
    server.adjust(&north_item, -1, "DAMAGED").await;
    assert_eq!(north_alerts.next(QUIET).await, None);

    // An allocation crossing the threshold alerts too, on the other warehouse.
    server
        .data(
            "mutation($i: ID!) { allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 8}) { userErrors { code } } }",
            json!({ "i": south_item }),
        )
        .await;
    let alert = south_alerts
        .next(Duration::from_secs(1))
        .await
        .expect("south alert");
    assert_eq!(alert["lowStockAlerts"]["available"], 2);
    assert_eq!(north_alerts.next(QUIET).await, None);
}

#[tokio::test]
async fn read_model_subscriptions_carry_the_projected_row_and_respect_filters() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("RM").await;
    let watched = server.create_item(&warehouse, "WATCHED", 10, 0).await;
    let other = server.create_item(&warehouse, "OTHER", 10, 0).await;

    let mut item_changes = Subscription::open(
        &server,
        "subscription($i: ID) { inventoryItemChanged(itemId: $i) { id onHand available version } }",
        json!({ "i": watched }),
        false,
    )
    .await;
    let mut order_changes = Subscription::open(
        &server,
        "subscription { allocationChanged(orderId: \"order-A\") { orderId status quantity } }",
        json!({}),
        false,
    )
    .await;
    let mut allocation_events = Subscription::open(
        &server,
        "subscription { inventoryEvents(aggregateType: ALLOCATION) { eventType aggregateType sequenceNumber } }",
        json!({}),
        false,
    )
    .await;

    server.adjust(&other, 5, "RECEIVED").await;
    server.adjust(&watched, 5, "RECEIVED").await;
    // The watched item's changes only (its creation may still be arriving), up to onHand 15.
    loop {
        let change = item_changes
            .next(Duration::from_secs(5))
            .await
            .expect("item change");
        assert_eq!(
            change["inventoryItemChanged"]["id"],
            json!(watched),
            "only the watched item"
        );
        if change["inventoryItemChanged"]["onHand"] == 15 {
            break;
        }
    }
    assert_eq!(
        allocation_events.next(QUIET).await,
        None,
        "item events are not allocation events"
    );

    for order in ["order-B", "order-A"] {
        server
            .data(
                "mutation($i: ID!, $o: String!) { allocationCreate(input: {orderId: $o, itemId: $i, quantity: 2}) { userErrors { code } } }",
                json!({ "i": other, "o": order }),
            )
            .await;
    }
    let allocation = order_changes
        .next(Duration::from_secs(2))
        .await
        .expect("allocation change");
    assert_eq!(
        allocation["allocationChanged"],
        json!({"orderId": "order-A", "status": "CREATED", "quantity": 2})
    );
    assert_eq!(order_changes.next(QUIET).await, None);
    for _ in 0..2 {
        let event = allocation_events
            .next(Duration::from_secs(2))
            .await
            .expect("allocation event");
        assert_eq!(event["inventoryEvents"]["eventType"], "AllocationCreated");
        assert_eq!(event["inventoryEvents"]["aggregateType"], "Allocation");
    }
    assert_eq!(
        item_changes.next(QUIET).await,
        None,
        "allocations on the other item are not shown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_catch_up_subscription_sends_every_event_once_in_order_across_the_seam() {
    let server = std::sync::Arc::new(Server::start().await);
    let warehouse = server.create_warehouse("SEAM").await;
    let item = server.create_item(&warehouse, "SEAM", 0, 0).await; // versions 1 (created) and 2 (alert)
    let writer = {
        let server = server.clone();
        let item = item.clone();
        tokio::spawn(async move {
            for _ in 0..60 {
                assert_eq!(
                    server.adjust(&item, 1, "RECEIVED").await["userErrors"],
                    json!([])
                );
            }
        })
    };
    // Connect while the writer is mid-way.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut events = Subscription::open(
        &server,
        "subscription($i: ID!) { inventoryEvents(aggregateId: $i, afterSequence: 0) { sequenceNumber eventType } }",
        json!({ "i": item }),
        false,
    )
    .await;
    writer.await.expect("writer");
    let mut seen = Vec::new();
    while seen.last() != Some(&62) {
        let event = events
            .next(Duration::from_secs(5))
            .await
            .expect("next event");
        seen.push(
            event["inventoryEvents"]["sequenceNumber"]
                .as_u64()
                .expect("number"),
        );
    }
    assert_eq!(
        seen,
        (1..=62).collect::<Vec<u64>>(),
        "each event once, in order"
    );
    assert_eq!(events.next(QUIET).await, None, "nothing after the last");
}
