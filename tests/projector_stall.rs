//! A projector that stops is seen: while events wait for it and it applies nothing for
//! `--projector-stall-seconds`, `/health/ready` is 503 with the reason, the
//! `inventory_projector_stalled` gauge is 1 and the log says so once (error); once it applies
//! again, all of that turns back by itself, with one line in the log. The projector is held back
//! for real: on the embedded store by another connection holding the projection file's write
//! lock (as an operator's `sqlite3` shell in a transaction would), on DynamoDB by the fault proxy
//! throttling one projection table. `INVENTORY_TEST_BUS=rabbitmq` runs both through the broker.
//! The seconds it takes each way are printed, not asserted.

mod common;

use common::fault_proxy::FaultProxy;
use common::Server;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Short, so the test is quick; the default is 30.
const STALL_SECONDS: u64 = 2;
/// How long each turn of `/health/ready` may take before the test gives up: far above what it
/// takes (the stall limit, plus on SQLite one busy wait of the projector's write, 10 s).
const PATIENCE: Duration = Duration::from_secs(60);

const ITEM: &str = "query($i: ID!) { inventoryItem(id: $i) { onHand } }";

/// `/health/ready` polled until it answers `status`: how long that took, and its body.
async fn until_ready_answers(server: &Server, status: u16) -> (Duration, Value) {
    let started = Instant::now();
    let client = reqwest::Client::new();
    loop {
        let response = client
            .get(format!("{}/health/ready", server.url))
            .send()
            .await
            .expect("ready");
        let answered = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        if answered == status {
            return (started.elapsed(), body);
        }
        assert!(
            started.elapsed() < PATIENCE,
            "/health/ready never answered {status}; last {answered}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the stall gauge on `/metrics`.
async fn stalled_gauge(server: &Server) -> Option<f64> {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix("inventory_projector_stalled "))
        .and_then(|value| value.trim().parse().ok())
}

/// The server's log lines (JSON) at `level` whose message starts with `start`.
fn log_lines(log: &Path, level: &str, start: &str) -> usize {
    let text = std::fs::read_to_string(log).expect("read the server's log");
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| {
            line["level"] == level
                && line["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(start))
        })
        .count()
}

/// The environment of a server under test: its store, a short stall limit, JSON logs.
fn env<'a>(store: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut env = store.to_vec();
    env.extend([
        ("INVENTORY_PROJECTOR_STALL_SECONDS", "2"),
        ("INVENTORY_LOG_FORMAT", "json"),
        ("RUST_LOG", "warn"),
    ]);
    env
}

/// The story either way: a healthy projector, held back while a command lands, seen stalled,
/// let go, seen progressing again. `hold` and `release` are how this backend holds it back.
async fn held_back_and_let_go(
    server: &Server,
    log: &Path,
    hold: impl FnOnce(),
    release: impl FnOnce(),
) -> String {
    server.until_ready().await;
    let warehouse = server.create_warehouse("STALL").await;
    let item = server.create_item(&warehouse, "S-1", 5, 0).await;
    server
        .eventually(ITEM, json!({ "i": item }), |d| {
            d["inventoryItem"]["onHand"] == 5
        })
        .await;
    let (_, body) = until_ready_answers(server, 200).await;
    assert_eq!(body["projectorStalled"], false, "{body}");
    assert_eq!(stalled_gauge(server).await, Some(0.0));

    hold();
    let held = Instant::now();
    // The command is acknowledged (the store took it); its event waits for the projector.
    assert_eq!(
        server.adjust(&item, 3, "RECEIVED").await["userErrors"],
        json!([])
    );
    let (_, body) = until_ready_answers(server, 503).await;
    let to_stall = held.elapsed();
    assert_eq!(body["projectorStalled"], true, "{body}");
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.starts_with("projector stalled"), "{body}");
    // The store and the bus are fine: the stall alone makes it not ready.
    assert_eq!(body["store"], true, "{body}");
    assert_eq!(body["bus"], true, "{body}");
    assert_eq!(stalled_gauge(server).await, Some(1.0));
    // Still held, looked at again and again: still one line in the log.
    for _ in 0..3 {
        assert_eq!(
            until_ready_answers(server, 503).await.1["projectorStalled"],
            true
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        log_lines(log, "ERROR", "projector stalled"),
        1,
        "one error line per stall"
    );

    release();
    let (to_ready, body) = until_ready_answers(server, 200).await;
    assert_eq!(body["projectorStalled"], false, "{body}");
    assert!(body.get("reason").is_none(), "{body}");
    assert_eq!(stalled_gauge(server).await, Some(0.0));
    // Ready again because the held event was applied, not because the watch gave up.
    let data = server.data(ITEM, json!({ "i": item })).await;
    assert_eq!(data["inventoryItem"]["onHand"], 8, "{data}");
    assert_eq!(log_lines(log, "ERROR", "projector stalled"), 1);
    assert_eq!(
        log_lines(log, "WARN", "projector stall over"),
        1,
        "one line when it ends"
    );
    eprintln!(
        "stall limit {STALL_SECONDS} s: /health/ready 503 {:.2} s after the projector was held back, \
         200 again {:.2} s after it was let go; reason: {reason}",
        to_stall.as_secs_f64(),
        to_ready.as_secs_f64()
    );
    reason
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_projector_held_back_by_a_locked_projection_file_turns_ready_503_and_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let store = [("INVENTORY_STORE", "sqlite")];
    let server = Server::start_logging_to(dir.path(), &env(&store), &log).await;
    let lock = std::cell::RefCell::new(None);
    let reason = held_back_and_let_go(
        &server,
        &log,
        || {
            let connection = rusqlite::Connection::open(dir.path().join("projections.db"))
                .expect("open the projection file");
            // The write lock, held until released: the projector's writes wait, then fail busy.
            connection
                .execute_batch("BEGIN IMMEDIATE")
                .expect("take the write lock");
            *lock.borrow_mut() = Some(connection);
        },
        || {
            if let Some(connection) = lock.borrow_mut().take() {
                connection.execute_batch("ROLLBACK").expect("release");
            }
        },
    )
    .await;
    assert!(reason.contains("wait"), "{reason}");
    let differences = common::verify_until_consistent_with(
        dir.path(),
        vec![("INVENTORY_STORE".into(), "sqlite".into())],
    )
    .await;
    assert_eq!(differences, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_dynamodb_a_projector_held_back_by_a_throttled_table_turns_ready_503_and_back() {
    let Some(endpoint) = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())
    else {
        eprintln!("skipped: INVENTORY_TEST_DYNAMODB_ENDPOINT is not set (scripts/test.sh sets it)");
        return;
    };
    let proxy = FaultProxy::start(&endpoint, 3).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("server.log");
    let prefix = format!("{}stall_", common::prefix_of(dir.path()));
    let store = [
        ("INVENTORY_STORE", "dynamodb"),
        ("INVENTORY_DYNAMODB_ENDPOINT", proxy.url.as_str()),
        ("INVENTORY_TABLE_PREFIX", prefix.as_str()),
        ("INVENTORY_MIGRATE", "true"),
    ];
    let server = Server::start_logging_to(dir.path(), &env(&store), &log).await;
    let items = format!("{prefix}projection_items");
    let reason = held_back_and_let_go(
        &server,
        &log,
        || proxy.throttle_table(Some(&items)),
        || proxy.throttle_table(None),
    )
    .await;
    assert!(reason.contains("wait"), "{reason}");
    let direct = [
        ("INVENTORY_STORE", "dynamodb"),
        ("INVENTORY_DYNAMODB_ENDPOINT", endpoint.as_str()),
        ("INVENTORY_TABLE_PREFIX", prefix.as_str()),
    ];
    let differences = common::verify_until_consistent_with(
        dir.path(),
        direct
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
    .await;
    assert_eq!(differences, Vec::<String>::new());
}
