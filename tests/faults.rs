//! Real faults: the process is killed with SIGKILL in the middle of a burst of mutations and
//! restarted on the same data directory. Every acknowledged mutation must be in the store and,
//! after catch-up, in every projection, and nothing may be applied twice.

mod common;

use common::Server;
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_mid_burst_loses_no_acknowledged_mutation_and_applies_none_twice() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_on(temp.path()).await;
    let warehouse = server.create_warehouse("CRASH").await;
    let item = server.create_item(&warehouse, "KILLED", 0, 0).await;

    // 8 writers each send +1 adjustments tagged with a unique reference until the kill.
    let server_ref = Arc::new(server.url.clone());
    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged_so_far = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::new();
    let writers: Vec<_> = (0..8)
        .map(|writer| {
            let url = server_ref.clone();
            let stop = stop.clone();
            let counter = acknowledged_so_far.clone();
            let client = client.clone();
            let item = item.clone();
            tokio::spawn(async move {
                let mut acknowledged = Vec::new();
                for n in 0..10_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let reference = format!("w{writer}-{n}");
                    let response = client
                        .post(format!("{url}/graphql"))
                        .json(&json!({
                            "query": "mutation($i: ID!, $r: String!) { inventoryAdjust(input: {itemId: $i, delta: 1, reason: RECEIVED, reference: $r}) { userErrors { code } } }",
                            "variables": { "i": item, "r": reference },
                        }))
                        .send()
                        .await;
                    let Ok(response) = response else { break };
                    let Ok(body) = response.json::<serde_json::Value>().await else { break };
                    if body["data"]["inventoryAdjust"]["userErrors"] == json!([]) {
                        acknowledged.push(reference);
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                }
                acknowledged
            })
        })
        .collect();

    // Kill once the burst is well under way (whatever the backend's speed).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while acknowledged_so_far.load(Ordering::Relaxed) < 40 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.kill();
    stop.store(true, Ordering::Relaxed);
    let mut acknowledged = Vec::new();
    for writer in writers {
        acknowledged.extend(writer.await.expect("writer"));
    }
    assert!(
        acknowledged.len() > 20,
        "the burst was under way: {} acknowledged",
        acknowledged.len()
    );
    drop(server);

    let server = Server::start_on(temp.path()).await;
    // The store: every acknowledged reference exactly once.
    let mut references: HashMap<String, usize> = HashMap::new();
    let mut after = serde_json::Value::Null;
    loop {
        let page = server
            .data(
                "query($i: ID!, $after: String) { events(aggregateId: $i, first: 500, after: $after) {
                    edges { node { eventType data } } pageInfo { hasNextPage endCursor } } }",
                json!({ "i": item, "after": after }),
            )
            .await;
        for edge in page["events"]["edges"].as_array().expect("edges") {
            if let Some(reference) = edge["node"]["data"]["reference"].as_str() {
                *references.entry(reference.to_owned()).or_default() += 1;
            }
        }
        if page["events"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["events"]["pageInfo"]["endCursor"].clone();
    }
    for reference in &acknowledged {
        assert_eq!(
            references.get(reference),
            Some(&1),
            "acknowledged {reference} is stored once"
        );
    }
    assert!(
        references.values().all(|n| *n == 1),
        "no mutation stored twice"
    );
    let stored = references.len() as i64;
    eprintln!(
        "acknowledged {} before SIGKILL; {} stored (the rest were in flight)",
        acknowledged.len(),
        stored
    );

    // The projections catch up from the outbox and agree with the store.
    let data = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand version } }",
            json!({ "i": item }),
            |d| d["inventoryItem"]["onHand"] == stored,
        )
        .await;
    assert_eq!(data["inventoryItem"]["onHand"], stored);
    let history = server
        .data(
            "query($i: ID!) { inventoryHistory(itemId: $i, first: 1) { edges { node { reason } } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        history["inventoryHistory"]["edges"][0]["node"]["reason"],
        "initial"
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn sigterm_finishes_in_flight_work_and_exits_cleanly() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_on(temp.path()).await;
    let warehouse = server.create_warehouse("TERM").await;
    let item = server.create_item(&warehouse, "T", 5, 0).await;
    server.adjust(&item, 5, "RECEIVED").await;
    let status = server.terminate();
    assert!(status.success(), "graceful exit: {status:?}");
    let differences = if std::env::var("INVENTORY_TEST_BUS").as_deref() == Ok("rabbitmq") {
        // Through the broker, shutdown publishes what the outbox holds (confirmed, so safe in
        // the durable queue); the projectors apply it when an instance next consumes.
        let server = Server::start_on(temp.path()).await;
        server.settle_and_verify().await
    } else {
        // In-process, everything committed before the signal is projected before exit.
        common::verify_until_consistent(temp.path()).await
    };
    assert_eq!(differences, Vec::<String>::new());
}
