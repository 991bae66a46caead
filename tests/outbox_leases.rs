//! Outbox shards owned through leases, with real processes on one DynamoDB table set and one
//! RabbitMQ prefix: while instance A holds every shard's lease, instance B leaves A's
//! unpublished rows alone; once A is SIGKILLed, B takes A's shards when the leases expire and
//! publishes every event, each once. Both instances' `/metrics` are sampled all along: no shard
//! is ever owned by both. A is live but cannot publish (its broker URL names a closed port), so
//! its rows stay in the outbox while its relay, and so its leases, keep running (a paused
//! relay would not do: it holds no leases).

mod common;

use common::{prefix_of, Server};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

const SHARDS: u32 = 4;
const LEASE_MS: u64 = 3_000;
const OWNED: &str = "inventory_outbox_shards_owned";
const PUBLISHED: &str = "inventory_events_published_total";
const DEPTH: &str = "inventory_outbox_depth";

/// The values of one metric in a `/metrics` text, by its `shard` label (or "" without one).
fn metric(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let labels = match key.strip_prefix(name)? {
                "" => "",
                rest => rest.strip_prefix('{')?.strip_suffix('}')?,
            };
            let shard = labels
                .split(',')
                .find_map(|l| l.strip_prefix("shard=\""))
                .map(|s| s.trim_end_matches('"').to_owned())
                .unwrap_or_default();
            Some((shard, value.parse().ok()?))
        })
        .collect()
}

fn owned(text: &str) -> BTreeSet<u32> {
    metric(text, OWNED)
        .into_iter()
        .filter(|(_, value)| *value == 1.0)
        .filter_map(|(shard, _)| shard.parse().ok())
        .collect()
}

fn value(text: &str, name: &str) -> f64 {
    metric(text, name).first().map_or(0.0, |(_, v)| *v)
}

/// `/metrics` of a server, or `None` when it does not answer (killed).
async fn metrics_text(client: &reqwest::Client, url: &str) -> Option<String> {
    let response = client
        .get(format!("{url}/metrics"))
        .timeout(Duration::from_secs(1))
        .send()
        .await
        .ok()?;
    response.text().await.ok()
}

async fn start(dir: &Path, env: &[(&str, String)]) -> Server {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, &pairs).await
}

/// One sample of both instances: when, and the shards each said it owned.
struct Sample {
    at: Instant,
    a: BTreeSet<u32>,
    b: BTreeSet<u32>,
}

/// `inventory-service verify` on DynamoDB, polled until consistent (15 s at most).
async fn verify(dir: &Path, env: &[(&str, String)]) -> Vec<String> {
    let env = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    common::verify_until_consistent_with(dir, env).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_instances_shards_are_taken_over_and_no_shard_is_relayed_by_two() {
    let Ok(endpoint) = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT") else {
        eprintln!("skipped: INVENTORY_TEST_DYNAMODB_ENDPOINT is not set (scripts/dynamodb-local.sh start prints one)");
        return;
    };
    let started = Instant::now();
    let temp = tempfile::tempdir().expect("temp dir");
    let prefix = prefix_of(temp.path());
    let store_env: Vec<(&str, String)> = vec![
        ("INVENTORY_STORE", "dynamodb".into()),
        ("INVENTORY_DYNAMODB_ENDPOINT", endpoint),
        ("INVENTORY_TABLE_PREFIX", format!("l{prefix}_")),
        ("INVENTORY_MIGRATE", "true".into()),
    ];
    let mut env = store_env.clone();
    env.extend([
        ("INVENTORY_BUS", "rabbitmq".to_owned()),
        ("INVENTORY_BUS_PREFIX", format!("{prefix}.")),
        ("INVENTORY_OUTBOX_SHARDS", SHARDS.to_string()),
        ("INVENTORY_OUTBOX_LEASE_MS", LEASE_MS.to_string()),
    ]);
    // A's broker is a port nobody listens on: every publish fails, the relay keeps trying.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut a_env = env.clone();
    a_env.extend([
        (
            "INVENTORY_AMQP_URL",
            format!("amqp://guest:guest@127.0.0.1:{closed}/%2f"),
        ),
        // Not a line per failed publish; the store's (leases) still.
        ("RUST_LOG", "error,inventory_service::store=warn".to_owned()),
    ]);
    let client = reqwest::Client::new();

    // A first: it takes every shard.
    let mut a = start(temp.path(), &a_env).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics_text(&client, &a.url).await.unwrap_or_default();
        if owned(&text).len() == SHARDS as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A never held every shard: {text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let b = start(temp.path(), &env).await;
    // B has looked at the leases (its gauges exist) and holds none.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics_text(&client, &b.url).await.unwrap_or_default();
        if metric(&text, OWNED).len() == SHARDS as usize {
            assert_eq!(owned(&text), BTreeSet::new(), "B took a shard A holds");
            break;
        }
        assert!(Instant::now() < deadline, "B never reported its shards");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Both instances' shards, sampled every 50 ms until the end.
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (samples, stop, client) = (samples.clone(), stop.clone(), client.clone());
        let (a_url, b_url) = (a.url.clone(), b.url.clone());
        tokio::spawn(async move {
            for _ in 0..2_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let a = metrics_text(&client, &a_url).await;
                let b = metrics_text(&client, &b_url).await;
                samples.lock().expect("samples").push(Sample {
                    at: Instant::now(),
                    a: a.as_deref().map(owned).unwrap_or_default(),
                    b: b.as_deref().map(owned).unwrap_or_default(),
                });
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Commits on A: a warehouse, 8 items, 3 adjustments each; none can be published by A.
    let warehouse = a.create_warehouse("LEASE").await;
    let mut items = Vec::new();
    for n in 0..8 {
        items.push(a.create_item(&warehouse, &format!("L{n}"), 0, 0).await);
    }
    // Each item's stream as A committed it (created, a low-stock alert at 0, three changes).
    let mut versions = Vec::new();
    for item in &items {
        let mut version = Value::Null;
        for _ in 0..3 {
            let payload = a.adjust(item, 1, "RECEIVED").await;
            assert_eq!(payload["userErrors"], json!([]));
            version = payload["inventoryItem"]["version"].clone();
        }
        versions.push(version.as_u64().expect("version"));
    }
    let events = 1 + versions.iter().sum::<u64>();
    let touched: BTreeSet<u128> = std::iter::once(&warehouse)
        .chain(&items)
        .map(|id| Uuid::parse_str(id).expect("uuid").as_u128() % u128::from(SHARDS))
        .collect();
    let committed = Instant::now();

    // Well past the grace (2 s) and a full turn of B's sweeps (one shard a second), B has
    // published nothing of A's: its read models (shared tables) do not show A's items.
    let item_query = "query($i: ID!) { inventoryItem(id: $i) { onHand version } }";
    while committed.elapsed() < Duration::from_secs(6) {
        for item in &items {
            let data = b.data(item_query, json!({ "i": item })).await;
            assert!(
                data["inventoryItem"].is_null(),
                "B published A's row while A held its shard: {data}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let a_text = metrics_text(&client, &a.url).await.expect("A's metrics");
    let b_text = metrics_text(&client, &b.url).await.expect("B's metrics");
    assert_eq!(
        owned(&a_text).len(),
        SHARDS as usize,
        "A still holds every shard"
    );
    assert_eq!(value(&b_text, PUBLISHED), 0.0, "B published nothing");
    let waiting = value(&a_text, DEPTH);
    assert_eq!(waiting, events as f64, "A holds every event unpublished");

    // SIGKILL A: B takes its shards when the leases run out, and publishes every event.
    a.kill();
    let killed = Instant::now();
    let deadline = killed + Duration::from_secs(15);
    let takeover = loop {
        let text = metrics_text(&client, &b.url).await.unwrap_or_default();
        if owned(&text).len() == SHARDS as usize {
            break killed.elapsed();
        }
        assert!(Instant::now() < deadline, "B never took A's shards: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    for (item, version) in items.iter().zip(&versions) {
        loop {
            let data = b.data(item_query, json!({ "i": item })).await;
            if data["inventoryItem"] == json!({"onHand": 3, "version": version}) {
                break;
            }
            assert!(Instant::now() < deadline, "{item} never caught up: {data}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let published_after = killed.elapsed();
    // Each applied once: the initial quantity and three changes in every item's history.
    for item in &items {
        let history = b
            .data(
                "query($i: ID!) { inventoryHistory(itemId: $i, first: 50) { edges { cursor } } }",
                json!({ "i": item }),
            )
            .await;
        assert_eq!(
            history["inventoryHistory"]["edges"]
                .as_array()
                .map(Vec::len),
            Some(4),
            "{item}: {history}"
        );
    }
    assert_eq!(verify(temp.path(), &store_env).await, Vec::<String>::new());
    let b_text = metrics_text(&client, &b.url).await.expect("B's metrics");
    let published = value(&b_text, PUBLISHED);
    assert_eq!(published, events as f64, "B published every event once");

    stop.store(true, Ordering::Relaxed);
    sampler.await.expect("sampler");
    let samples = samples.lock().expect("samples");
    let both: Vec<String> = samples
        .iter()
        .filter(|s| !s.a.is_disjoint(&s.b))
        .map(|s| {
            format!(
                "{:?} after the kill: A {:?}, B {:?}",
                s.at.checked_duration_since(killed),
                s.a,
                s.b
            )
        })
        .collect();
    assert!(
        both.is_empty(),
        "a shard owned by both:\n{}",
        both.join("\n")
    );
    let a_held = samples
        .iter()
        .filter(|s| s.a.len() == SHARDS as usize)
        .count();
    assert!(
        a_held > 10,
        "A's leases were sampled live ({a_held} samples)"
    );
    eprintln!(
        "outbox leases: {SHARDS} shards, lease {LEASE_MS} ms; {events} events committed on A \
         in {} shards, {waiting} waiting on A; B took every shard {takeover:.2?} after SIGKILL, \
         all published and projected {published_after:.2?} after it; B published {published}; \
         {} samples of both instances, none with a shard owned twice; test {:.1?}",
        touched.len(),
        samples.len(),
        started.elapsed()
    );
}
