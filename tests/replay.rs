//! Replay: `inventory-service replay` and the `projectionRebuildStart` mutation rebuild
//! projections into fresh tables while the API keeps serving the old ones and writes keep
//! coming, then switch over. An interrupted rebuild (SIGKILL) resumes where it stopped and ends
//! with the same tables as a replay from scratch.

mod common;

use common::{backend_env, Server, BINARY};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many projections a full rebuild covers (`ProjectionName::ALL`).
const PROJECTIONS: usize = inventory_service::projection::layout::ProjectionName::ALL.len();

const SNAPSHOT: &str = "query($w: ID!) {
    inventoryItems(warehouseId: $w, first: 100) { edges { node { sku onHand allocated version } } }
    stockMovementReport(warehouseId: $w) { totals { received removed allocated net } }
}";

/// What readers see of a warehouse: every item and the movement totals.
async fn readers_see(server: &Server, warehouse: &str) -> Value {
    server.data(SNAPSHOT, json!({ "w": warehouse })).await
}

async fn generations(server: &Server) -> Vec<i64> {
    let data = server
        .data(
            "{ projectionGenerations { projection generation } }",
            json!({}),
        )
        .await;
    data["projectionGenerations"]
        .as_array()
        .expect("generations")
        .iter()
        .map(|g| g["generation"].as_i64().expect("generation"))
        .collect()
}

/// Adjusts the items round-robin, one every 25 ms, until stopped; returns how many were
/// accepted. (Paced so the DynamoDB emulator, which copies a table per transaction, keeps up.)
fn keep_writing(
    server: Arc<Server>,
    items: Vec<String>,
    stop: Arc<AtomicI64>,
) -> tokio::task::JoinHandle<i64> {
    tokio::spawn(async move {
        let mut accepted = 0;
        while stop.load(Ordering::SeqCst) == 0 {
            let item = &items[accepted as usize % items.len()];
            let result = server.adjust(item, 1, "RECEIVED").await;
            assert_eq!(result["userErrors"], json!([]), "{result}");
            accepted += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        accepted
    })
}

fn replay_command(server: &Server, args: &[&str]) -> Command {
    let mut command = Command::new(BINARY);
    command
        .arg("replay")
        .args(args)
        .arg("--data-dir")
        .arg(&server.data_dir)
        .envs(backend_env(&server.data_dir))
        .env("RUST_LOG", "warn");
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_replay_resumes_and_switches_over_while_the_api_serves_and_writes_continue()
{
    let server = Arc::new(Server::start().await);
    let warehouse = server.create_warehouse("REPLAY").await;
    let mut items = Vec::new();
    for n in 0..4 {
        items.push(
            server
                .create_item(&warehouse, &format!("R-{n}"), 10, 5)
                .await,
        );
    }
    for round in 0..40 {
        let result = server.adjust(&items[round % 4], 2, "RECEIVED").await;
        assert_eq!(result["userErrors"], json!([]));
    }

    // Writes continue through the whole rebuild.
    let stop = Arc::new(AtomicI64::new(0));
    let writer = keep_writing(server.clone(), items.clone(), stop.clone());

    // A slow rebuild (10 events a page, 100 ms between pages), killed once it saved progress.
    let mut first = replay_command(
        &server,
        &["--all", "--page-size", "10", "--throttle-ms", "100"],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("start replay");
    let stderr = first.stderr.take().expect("stderr");
    let progress = tokio::task::spawn_blocking(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done: Option<u64> = line
                .split(": ")
                .nth(1)
                .and_then(|rest| rest.split(' ').next())
                .and_then(|n| n.parse().ok());
            if done.is_some_and(|n| n >= 30) {
                return Some(line);
            }
        }
        None
    });
    let line = tokio::time::timeout(Duration::from_secs(60), progress)
        .await
        .expect("replay reported progress in time")
        .expect("join")
        .expect("a progress line");
    first.kill().expect("SIGKILL the replay");
    let _ = first.wait();
    eprintln!("killed the replay after: {line}");

    // Interrupted: recorded with its progress, readers still on generation 0, and the API
    // still answers from the old tables.
    let status = server
        .data(
            "{ projectionRebuild { generation state eventsDone projections } }",
            json!({}),
        )
        .await["projectionRebuild"]
        .clone();
    assert_eq!(status["generation"], 1, "{status}");
    assert!(
        status["eventsDone"].as_u64().expect("eventsDone") >= 30,
        "{status}"
    );
    assert_eq!(
        status["projections"].as_array().map(Vec::len),
        Some(PROJECTIONS)
    );
    assert_eq!(generations(&server).await, vec![0; PROJECTIONS]);
    let during = readers_see(&server, &warehouse).await;
    assert_eq!(
        during["inventoryItems"]["edges"].as_array().map(Vec::len),
        Some(4)
    );

    // Starting a different rebuild now is refused: the interrupted one must be resumed first.
    let refused = replay_command(&server, &["--projection", "warehouses"])
        .output()
        .expect("run replay");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("in progress"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Resume (no projection named): it continues from the saved cursor, not from scratch.
    let resumed = replay_command(&server, &["--page-size", "10"])
        .output()
        .expect("resume replay");
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let summary: Value = serde_json::from_slice(&resumed.stdout).expect("summary JSON");
    assert_eq!(summary["generation"], 1, "{summary}");
    assert!(
        summary["resumedAtEvents"]
            .as_u64()
            .expect("resumedAtEvents")
            >= 30,
        "resumed where it stopped: {summary}"
    );
    stop.store(1, Ordering::SeqCst);
    let written_during = writer.await.expect("writer");
    assert!(written_during > 0, "writes went on during the rebuild");

    // Switched: every process routes to generation 1 within a second or two.
    let deadline = Instant::now() + Duration::from_secs(10);
    while generations(&server).await != vec![1; PROJECTIONS] {
        assert!(Instant::now() < deadline, "the server never switched over");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Writes after the switch land in the new tables.
    let after = server.adjust(&items[0], 7, "RECEIVED").await;
    assert_eq!(after["userErrors"], json!([]));
    let on_hand = after["inventoryItem"]["onHand"].clone();
    server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand } }",
            json!({ "i": items[0] }),
            |d| d["inventoryItem"]["onHand"] == on_hand,
        )
        .await;

    // Same result as a replay from scratch; and every write is counted exactly once.
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    let seen = readers_see(&server, &warehouse).await;
    let received = seen["stockMovementReport"]["totals"]["received"]
        .as_i64()
        .expect("received");
    assert_eq!(received, 4 * 10 + 40 * 2 + written_during + 7, "{seen}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_mutation_rebuilds_one_projection_and_reports_progress() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("ADMIN").await;
    let item = server.create_item(&warehouse, "A-1", 50, 5).await;
    for _ in 0..20 {
        server.adjust(&item, -1, "DAMAGED").await;
    }
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    let before = readers_see(&server, &warehouse).await;

    const START: &str = "mutation($p: [ProjectionName!]!, $t: Int!) {
        projectionRebuildStart(input: {projections: $p, throttleMs: $t}) {
            rebuild { generation state projections } userErrors { code field message } } }";
    // Bad input changes nothing.
    let bad = server
        .data(START, json!({ "p": ["STOCK_MOVEMENTS"], "t": -1 }))
        .await;
    assert_eq!(
        bad["projectionRebuildStart"]["userErrors"][0]["code"],
        "INVALID_INPUT"
    );
    let nothing = server
        .data("{ projectionRebuild { generation } }", json!({}))
        .await;
    assert_eq!(nothing["projectionRebuild"], Value::Null);

    let started = server
        .data(START, json!({ "p": ["STOCK_MOVEMENTS"], "t": 0 }))
        .await;
    assert_eq!(
        started["projectionRebuildStart"]["userErrors"],
        json!([]),
        "{started}"
    );
    assert_eq!(
        started["projectionRebuildStart"]["rebuild"]["projections"],
        json!(["STOCK_MOVEMENTS"])
    );
    // A second start while it runs is refused.
    let again = server
        .data(START, json!({ "p": ["CURRENT_INVENTORY"], "t": 0 }))
        .await;
    assert_eq!(
        again["projectionRebuildStart"]["userErrors"][0]["code"], "INVALID_STATE_TRANSITION",
        "{again}"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = server
            .data(
                "{ projectionRebuild { generation state eventsDone eventsTotal eventsPerSecond error } }",
                json!({}),
            )
            .await["projectionRebuild"]
            .clone();
        if status["state"] != "RUNNING" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "rebuild never finished: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status["state"], "DONE", "{status}");
    assert_eq!(status["generation"], 1);
    // 1 warehouse + 1 item created + 20 adjustments.
    assert_eq!(status["eventsDone"], 22, "{status}");
    assert_eq!(status["eventsTotal"], 22, "{status}");

    // Only the movement report moved to generation 1; readers see the same rows.
    // In the order of `ProjectionName::ALL`: the movement report is the fifth.
    assert_eq!(generations(&server).await, vec![0, 0, 0, 0, 1, 0]);
    assert_eq!(readers_see(&server, &warehouse).await, before);
    server.adjust(&item, 5, "RECEIVED").await;
    server
        .eventually(
            "query($w: ID!) { stockMovementReport(warehouseId: $w) { totals { received } } }",
            json!({ "w": warehouse }),
            |d| d["stockMovementReport"]["totals"]["received"] == 55,
        )
        .await;
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}
