//! The layout handshake of a replay: two servers share one store and consume one broker queue;
//! one is paused (SIGSTOP) while a `replay` rebuilds every projection and writes go on through
//! the other. The replay does not wait on a clock for the paused one: it proceeds once its
//! lease lapsed, naming it fenced; resumed (SIGCONT) with deliveries it took before the pause,
//! it re-reads the layout before projecting them, so nothing lands in a retired generation, and
//! the switched tables equal a rebuild from every stored event.

mod common;

use common::{backend_env, prefix_of, verify_until_consistent_with, Server, BINARY};
use serde_json::json;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn signal(server: &Server, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &server.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {signal} {}", server.pid());
}

/// Messages the broker delivered on `queue` and nobody has acknowledged yet.
fn unacknowledged(queue: &str) -> u64 {
    let output = Command::new("rabbitmqctl")
        .args(["list_queues", "-q", "name", "messages_unacknowledged"])
        .output()
        .expect("run rabbitmqctl");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            (fields.next()? == queue).then(|| fields.next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Rows of the current-inventory table in generation 0's file (the embedded store), which the
/// replay retires: a fenced process must not write there again.
fn embedded_generation_zero_items(data_dir: &std::path::Path) -> Option<i64> {
    let file = data_dir.join("projections.db");
    let conn = rusqlite::Connection::open(file).ok()?;
    conn.query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
        .ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_process_paused_during_a_replay_is_fenced_and_projects_nothing_into_a_retired_generation()
{
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let prefix = format!("{}.", prefix_of(dir));
    let bus = [
        ("INVENTORY_BUS", "rabbitmq"),
        ("INVENTORY_BUS_PREFIX", prefix.as_str()),
    ];
    let mut env = backend_env(dir);
    env.extend(bus.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let embedded = !env
        .iter()
        .any(|(k, v)| k == "INVENTORY_STORE" && v == "dynamodb");

    let writer = Server::start_with(dir, &bus).await;
    writer.until_ready().await;
    let paused_log = dir.join("paused.log");
    let mut paused = Server::start_logging_to(dir, &bus, &paused_log).await;
    paused.until_ready().await;
    let warehouse = writer.create_warehouse("FENCE").await;
    let mut items = Vec::new();
    for n in 0..12 {
        items.push(
            writer
                .create_item(&warehouse, &format!("F-{n}"), 10, 2)
                .await,
        );
    }
    assert_eq!(
        verify_until_consistent_with(dir, env.clone()).await,
        Vec::<String>::new()
    );

    // A slow replay of every projection (10 events a page, 150 ms between pages).
    let replay_log = dir.join("replay.log");
    let mut replay = Command::new(BINARY)
        .args([
            "replay",
            "--all",
            "--page-size",
            "10",
            "--throttle-ms",
            "150",
        ])
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&replay_log).expect("replay log"))
        .spawn()
        .expect("start replay");
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&paused, "-STOP");
    let paused_at = Instant::now();

    // Writes go on through the other server; the broker hands the paused one its share, which
    // waits, delivered and unacknowledged, until it resumes.
    let queue = format!("{prefix}inventory.projections");
    let held = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampling = {
        let (queue, held, done) = (queue.clone(), held.clone(), done.clone());
        tokio::task::spawn_blocking(move || {
            while !done.load(Ordering::SeqCst) {
                held.fetch_max(unacknowledged(&queue), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let mut writes = 0;
    while replay.try_wait().expect("replay status").is_none() {
        let item = &items[writes % items.len()];
        let result = writer.adjust(item, 1, "RECEIVED").await;
        assert_eq!(result["userErrors"], json!([]), "{result}");
        writes += 1;
        assert!(
            paused_at.elapsed() < Duration::from_secs(240),
            "the replay did not finish with a process paused"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    done.store(true, Ordering::SeqCst);
    sampling.await.expect("sampling");
    let held = held.load(Ordering::SeqCst);
    let finished = replay.wait_with_output().expect("replay output");
    let replay_stderr = std::fs::read_to_string(&replay_log).unwrap_or_default();
    assert!(finished.status.success(), "replay failed: {replay_stderr}");
    println!(
        "replay done {:.1}s after the pause; {writes} writes meanwhile; up to {held} deliveries held by the paused process",
        paused_at.elapsed().as_secs_f64()
    );
    // The replay went on without the paused process, and said so.
    let pid = format!("pid {}", paused.pid());
    assert!(
        replay_stderr.contains("fenced") && replay_stderr.contains(&pid),
        "the replay names the paused process ({pid}) fenced: {replay_stderr}"
    );
    assert!(held > 0, "the paused process held deliveries to project");
    let retired_rows = if embedded {
        let rows = embedded_generation_zero_items(dir);
        assert_eq!(rows, Some(0), "generation 0's items were retired");
        rows
    } else {
        None
    };

    // Resumed, it projects what it held — into the tables that serve now.
    signal(&paused, "-CONT");
    let deadline = Instant::now() + Duration::from_secs(60);
    while unacknowledged(&queue) > 0 {
        assert!(
            Instant::now() < deadline,
            "the resumed process never caught up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fenced = common::edge::metric(&paused, "inventory_projection_layout_fenced_total").await;
    assert!(
        fenced >= 1.0,
        "the resumed process counts itself fenced ({fenced})"
    );
    let log = std::fs::read_to_string(&paused_log).unwrap_or_default();
    assert!(
        log.contains("lease lapsed"),
        "the resumed process says it was fenced: {log}"
    );
    if embedded {
        assert_eq!(
            embedded_generation_zero_items(dir),
            retired_rows,
            "nothing was projected into the retired generation"
        );
    }
    assert_eq!(
        verify_until_consistent_with(dir, env.clone()).await,
        Vec::<String>::new(),
        "the switched tables equal a rebuild from every stored event"
    );
    // Every write reached the tables readers see, whichever process projected it.
    let data = paused
        .data(
            "query($w: ID!) { inventoryItems(warehouseId: $w, first: 100) { edges { node { onHand } } } }",
            json!({ "w": warehouse }),
        )
        .await;
    let on_hand: i64 = data["inventoryItems"]["edges"]
        .as_array()
        .expect("items")
        .iter()
        .map(|e| e["node"]["onHand"].as_i64().expect("onHand"))
        .sum();
    assert_eq!(on_hand, 12 * 10 + writes as i64);
    // Stopped cleanly, a server removes its heartbeat row: no replay waits for it to lapse.
    let status = paused.terminate();
    assert!(status.success(), "{status:?}");
    if embedded {
        assert_eq!(
            embedded_heartbeats(dir),
            Some(1),
            "only the running server's row is left"
        );
    }
}

fn embedded_heartbeats(data_dir: &std::path::Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(data_dir.join("projections.db")).ok()?;
    conn.query_row("SELECT COUNT(*) FROM heartbeats", [], |r| r.get(0))
        .ok()
}
