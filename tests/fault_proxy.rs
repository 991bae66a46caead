//! The fault proxy's own faults at the connection level (the chaos run leans on them): a
//! reset reaches the client as a broken connection, not as an HTTP answer, and is counted; a
//! held call is counted and still answered. No endpoint is needed: the proxy forwards to an
//! address where nothing listens, which it answers with 502.

mod common;

use common::fault_proxy::{Fault, FaultProxy};
use std::time::Duration;

/// An address on loopback where nothing listens (bound, then released).
async fn nowhere() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    drop(listener);
    format!("http://{address}")
}

async fn call(url: &str) -> Result<u16, reqwest::Error> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let response = client
        .post(format!("{url}/"))
        .header("x-amz-target", "DynamoDB_20120810.GetItem")
        .body("{}")
        .send()
        .await?;
    Ok(response.status().as_u16())
}

#[tokio::test]
async fn resets_break_the_connection_and_held_calls_are_answered() {
    let proxy = FaultProxy::start(&nowhere().await, 7).await;
    // No faults: the proxy's own answer to an endpoint that is not there.
    assert_eq!(call(&proxy.url).await.expect("an answer"), 502);

    // Every request reset, before or after it is passed on: the client sees no answer.
    proxy.reset_stats();
    proxy.set_resets(1.0);
    for _ in 0..8 {
        let error = call(&proxy.url).await.expect_err("a reset, not an answer");
        assert!(
            !error.is_timeout(),
            "a broken connection, not a timeout: {error}"
        );
    }
    let stats = proxy.stats();
    let resets = stats.faulted(Fault::ResetBeforeForward) + stats.faulted(Fault::ResetAfterForward);
    assert_eq!(resets, 8, "{stats:?}");
    assert!(
        stats.faulted(Fault::ResetBeforeForward) > 0 && stats.faulted(Fault::ResetAfterForward) > 0,
        "both kinds drawn in 8 tries with this seed: {stats:?}"
    );
    assert_eq!(
        stats.total_calls(),
        stats.faulted(Fault::ResetAfterForward),
        "only the requests reset after being passed on reached the proxy's HTTP side"
    );

    // Held calls: counted, and answered all the same.
    proxy.set_resets(0.0);
    proxy.reset_stats();
    proxy.set_latency(Some((
        1.0,
        Duration::from_millis(10),
        Duration::from_millis(30),
    )));
    for _ in 0..3 {
        assert_eq!(call(&proxy.url).await.expect("an answer"), 502);
    }
    assert_eq!(proxy.stats().faulted(Fault::Delayed), 3);
}
