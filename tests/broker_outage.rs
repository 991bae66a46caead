//! RabbitMQ stopped in the middle of a burst (`rabbitmqctl stop_app`), then started again:
//! mutations are accepted throughout (the outbox holds them), readiness reports the outage, and
//! within a bounded time after the broker returns every projection equals a replay of the store.
//! Alone in its test binary because it stops the machine's broker.

mod common;

use common::{prefix_of, Server};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn rabbitmqctl(action: &str) {
    let status = Command::new("rabbitmqctl")
        .arg(action)
        .status()
        .expect("rabbitmqctl");
    assert!(status.success(), "rabbitmqctl {action} failed");
}

/// Starts the broker's app again even if the test fails half-way.
struct RestartOnDrop;

impl Drop for RestartOnDrop {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").arg("start_app").status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_outage_mid_burst_loses_nothing_and_applies_nothing_twice() {
    let temp = tempfile::tempdir().expect("temp dir");
    let prefix = format!("{}.", prefix_of(temp.path()));
    let server = Server::start_with(
        temp.path(),
        &[
            ("INVENTORY_BUS", "rabbitmq"),
            ("INVENTORY_BUS_PREFIX", &prefix),
        ],
    )
    .await;
    let warehouse = server.create_warehouse("OUTAGE").await;
    let item = server.create_item(&warehouse, "OUT", 0, 0).await;
    let mut accepted = 0;
    for _ in 0..20 {
        assert_eq!(
            server.adjust(&item, 1, "RECEIVED").await["userErrors"],
            json!([])
        );
        accepted += 1;
    }

    let _guard = RestartOnDrop;
    rabbitmqctl("stop_app");
    let down_at = Instant::now();
    // Mutations go on being accepted while the broker is away.
    for _ in 0..30 {
        assert_eq!(
            server.adjust(&item, 1, "RECEIVED").await["userErrors"],
            json!([])
        );
        accepted += 1;
    }
    let ready = reqwest::get(format!("{}/health/ready", server.url))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 503, "not ready while the bus is down");
    eprintln!(
        "broker down for {:?} while 30 mutations were accepted",
        down_at.elapsed()
    );

    rabbitmqctl("start_app");
    let back_at = Instant::now();
    let data = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand } }",
            json!({ "i": item }),
            |d| d["inventoryItem"]["onHand"] == accepted,
        )
        .await;
    assert_eq!(data["inventoryItem"]["onHand"], accepted);
    let differences = server.settle_and_verify().await;
    let recovery = back_at.elapsed();
    assert_eq!(differences, Vec::<String>::new());
    eprintln!("recovery after the broker returned: projections equal a replay within {recovery:?}");
    assert!(
        recovery < Duration::from_secs(60),
        "recovered in bounded time: {recovery:?}"
    );
    let ready = reqwest::get(format!("{}/health/ready", server.url))
        .await
        .expect("ready");
    assert_eq!(ready.status(), 200);
}
