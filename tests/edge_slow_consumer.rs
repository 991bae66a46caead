//! Catch-up subscriptions whose readers stall. The service reads the store for each only as
//! fast as its socket takes what it was sent (a page at a time, through a short queue), so a
//! client that stops reading holds a page or so per subscription, not its whole stream; and a
//! socket whose queue stays full past `--ws-slow-consumer-ms` is dropped (1008). The test
//! prints the server's resident memory before, at its peak while the readers stall, and after
//! they were dropped.

mod common;

use common::edge::{self, close_code, init, send, Reply};
use common::Server;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const UPDATE: &str = "mutation($id: ID!, $name: String!, $address: String!) {
    warehouseUpdate(input: {id: $id, name: $name, address: $address}) { userErrors { code message } } }";

const EVENTS: &str = "subscription($w: ID!) { inventoryEvents(aggregateId: $w, afterSequence: 0) {
    eventId aggregateId sequenceNumber eventType data metadata { actor correlationId } occurredAt } }";

/// Updates of the warehouse: each event carries the previous and the new name and address,
/// about 1.5 KB.
const UPDATES: usize = 600;
const SOCKETS: usize = 8;
const SUBSCRIPTIONS_PER_SOCKET: usize = 20;

#[tokio::test]
async fn a_stalled_catch_up_reader_is_dropped_and_holds_little_meanwhile() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(
        dir.path(),
        &[
            ("INVENTORY_WS_SLOW_CONSUMER_MS", "1000"),
            ("INVENTORY_RATE_LIMIT_PER_SECOND", "0"),
        ],
    )
    .await;
    server.until_ready().await;
    let warehouse = server.create_warehouse("SLOW").await;
    let seeding = Instant::now();
    for batch in 0..UPDATES / 10 {
        let requests: Vec<Value> = (0..10)
            .map(|n| {
                let k = batch * 10 + n;
                json!({ "query": UPDATE, "variables": {
                    "id": warehouse,
                    "name": format!("{k:04}{}", "n".repeat(196)),
                    "address": format!("{k:04}{}", "a".repeat(496)),
                }})
            })
            .collect();
        let (status, body) = server
            .post_raw(serde_json::to_vec(&requests).expect("json"))
            .await;
        assert_eq!(status, 200, "{body}");
        assert!(!body.to_string().contains("\"code\""), "{body}");
    }
    let events = UPDATES + 1;
    eprintln!(
        "seeded {events} events of one warehouse in {:?}",
        seeding.elapsed()
    );

    let rss_before = edge::rss_kib(&server);
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        let mut socket = edge::websocket(&server, &[], Some(4096))
            .await
            .expect("websocket");
        assert!(
            matches!(init(&mut socket, json!({})).await, Reply::Json(ack) if ack["type"] == "connection_ack")
        );
        for id in 0..SUBSCRIPTIONS_PER_SOCKET {
            send(
                &mut socket,
                json!({"id": id.to_string(), "type": "subscribe",
                       "payload": {"query": EVENTS, "variables": {"w": warehouse}}}),
            )
            .await;
        }
        sockets.push(socket);
    }
    // Nobody reads. Sample the server until it has dropped every socket.
    let stalled = Instant::now();
    let mut peak = rss_before;
    loop {
        peak = peak.max(edge::rss_kib(&server));
        if edge::metric(&server, "inventory_websockets").await == 0.0 {
            break;
        }
        assert!(
            stalled.elapsed() < Duration::from_secs(60),
            "the stalled sockets were never dropped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let dropped_in = stalled.elapsed();
    let rss_after = edge::rss_kib(&server);
    let slow = edge::metric(
        &server,
        "inventory_edge_refusals_total{code=\"SLOW_CONSUMER\"}",
    )
    .await;

    // Each client then reads what reached it before the drop, and the end.
    let mut received = Vec::new();
    for socket in &mut sockets {
        let (code, messages) = close_code(socket, Duration::from_secs(20)).await;
        received.push((code, messages));
    }
    let full = events * SUBSCRIPTIONS_PER_SOCKET;
    eprintln!(
        "{SOCKETS} stalled sockets × {SUBSCRIPTIONS_PER_SOCKET} catch-ups of {events} events: dropped after {dropped_in:?} \
         (slow-consumer limit 1 s; {slow} counted); server RSS {rss_before} KiB before, {peak} KiB peak, {rss_after} KiB after \
         (+{} KiB at the peak); messages each client had received of {full}, and its close: {received:?}",
        peak.saturating_sub(rss_before)
    );
    for (code, messages) in &received {
        assert!(*messages < full, "a whole stream fitted in the buffers");
        assert!(code.is_none_or(|code| code == 1008), "closed with {code:?}");
    }
    // A page or so per subscription, not the streams: 160 whole catch-ups would be hundreds
    // of MB.
    assert!(
        peak.saturating_sub(rss_before) < 96 * 1024,
        "RSS rose by {} KiB",
        peak.saturating_sub(rss_before)
    );
    // A reader that keeps up gets the whole stream.
    let mut reader =
        common::Subscription::open(&server, EVENTS, json!({"w": warehouse}), false).await;
    let mut seen = 0;
    while reader.next(Duration::from_secs(5)).await.is_some() {
        seen += 1;
        if seen == events {
            break;
        }
    }
    assert_eq!(seen, events);
}
