//! Reservations that expire, through the real server: an allocation still created at its
//! `expiresAt` is cancelled by the service (reason `expired`, stock released) within a few
//! seconds; confirming first clears the deadline; two instances on one store cancel each
//! allocation exactly once; a deadline survives SIGKILL and restart; a confirm racing the
//! expiry has exactly one winner. Runs on either backend and bus (see `common::backend_env`).

mod common;

use chrono::{DateTime, Utc};
use common::Server;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const CREATE: &str = "mutation($i: ID!, $q: Int!, $at: DateTime) {
    allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: $q, expiresAt: $at}) {
    allocation { id status expiresAt } inventoryItem { allocated available lowStock }
    userErrors { field code message } } }";
const CONFIRM: &str = "mutation($id: ID!) { allocationConfirm(input: {id: $id}) {
    allocation { status expiresAt } userErrors { code message } } }";
const ALLOCATION: &str = "query($id: ID!) { allocation(id: $id) {
    status cancelReason expiresAt updatedAt } }";
const ITEM: &str =
    "query($i: ID!) { inventoryItem(id: $i) { onHand allocated available lowStock } }";
const EVENTS: &str = "query($id: ID!) { events(aggregateId: $id, first: 50) {
    edges { node { eventType occurredAt metadata { actor idempotencyKey } } } } }";

fn in_ms(ms: i64) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::milliseconds(ms)
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Starts a server sweeping every `interval_ms`.
async fn start(dir: &std::path::Path, interval_ms: u64) -> Server {
    let interval = interval_ms.to_string();
    let server = Server::start_with(dir, &[("INVENTORY_EXPIRY_INTERVAL_MS", &interval)]).await;
    server.until_ready().await;
    server
}

async fn stocked_item(server: &Server, code: &str, on_hand: i64, threshold: i64) -> String {
    let warehouse = server.create_warehouse(code).await;
    server
        .create_item(&warehouse, "SKU", on_hand, threshold)
        .await
}

/// `allocationCreate`'s payload.
async fn allocate(server: &Server, item: &str, quantity: i64, at: Option<DateTime<Utc>>) -> Value {
    let variables = json!({ "i": item, "q": quantity, "at": at.map(rfc3339) });
    server.data(CREATE, variables).await["allocationCreate"].clone()
}

async fn allocate_until(server: &Server, item: &str, at: DateTime<Utc>) -> String {
    let payload = allocate(server, item, 1, Some(at)).await;
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    payload["allocation"]["id"].as_str().expect("id").to_owned()
}

/// The allocation's event types, and how many AllocationCancelled events it has.
async fn events(server: &Server, id: &str) -> Vec<Value> {
    let data = server.data(EVENTS, json!({ "id": id })).await;
    let edges = data["events"]["edges"].as_array().expect("edges").clone();
    edges.into_iter().map(|e| e["node"].clone()).collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default())
        .collect()
}

/// Polls the allocation until it is cancelled (panics after `within`); returns it.
async fn until_cancelled(server: &Server, id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let data = server.data(ALLOCATION, json!({ "id": id })).await;
        if data["allocation"]["status"] == "CANCELLED" {
            return data["allocation"].clone();
        }
        assert!(Instant::now() < deadline, "never expired: {data}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long after its deadline the cancel was committed (the event's timestamp), in ms.
async fn lateness(server: &Server, id: &str, deadline: DateTime<Utc>) -> i64 {
    let events = events(server, id).await;
    let cancel = events
        .iter()
        .find(|e| e["eventType"] == "AllocationCancelled")
        .expect("cancel");
    cancel["occurredAt"]
        .as_str()
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .expect("timestamp")
        .timestamp_millis()
        - deadline.timestamp_millis()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allocation_still_created_at_its_deadline_is_cancelled_as_expired() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path(), 1_000).await;
    let item = stocked_item(&server, "EXP", 10, 7).await;

    // A deadline must lie ahead, and at most 30 days.
    for at in [in_ms(-1_000), in_ms(31 * 86_400_000)] {
        let refused = allocate(&server, &item, 1, Some(at)).await;
        assert_eq!(
            refused["userErrors"][0]["code"], "INVALID_INPUT",
            "{refused}"
        );
        assert_eq!(
            refused["userErrors"][0]["field"],
            json!(["input", "expiresAt"])
        );
    }
    let deadline = in_ms(2_000);
    let created = allocate(&server, &item, 4, Some(deadline)).await;
    assert_eq!(created["userErrors"], json!([]), "{created}");
    let id = created["allocation"]["id"].as_str().expect("id").to_owned();
    let shown: DateTime<Utc> = created["allocation"]["expiresAt"]
        .as_str()
        .expect("at")
        .parse()
        .expect("time");
    assert_eq!(shown.timestamp_millis(), deadline.timestamp_millis());
    // Reserving 4 of 10 takes available to 6, at or below the threshold of 7.
    assert_eq!(
        created["inventoryItem"],
        json!({"allocated": 4, "available": 6, "lowStock": true})
    );

    let cancelled = until_cancelled(&server, &id, Duration::from_secs(8)).await;
    assert_eq!(cancelled["cancelReason"], "expired");
    assert_eq!(
        cancelled["expiresAt"], created["allocation"]["expiresAt"],
        "a cancel keeps it"
    );
    let late = lateness(&server, &id, deadline).await;
    println!("expired {late} ms after its deadline (sweeping every 1000 ms)");
    assert!((0..3_000).contains(&late), "{late} ms late");

    // The reservation went with the cancel, in the same commit, by the service itself.
    let item_now = server
        .eventually(ITEM, json!({ "i": item }), |d| {
            d["inventoryItem"]["allocated"] == 0
        })
        .await;
    assert_eq!(
        item_now["inventoryItem"],
        json!({"onHand": 10, "allocated": 0, "available": 10, "lowStock": false})
    );
    let stored = events(&server, &id).await;
    assert_eq!(types(&stored), ["AllocationCreated", "AllocationCancelled"]);
    assert_eq!(stored[1]["metadata"]["actor"], "system:expiry");
    assert_eq!(
        stored[1]["metadata"]["idempotencyKey"],
        format!("expire:{id}")
    );
    let item_events = events(&server, &item).await;
    assert_eq!(types(&item_events).last(), Some(&"StockDeallocated"));
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_confirmed_allocation_keeps_its_stock_and_has_no_deadline() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = start(temp.path(), 200).await;
    let item = stocked_item(&server, "CONF", 10, 0).await;
    let id = allocate_until(&server, &item, in_ms(1_500)).await;
    let confirmed = server.data(CONFIRM, json!({ "id": id })).await;
    assert_eq!(
        confirmed["allocationConfirm"],
        json!({"allocation": {"status": "CONFIRMED", "expiresAt": null}, "userErrors": []})
    );
    // Well past the deadline, and several sweeps later.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let data = server.data(ALLOCATION, json!({ "id": id })).await;
    assert_eq!(data["allocation"]["status"], "CONFIRMED");
    assert_eq!(data["allocation"]["expiresAt"], Value::Null);
    assert_eq!(
        types(&events(&server, &id).await),
        ["AllocationCreated", "AllocationConfirmed"]
    );
    let item_now = server.data(ITEM, json!({ "i": item })).await;
    assert_eq!(item_now["inventoryItem"]["allocated"], 1);
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_store_expire_each_allocation_exactly_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    // Both sweep often, so that both find the same allocations due and race to cancel them.
    let first = Arc::new(start(temp.path(), 100).await);
    let second = Arc::new(start(temp.path(), 100).await);
    let item = stocked_item(&first, "TWO", 100, 0).await;
    let deadline = in_ms(2_500);
    let mut ids = Vec::new();
    for n in 0..20 {
        let server = if n % 2 == 0 { &first } else { &second };
        ids.push(allocate_until(server, &item, deadline).await);
    }
    assert!(
        Utc::now() < deadline,
        "the allocations took too long to create"
    );
    let mut latest = 0;
    for (n, id) in ids.iter().enumerate() {
        let server = if n % 2 == 0 { &second } else { &first };
        let cancelled = until_cancelled(server, id, Duration::from_secs(10)).await;
        assert_eq!(cancelled["cancelReason"], "expired");
        latest = latest.max(lateness(server, id, deadline).await);
    }
    println!("20 allocations expired by two instances, the last {latest} ms after the deadline");
    for id in &ids {
        let stored = events(&first, id).await;
        assert_eq!(
            types(&stored),
            ["AllocationCreated", "AllocationCancelled"],
            "{id}"
        );
    }
    let cancels = types(&events(&first, &item).await)
        .into_iter()
        .filter(|t| *t == "StockDeallocated")
        .count();
    assert_eq!(cancels, 20, "each reservation released once");
    first
        .eventually(ITEM, json!({ "i": item }), |d| {
            d["inventoryItem"]["allocated"] == 0
        })
        .await;
    println!(
        "expiry commands per instance: {} / {}",
        expiries(&first).await,
        expiries(&second).await
    );
    assert_eq!(first.settle_and_verify().await, Vec::<String>::new());
}

/// This instance's `allocationExpire` commands by outcome, from `/metrics`.
async fn expiries(server: &Server) -> String {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("inventory_commands_total") && l.contains("allocationExpire"))
        .collect();
    lines.join(", ")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deadline_survives_sigkill_and_restart() {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut server = start(temp.path(), 1_000).await;
    let item = stocked_item(&server, "KILL", 10, 0).await;
    // One falls due while the service is down, one after it is back.
    let while_down = in_ms(1_500);
    // Far enough ahead for a slow start (DynamoDB with RabbitMQ: 3.4 s) to come first.
    let after = in_ms(10_000);
    let down_id = allocate_until(&server, &item, while_down).await;
    let after_id = allocate_until(&server, &item, after).await;
    server.kill();
    tokio::time::sleep(Duration::from_millis(2_500)).await;

    let restarted_at = Utc::now();
    let server = start(temp.path(), 1_000).await;
    let cancelled = until_cancelled(&server, &down_id, Duration::from_secs(8)).await;
    assert_eq!(cancelled["cancelReason"], "expired");
    let events_down = events(&server, &down_id).await;
    let landed: DateTime<Utc> = events_down[1]["occurredAt"]
        .as_str()
        .expect("ts")
        .parse()
        .expect("time");
    println!(
        "due while down: expired {} ms after the restart began",
        (landed - restarted_at).num_milliseconds()
    );
    // Created just before the kill, it may reach the read model only through the outbox now.
    let open = server
        .eventually(ALLOCATION, json!({ "id": after_id }), |d| {
            d["allocation"].is_object()
        })
        .await;
    if Utc::now() < after {
        assert_eq!(open["allocation"]["status"], "CREATED", "not due: {open}");
    }

    let cancelled = until_cancelled(&server, &after_id, Duration::from_secs(10)).await;
    assert_eq!(cancelled["cancelReason"], "expired");
    let late = lateness(&server, &after_id, after).await;
    println!("due after the restart: expired {late} ms after its deadline");
    assert!((0..3_000).contains(&late), "{late} ms late");
    for id in [&down_id, &after_id] {
        let stored = events(&server, id).await;
        assert_eq!(types(&stored), ["AllocationCreated", "AllocationCancelled"]);
    }
    server
        .eventually(ITEM, json!({ "i": item }), |d| {
            d["inventoryItem"]["allocated"] == 0
        })
        .await;
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_confirm_racing_the_expiry_has_exactly_one_winner() {
    let temp = tempfile::tempdir().expect("temp dir");
    // Two instances sweeping every 20 ms; confirms sent through both, each within 60 ms either
    // side of the shared deadline.
    let first = Arc::new(start(temp.path(), 20).await);
    let second = Arc::new(start(temp.path(), 20).await);
    let items = [
        stocked_item(&first, "RACE1", 100, 0).await,
        stocked_item(&first, "RACE2", 100, 0).await,
    ];
    const COUNT: usize = 24;
    let deadline = in_ms(3_000);
    let mut ids = Vec::new();
    for n in 0..COUNT {
        ids.push(allocate_until(&first, &items[n % 2], deadline).await);
    }
    assert!(
        in_ms(500) < deadline,
        "the allocations took too long to create"
    );
    let tasks: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let server = if n % 2 == 0 {
                first.clone()
            } else {
                second.clone()
            };
            let id = id.clone();
            // Spread evenly from 60 ms before the deadline to 60 ms after it.
            let offset = -60 + (120 * n as i64) / (COUNT as i64 - 1);
            let at = deadline + chrono::Duration::milliseconds(offset);
            tokio::spawn(async move {
                let wait = (at - Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                server.data(CONFIRM, json!({ "id": id })).await["allocationConfirm"].clone()
            })
        })
        .collect();
    let (mut confirmed, mut expired) = (0, 0);
    let mut confirmed_on = [0, 0];
    for (n, (task, id)) in tasks.into_iter().zip(&ids).enumerate() {
        let answer = task.await.expect("task");
        let status = until_settled(&first, id).await;
        let stored = events(&first, id).await;
        if answer["userErrors"] == json!([]) {
            assert_eq!(answer["allocation"]["status"], "CONFIRMED");
            assert_eq!(status, "CONFIRMED", "{id}");
            assert_eq!(types(&stored), ["AllocationCreated", "AllocationConfirmed"]);
            confirmed += 1;
            confirmed_on[n % 2] += 1;
        } else {
            assert_eq!(
                answer["userErrors"][0]["code"], "INVALID_STATE_TRANSITION",
                "{answer}"
            );
            assert_eq!(status, "CANCELLED", "{id}");
            assert_eq!(types(&stored), ["AllocationCreated", "AllocationCancelled"]);
            expired += 1;
        }
    }
    println!("confirm versus expiry: {confirmed} confirmed, {expired} expired of {COUNT}");
    assert_eq!(confirmed + expired, COUNT);
    for (item, held) in items.iter().zip(confirmed_on) {
        first
            .eventually(ITEM, json!({ "i": item }), |d| {
                d["inventoryItem"]["allocated"] == held
            })
            .await;
    }
    assert_eq!(first.settle_and_verify().await, Vec::<String>::new());
}

/// The allocation's status once it has left CREATED (a refused confirm leaves it to the
/// sweeper for a moment).
async fn until_settled(server: &Server, id: &str) -> String {
    let data = server
        .eventually(ALLOCATION, json!({ "id": id }), |d| {
            d["allocation"]["status"] != "CREATED"
        })
        .await;
    data["allocation"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
