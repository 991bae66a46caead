//! The WebSocket edge as an attacker or a careless client meets it, against the real binary:
//! hundreds of sockets that never say `connection_init`, a 10 MB frame, more operations than a
//! socket or a principal may run, subscribes over the rate limit, a foreign `Origin`, and bad
//! credentials in `connection_init`. Each test prints what it measured.

mod common;

use common::edge::{self, close_code, error_code, init, next, send, start, subscribe, Reply};
use common::Server;
use futures::SinkExt;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const ALERTS: &str = "subscription { lowStockAlerts { sku } }";

/// A socket past `connection_init`.
async fn acknowledged(server: &Server) -> edge::Socket {
    let mut socket = edge::websocket(server, &[], None).await.expect("websocket");
    match init(&mut socket, json!({})).await {
        Reply::Json(ack) if ack["type"] == "connection_ack" => socket,
        other => panic!("no ack: {other:?}"),
    }
}

#[tokio::test]
async fn idle_sockets_are_closed_by_the_init_timeout_and_the_cap_refuses_the_rest() {
    let (server, _dir) = start(&[
        ("INVENTORY_WS_MAX_CONNECTIONS", "100"),
        // Long enough for all 500 to be tried before the first are closed (and give their
        // permits back).
        ("INVENTORY_WS_INIT_TIMEOUT_MS", "5000"),
    ])
    .await;
    let rss_before = edge::rss_kib(&server);
    let started = Instant::now();
    let mut opening = Vec::new();
    for _ in 0..500 {
        opening.push(edge::websocket(&server, &[], None));
    }
    let results = futures::future::join_all(opening).await;
    let opened_in = started.elapsed();
    let mut sockets = Vec::new();
    let mut refused = 0;
    for result in results {
        match result {
            Ok(socket) => sockets.push(socket),
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 503);
                refused += 1;
            }
            Err(other) => panic!("unexpected: {other}"),
        }
    }
    let rss_open = edge::rss_kib(&server);
    let accepted = sockets.len();
    let closes = futures::future::join_all(
        sockets
            .iter_mut()
            .map(|socket| close_code(socket, Duration::from_secs(30))),
    )
    .await;
    let closed_in = started.elapsed();
    let timed_out = closes
        .iter()
        .filter(|(code, _)| *code == Some(4408))
        .count();
    eprintln!(
        "500 idle sockets, cap 100, init timeout 5 s: {accepted} accepted, {refused} refused (503) in {opened_in:?}; \
         {timed_out} closed with 4408 by {closed_in:?}; server RSS {rss_before} KiB → {rss_open} KiB with them open"
    );
    if opened_in < Duration::from_millis(4_500) {
        assert_eq!(accepted, 100);
    } else {
        // So slow a machine that the first were closed (permits back) before the last tried.
        assert!(accepted >= 100, "{accepted}");
    }
    assert_eq!(accepted + refused, 500);
    assert_eq!(timed_out, accepted, "{closes:?}");
    assert!(closed_in < Duration::from_secs(50));
    // The permits came back: a new socket is accepted and acknowledged.
    drop(sockets);
    tokio::time::sleep(Duration::from_millis(200)).await;
    acknowledged(&server).await;
}

#[tokio::test]
async fn a_frame_over_the_message_limit_is_refused_from_its_header() {
    let server = Server::start().await;
    let mut socket = acknowledged(&server).await;
    let rss_before = edge::rss_kib(&server);
    let frame = format!(
        "{{\"id\":\"1\",\"type\":\"subscribe\",\"payload\":{{\"query\":\"{}\"}}}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let started = Instant::now();
    // The server may close before all of it is written.
    let sent = socket.send(Message::text(frame)).await;
    let (code, _) = close_code(&mut socket, Duration::from_secs(10)).await;
    let rss_after = edge::rss_kib(&server);
    eprintln!(
        "10 MB frame: send {}, closed with {code:?} after {:?}; server RSS {rss_before} KiB → {rss_after} KiB",
        if sent.is_ok() { "completed" } else { "cut off" },
        started.elapsed()
    );
    assert!(code == Some(1009) || code.is_none(), "{code:?}");
    assert!(rss_after < rss_before + 8 * 1024, "the frame was buffered");
    // A message just under the limit is read (and answered as a protocol matter).
    let mut socket = acknowledged(&server).await;
    let query = format!("{{ __typename }} #{}", "x".repeat(900 * 1024));
    send(
        &mut socket,
        json!({"id": "1", "type": "subscribe", "payload": {"query": query}}),
    )
    .await;
    let reply = next(&mut socket, Duration::from_secs(10)).await;
    assert!(matches!(reply, Reply::Json(_)), "{reply:?}");
}

#[tokio::test]
async fn operations_are_capped_per_socket_and_per_principal_across_sockets() {
    let (server, _dir) = start(&[
        ("INVENTORY_WS_MAX_OPERATIONS", "3"),
        ("INVENTORY_MAX_OPERATIONS_PER_PRINCIPAL", "5"),
    ])
    .await;
    let mut first = acknowledged(&server).await;
    for id in ["a", "b", "c"] {
        send(&mut first, subscribe(id, ALERTS)).await;
    }
    send(&mut first, subscribe("d", ALERTS)).await;
    let reply = next(&mut first, Duration::from_secs(5)).await;
    eprintln!("4th operation on a socket capped at 3 → {reply:?}");
    assert_eq!(
        error_code(&reply, "d").as_deref(),
        Some("TOO_MANY_OPERATIONS")
    );

    // Two more on a second socket reach the principal's 5; the third is refused.
    let mut second = acknowledged(&server).await;
    send(&mut second, subscribe("e", ALERTS)).await;
    send(&mut second, subscribe("f", ALERTS)).await;
    send(&mut second, subscribe("g", ALERTS)).await;
    let reply = next(&mut second, Duration::from_secs(5)).await;
    eprintln!("6th operation of the principal over two sockets (cap 5) → {reply:?}");
    assert_eq!(
        error_code(&reply, "g").as_deref(),
        Some("TOO_MANY_OPERATIONS")
    );
    let message = match &reply {
        Reply::Json(message) => message["payload"][0]["message"].to_string(),
        _ => String::new(),
    };
    assert!(message.contains("anonymous"), "{message}");

    // Completing one gives its slot back, and so does closing a socket.
    send(&mut first, json!({"id": "a", "type": "complete"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut second, subscribe("h", ALERTS)).await;
    let reply = next(&mut second, Duration::from_millis(800)).await;
    assert!(matches!(reply, Reply::Silent), "{reply:?}");
    drop(first);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut third = acknowledged(&server).await;
    send(&mut third, subscribe("i", ALERTS)).await;
    send(&mut third, subscribe("j", ALERTS)).await;
    let reply = next(&mut third, Duration::from_millis(800)).await;
    assert!(matches!(reply, Reply::Silent), "{reply:?}");
}

#[tokio::test]
async fn a_subscribe_over_the_rate_limit_gets_rate_limited() {
    let (server, _dir) = start(&[
        ("INVENTORY_RATE_LIMIT_PER_SECOND", "1"),
        ("INVENTORY_RATE_LIMIT_BURST", "2"),
    ])
    .await;
    let mut socket = acknowledged(&server).await;
    for id in ["1", "2", "3"] {
        send(&mut socket, subscribe(id, ALERTS)).await;
    }
    let reply = next(&mut socket, Duration::from_secs(5)).await;
    eprintln!("3rd subscribe at 1/s, burst 2 → {reply:?}");
    assert_eq!(error_code(&reply, "3").as_deref(), Some("RATE_LIMITED"));
    match reply {
        Reply::Json(message) => {
            assert!(message["payload"][0]["extensions"]["retryAfter"].as_u64() >= Some(1))
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_socket_from_a_foreign_origin_is_closed_with_4403() {
    let server = Server::start().await;
    let mut socket = edge::websocket(&server, &[("origin", "http://evil.example")], None)
        .await
        .expect("upgrade");
    let started = Instant::now();
    send(
        &mut socket,
        json!({"type": "connection_init", "payload": {}}),
    )
    .await;
    let reply = next(&mut socket, Duration::from_secs(5)).await;
    eprintln!(
        "Origin: http://evil.example → {reply:?} after {:?}",
        started.elapsed()
    );
    assert!(
        matches!(&reply, Reply::Closed(Some((4403, _)))),
        "{reply:?}"
    );
}

#[tokio::test]
async fn bad_credentials_in_connection_init_close_the_socket_with_4403_before_any_ack() {
    let server = Server::start().await;
    // graphql-transport-ws, credentials in the payload.
    let mut socket = edge::websocket(&server, &[], None)
        .await
        .expect("websocket");
    let reply = init(
        &mut socket,
        json!({"authorization": "Bearer inv_not_a_key"}),
    )
    .await;
    eprintln!("connection_init with a bad key → {reply:?}");
    match &reply {
        Reply::Closed(Some((4403, reason))) => assert!(reason.starts_with("Forbidden"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // ...in the upgrade's Authorization header.
    let mut socket = edge::websocket(&server, &[("authorization", "Bearer inv_nope")], None)
        .await
        .expect("websocket");
    let reply = init(&mut socket, json!({})).await;
    assert!(matches!(reply, Reply::Closed(Some((4403, _)))), "{reply:?}");
    // The legacy protocol is told why, then closed.
    let mut socket = edge::websocket(&server, &[("sec-websocket-protocol", "graphql-ws")], None)
        .await
        .expect("websocket");
    let reply = init(&mut socket, json!({"authorization": "Bearer inv_nope"})).await;
    eprintln!("legacy connection_init with a bad key → {reply:?}");
    match &reply {
        Reply::Json(message) => {
            assert_eq!(message["type"], "connection_error");
            assert_eq!(message["payload"]["extensions"]["code"], "UNAUTHENTICATED");
        }
        other => panic!("{other:?}"),
    }
    let (code, _) = close_code(&mut socket, Duration::from_secs(5)).await;
    assert_eq!(code, Some(4403));
    // No credentials: the anonymous principal, acknowledged.
    acknowledged(&server).await;
}
