//! The service on RabbitMQ, with real processes: two instances sharing a store and a broker
//! serve each other's subscribers and build every projection once; commits made while the relay
//! is held back (then SIGKILL) are published after the restart.

mod common;

use common::{prefix_of, Server, Subscription};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rabbit_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("INVENTORY_BUS", "rabbitmq".to_owned()),
        ("INVENTORY_BUS_PREFIX", format!("{prefix}.")),
    ]
}

async fn start(dir: &std::path::Path, extra: &[(&str, String)]) -> Server {
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, &pairs).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mutation_on_one_instance_reaches_a_subscriber_on_the_other() {
    let temp = tempfile::tempdir().expect("temp dir");
    let env = rabbit_env(&prefix_of(temp.path()));
    let a = Arc::new(start(temp.path(), &env).await);
    let b = Arc::new(start(temp.path(), &env).await);
    let warehouse = a.create_warehouse("TWO").await;
    let item = a.create_item(&warehouse, "SHARED", 20, 5).await;

    let mut alerts = Subscription::open(
        &b,
        "subscription($w: ID) { lowStockAlerts(warehouseId: $w) { itemId available threshold } }",
        json!({ "w": warehouse }),
        false,
    )
    .await;
    let mut changes = Subscription::open(
        &b,
        "subscription($i: ID) { inventoryItemChanged(itemId: $i) { onHand version } }",
        json!({ "i": item }),
        false,
    )
    .await;
    let sent = Instant::now();
    let payload = a.adjust(&item, -16, "SOLD").await;
    assert_eq!(payload["inventoryItem"]["onHand"], 4);
    let alert = alerts
        .next(Duration::from_secs(1))
        .await
        .expect("alert on B within a second");
    eprintln!(
        "cross-instance low-stock alert latency: {:?}",
        sent.elapsed()
    );
    assert_eq!(
        alert["lowStockAlerts"],
        json!({"itemId": item, "available": 4, "threshold": 5})
    );
    loop {
        let change = changes
            .next(Duration::from_secs(5))
            .await
            .expect("read-model change on B");
        if change["inventoryItemChanged"]["onHand"] == 4 {
            break;
        }
    }

    // A burst through both instances: every projection built once and equal to a replay.
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let server = if n % 2 == 0 { a.clone() } else { b.clone() };
            let item = item.clone();
            tokio::spawn(async move { server.adjust(&item, 1, "RECEIVED").await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.expect("task")["userErrors"], json!([]));
    }
    let data = b
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand } inventoryHistory(itemId: $i, first: 500) { edges { cursor } } }",
            json!({ "i": item }),
            // Each projector catches up on its own (on DynamoDB they are separate writes).
            |d| {
                d["inventoryItem"]["onHand"] == 44
                    && d["inventoryHistory"]["edges"].as_array().map_or(0, Vec::len) >= 42
            },
        )
        .await;
    assert_eq!(
        data["inventoryHistory"]["edges"].as_array().map(Vec::len),
        Some(42),
        "initial + 41 changes, once each"
    );
    assert_eq!(a.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commits_held_in_the_outbox_at_sigkill_are_published_after_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut env = rabbit_env(&prefix_of(temp.path()));
    let server = start(temp.path(), &env).await;
    let warehouse = server.create_warehouse("HELD").await;
    let item = server.create_item(&warehouse, "HELD", 0, 0).await;
    server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { id } }",
            json!({ "i": item }),
            |d| d["inventoryItem"].is_object(),
        )
        .await;
    drop(server);

    // Restart with the relay held back: commits are acknowledged but stay in the outbox.
    env.push(("INVENTORY_RELAY_PAUSED", "true".to_owned()));
    let mut paused = start(temp.path(), &env).await;
    // Its start-up catch-up reads the store, and would project commits made while it runs.
    paused.until_ready().await;
    for _ in 0..10 {
        assert_eq!(
            paused.adjust(&item, 1, "RECEIVED").await["userErrors"],
            json!([])
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stale = paused
        .data(
            "query($i: ID!) { inventoryItem(id: $i) { onHand } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        stale["inventoryItem"]["onHand"], 0,
        "nothing was published yet"
    );
    paused.kill();
    drop(paused);

    env.pop();
    let restarted = start(temp.path(), &env).await;
    let data = restarted
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand version } }",
            json!({ "i": item }),
            |d| d["inventoryItem"]["onHand"] == 10,
        )
        .await;
    assert_eq!(
        data["inventoryItem"]["version"], 12,
        "created + alert + 10 changes, each applied once"
    );
    assert_eq!(restarted.settle_and_verify().await, Vec::<String>::new());
}
