//! Scenario 5: commit-to-subscriber lag. Two subscriptions are open (`inventoryItemChanged` and
//! `lowStockAlerts` on the warehouse) while an open-loop schedule of `inventoryAdjust` runs at
//! a fixed rate, moving items across their reorder threshold and back (-15, +15, ...). For each
//! event, lag = (subscription message received) − (mutation response received), matched by
//! item and version. It can be negative: the message may overtake the HTTP response.

use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::client::{Gql, Outcome, Subscription};
use crate::scenarios::{ADJUST, CROSSING_THRESHOLD};
use crate::stats::Row;

/// What one committed mutation told us: when its response arrived, and whether it crossed.
struct Response {
    at: Instant,
    available: i64,
}

/// Runs the scenario for `measure` at `rate` mutations/s; one row per subscription and one
/// for the mutations themselves.
pub async fn subscriber_lag(
    gql: &Gql,
    base: &str,
    warehouse: &str,
    items: &[String],
    rate: f64,
    measure: Duration,
) -> anyhow::Result<Vec<Row>> {
    let changed = Subscription::open(
        base,
        "subscription($w: ID) { inventoryItemChanged(warehouseId: $w) { id version } }",
        json!({ "w": warehouse }),
    )
    .await?;
    let alerts = Subscription::open(
        base,
        "subscription($w: ID) { lowStockAlerts(warehouseId: $w) { itemId sequenceNumber } }",
        json!({ "w": warehouse }),
    )
    .await?;
    // Let the server register both subscriptions before the first commit.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stop = Instant::now() + measure + Duration::from_secs(3);
    let changed = tokio::spawn(collect(changed, "id", "version", stop));
    let alerts = tokio::spawn(collect(alerts, "itemId", "sequenceNumber", stop));

    let sent = drive(gql, items, rate, measure).await;
    let changed = changed.await??;
    let alerts = alerts.await??;
    let Sent {
        responses,
        failures,
        mut latencies,
        achieved,
    } = sent;
    let (mut changed_lags, folded) = changed_lags(&changed, &responses);
    let mut alert_lags = alert_lags(&alerts, &responses);
    let dips = responses
        .values()
        .filter(|r| r.available <= CROSSING_THRESHOLD)
        .count();

    let mut command = Row::new(
        "s5_open_loop_commands",
        "5. open-loop inventoryAdjust at half peak",
    );
    command
        .set("ops", responses.len() as f64)
        .set("opsPerSec", achieved)
        .set("targetRate", rate.max(1.0))
        .set("failures", failures as f64)
        .latencies(&mut latencies);
    let mut changed_row = Row::new(
        "s5_lag_item_changed",
        "5. lag to inventoryItemChanged subscriber",
    );
    changed_row
        .set("events", changed_lags.len() as f64)
        .set("folded", folded as f64)
        .set(
            "missed",
            (responses.len() - changed_lags.len().min(responses.len())) as f64,
        )
        .samples_ms(&mut changed_lags);
    let mut alert_row = Row::new("s5_lag_low_stock", "5. lag to lowStockAlerts subscriber");
    alert_row
        .set("events", alert_lags.len() as f64)
        .set("missed", (dips - alert_lags.len().min(dips)) as f64)
        .samples_ms(&mut alert_lags);
    Ok(vec![command, changed_row, alert_row])
}

/// What the open loop sent and got back.
struct Sent {
    responses: HashMap<(String, i64), Response>,
    failures: u64,
    latencies: Vec<Duration>,
    achieved: f64,
}

/// Sends adjustments at `rate` per second for `measure`, without waiting for replies.
async fn drive(gql: &Gql, items: &[String], rate: f64, measure: Duration) -> Sent {
    let responses: Arc<Mutex<HashMap<(String, i64), Response>>> = Arc::default();
    let failures = Arc::new(Mutex::new(0u64));
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let rate = rate.max(1.0);
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut sent = 0u64;
    let mut tasks = Vec::new();
    while started.elapsed() < measure {
        ticker.tick().await;
        let item = items[(sent as usize) % items.len()].clone();
        // Each item alternates -15 / +15 (see CROSSING_ON_HAND).
        let delta = if (sent / items.len() as u64).is_multiple_of(2) {
            -15
        } else {
            15
        };
        sent += 1;
        let (gql, responses, failures, latencies) = (
            gql.clone(),
            responses.clone(),
            failures.clone(),
            latencies.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let began = Instant::now();
            let outcome = gql
                .command(ADJUST, json!({ "i": item, "d": delta }), "inventoryAdjust")
                .await;
            let at = Instant::now();
            latencies.lock().await.push(at - began);
            match outcome {
                Outcome::Ok(payload) => {
                    let node = &payload["inventoryItem"];
                    if let Some(version) = node["version"].as_i64() {
                        let available = node["available"].as_i64().unwrap_or(i64::MAX);
                        responses
                            .lock()
                            .await
                            .insert((item, version), Response { at, available });
                    }
                }
                other => {
                    let mut failures = failures.lock().await;
                    if *failures < 3 {
                        eprintln!("  s5: failed command: {other:?}");
                    }
                    *failures += 1;
                }
            }
        }));
    }
    let achieved = sent as f64 / started.elapsed().as_secs_f64();
    for task in tasks {
        let _ = task.await;
    }
    let responses = std::mem::take(&mut *responses.lock().await);
    let failures = *failures.lock().await;
    let latencies = std::mem::take(&mut *latencies.lock().await);
    Sent {
        responses,
        failures,
        latencies,
        achieved,
    }
}

/// Each committed mutation is delivered by the first read-model message of its item at its
/// version or later (the projector may fold several commits into one message): the lags, and
/// how many were folded.
fn changed_lags(
    changed: &HashMap<(String, i64), Instant>,
    responses: &HashMap<(String, i64), Response>,
) -> (Vec<f64>, usize) {
    let mut by_item: HashMap<&str, Vec<(i64, Instant)>> = HashMap::new();
    for ((item, version), at) in changed {
        by_item.entry(item).or_default().push((*version, *at));
    }
    for messages in by_item.values_mut() {
        messages.sort_by_key(|(version, _)| *version);
    }
    let mut lags = Vec::new();
    let mut folded = 0usize;
    for ((item, version), response) in responses {
        let Some(messages) = by_item.get(item.as_str()) else {
            continue;
        };
        let first = messages.partition_point(|(v, _)| v < version);
        if let Some((delivered, at)) = messages.get(first) {
            if delivered != version {
                folded += 1;
            }
            lags.push(signed_ms(*at, response.at));
        }
    }
    (lags, folded)
}

/// The alert is an event of the same commit: its sequence number is the version the mutation
/// returned, or one below when the stock change follows it.
fn alert_lags(
    alerts: &HashMap<(String, i64), Instant>,
    responses: &HashMap<(String, i64), Response>,
) -> Vec<f64> {
    let mut lags = Vec::new();
    for ((item, sequence), at) in alerts {
        let response = responses
            .get(&(item.clone(), *sequence))
            .or_else(|| responses.get(&(item.clone(), sequence + 1)));
        if let Some(response) = response {
            lags.push(signed_ms(*at, response.at));
        }
    }
    lags
}

fn signed_ms(message: Instant, response: Instant) -> f64 {
    if message >= response {
        (message - response).as_secs_f64() * 1_000.0
    } else {
        -((response - message).as_secs_f64() * 1_000.0)
    }
}

/// Every message until `stop`, keyed by (item id, version): the first arrival of each.
async fn collect(
    mut subscription: Subscription,
    id_field: &'static str,
    version_field: &'static str,
    stop: Instant,
) -> anyhow::Result<HashMap<(String, i64), Instant>> {
    let mut seen = HashMap::new();
    loop {
        let left = stop.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(seen);
        }
        let Some(message) = subscription.next(left).await else {
            return Ok(seen);
        };
        let (at, data) = message?;
        let Some(node) = data.as_object().and_then(|o| o.values().next()) else {
            continue;
        };
        if let (Some(id), Some(version)) = (node[id_field].as_str(), node[version_field].as_i64()) {
            seen.entry((id.to_owned(), version)).or_insert(at);
        }
    }
}
