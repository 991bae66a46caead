//! Backups through the real binary: `export` of a store the service wrote, `import` into an
//! empty store, and the restored service answering every query as the original did; moving
//! from SQLite to DynamoDB and back; files and targets that are refused (with their line or
//! reason, the target unchanged); an interrupted import run again; and an export taken while
//! the service writes, which must be a consistent cut. Runs on the backend of
//! `INVENTORY_TEST_BACKEND` (SQLite by default); the move needs
//! `INVENTORY_TEST_DYNAMODB_ENDPOINT`.

mod common;

use common::{backend_env, Server, BINARY};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

type Env = Vec<(String, String)>;

/// A data directory under `root` whose name (and so its DynamoDB table prefix) is unique to
/// this run: the emulator keeps tables between runs.
fn data_dir(root: &tempfile::TempDir, name: &str) -> PathBuf {
    let unique = root
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    root.path().join(format!("{name}{unique}"))
}

/// Runs `inventory-service <args> --data-dir <dir>` with `env`; (success, stdout, stderr).
async fn cli(args: &[&str], dir: &Path, env: &Env) -> (bool, String, String) {
    let output = tokio::process::Command::new(BINARY)
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "0")
        .output()
        .await
        .expect("run inventory-service");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

async fn export(dir: &Path, env: &Env, out: &Path, keys: bool) -> Value {
    let out = out.to_string_lossy().into_owned();
    let mut args = vec!["export", "--out", out.as_str()];
    if keys {
        args.push("--include-keys");
    }
    let (ok, stdout, stderr) = cli(&args, dir, env).await;
    assert!(ok, "export failed: {stderr}");
    serde_json::from_str(stdout.trim()).expect("export summary")
}

async fn import(dir: &Path, env: &Env, file: &Path) -> (bool, String, String) {
    cli(&["import", "--in", &file.to_string_lossy()], dir, env).await
}

/// The event lines of a backup (header and trailer left out), in file order.
fn event_lines(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).expect("read backup");
    text.lines()
        .filter(|line| line.contains("\"eventId\""))
        .map(str::to_owned)
        .collect()
}

fn dynamodb_env(dir: &Path) -> Option<Env> {
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT").ok()?;
    Some(vec![
        ("INVENTORY_STORE".into(), "dynamodb".into()),
        ("INVENTORY_DYNAMODB_ENDPOINT".into(), endpoint),
        (
            "INVENTORY_TABLE_PREFIX".into(),
            format!("{}_", common::prefix_of(dir)),
        ),
        ("INVENTORY_MIGRATE".into(), "true".into()),
    ])
}

fn sqlite_env() -> Env {
    vec![("INVENTORY_STORE".into(), "sqlite".into())]
}

async fn start_with_env(dir: &Path, env: &Env) -> Server {
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let server = Server::start_with(dir, &extra).await;
    server.until_ready().await;
    server
}

async fn mutate(server: &Server, document: &str, variables: Value, field: &str) -> Value {
    let data = server.data(document, variables).await;
    assert_eq!(data[field]["userErrors"], json!([]), "{field}: {data}");
    data[field].clone()
}

/// Warehouses, items, adjustments and allocations in every state, one adjustment with an
/// idempotency key; returns the item and allocation ids.
async fn populate(server: &Server) -> (Vec<String>, Vec<String>) {
    let mut items = Vec::new();
    for w in 0..2 {
        let warehouse = server.create_warehouse(&format!("EXP{w}")).await;
        for i in 0..3 {
            items.push(
                server
                    .create_item(&warehouse, &format!("SKU-{w}-{i}"), 40, 10)
                    .await,
            );
        }
    }
    for (n, item) in items.iter().enumerate() {
        server.adjust(item, 5 + n as i64, "RECEIVED").await;
        server.adjust(item, -3, "SOLD").await;
    }
    mutate(
        server,
        "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 2, reason: RECEIVED,
            idempotencyKey: \"delivery-7\"}) { inventoryItem { onHand } userErrors { code } } }",
        json!({ "i": items[0] }),
        "inventoryAdjust",
    )
    .await;
    let mut allocations = Vec::new();
    for (n, item) in items.iter().enumerate() {
        let created = mutate(
            server,
            "mutation($i: ID!, $o: String!) { allocationCreate(input: {orderId: $o, itemId: $i, quantity: 4}) {
                allocation { id } userErrors { code } } }",
            json!({ "i": item, "o": format!("order-{n}") }),
            "allocationCreate",
        )
        .await;
        let id = created["allocation"]["id"].as_str().expect("id").to_owned();
        let step = |name: &str| {
            format!("mutation($a: ID!) {{ {name}(input: {{id: $a}}) {{ allocation {{ id }} userErrors {{ code }} }} }}")
        };
        match n % 4 {
            1 => {
                mutate(
                    server,
                    &step("allocationConfirm"),
                    json!({ "a": id }),
                    "allocationConfirm",
                )
                .await;
            }
            2 => {
                mutate(
                    server,
                    &step("allocationConfirm"),
                    json!({ "a": id }),
                    "allocationConfirm",
                )
                .await;
                mutate(
                    server,
                    &step("allocationFulfill"),
                    json!({ "a": id }),
                    "allocationFulfill",
                )
                .await;
            }
            3 => {
                mutate(
                    server,
                    "mutation($a: ID!) { allocationCancel(input: {id: $a, reason: \"changed\"}) {
                        allocation { id } userErrors { code } } }",
                    json!({ "a": id }),
                    "allocationCancel",
                )
                .await;
            }
            _ => {}
        }
        allocations.push(id);
    }
    // The projections have caught up before anything is compared or exported.
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    (items, allocations)
}

/// What the service answers about a sample: items, their allocations and history, the
/// movement reports, every warehouse and allocation listed.
async fn answers(server: &Server, items: &[String], allocations: &[String]) -> Value {
    let mut out = BTreeMap::new();
    for item in items {
        let data = server
            .data(
                "query($i: ID!) {
                    inventoryItem(id: $i) { id sku productId warehouseId onHand allocated available
                        reorderThreshold reorderQuantity lowStock active version createdAt updatedAt
                        allocations(first: 50) { totalCount edges { node { id orderId quantity status
                            cancelReason version createdAt updatedAt } } } }
                    inventoryHistory(itemId: $i, first: 100) { totalCount edges { node { id
                        sequenceNumber reason delta quantityAfter reference actor correlationId occurredAt } } }
                    stockMovementReport(itemId: $i) { rows { id day received removed allocated released
                        fulfilled net } totals { received removed allocated released fulfilled net } } }",
                json!({ "i": item }),
            )
            .await;
        out.insert(item.clone(), data);
    }
    for allocation in allocations {
        let data = server
            .data(
                "query($a: ID!) { allocation(id: $a) { id orderId itemId warehouseId quantity status
                    cancelReason expiresAt version createdAt updatedAt } }",
                json!({ "a": allocation }),
            )
            .await;
        out.insert(allocation.clone(), data);
    }
    let lists = server
        .data(
            "{ warehouses(first: 50, includeInactive: true) { totalCount edges { node { id code name active version } } }
               inventoryItems(first: 100) { totalCount edges { node { id onHand allocated } } }
               allocations(first: 100) { totalCount edges { node { id status quantity } } } }",
            json!({}),
        )
        .await;
    out.insert("lists".into(), lists);
    json!(out)
}

/// The retried keyed adjustment: the first answer again, nothing applied twice.
async fn retry_keyed_adjustment(server: &Server, item: &str) -> Value {
    server
        .data(
            "mutation($i: ID!) { inventoryAdjust(input: {itemId: $i, delta: 2, reason: RECEIVED,
                idempotencyKey: \"delivery-7\"}) { inventoryItem { onHand version } userErrors { code } } }",
            json!({ "i": item }),
        )
        .await
}

#[tokio::test]
async fn a_restored_store_answers_every_query_as_the_original() {
    let root = tempfile::tempdir().expect("temp dir");
    let original = data_dir(&root, "exporig");
    let restored = data_dir(&root, "exprest");
    let env = backend_env(&original);
    let server = start_with_env(&original, &env).await;
    let (items, allocations) = populate(&server).await;
    let (ok, _, stderr) = cli(
        &[
            "api-key",
            "create",
            "--name",
            "dashboard",
            "--role",
            "viewer",
        ],
        &original,
        &env,
    )
    .await;
    assert!(ok, "api-key create: {stderr}");
    let before = answers(&server, &items, &allocations).await;

    let file = root.path().join("backup.jsonl.gz");
    let started = Instant::now();
    let summary = export(&original, &env, &file, true).await;
    eprintln!("export of the sample: {summary} in {:?}", started.elapsed());
    assert_eq!(summary["apiKeys"], json!(1));
    assert_eq!(summary["idempotencyRecords"], json!(1));
    drop(server);

    let restored_env = backend_env(&restored);
    let (ok, stdout, stderr) = import(&restored, &restored_env, &file).await;
    assert!(ok, "import failed: {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("import summary");
    assert_eq!(report["verified"], json!(true));
    assert_eq!(report["events"], summary["events"]);

    let server = start_with_env(&restored, &restored_env).await;
    let after = answers(&server, &items, &allocations).await;
    assert_eq!(after, before, "the restored service answers differently");
    // The idempotency record came along: a retry returns the first answer and applies nothing.
    let retried = retry_keyed_adjustment(&server, &items[0]).await;
    assert_eq!(
        retried["inventoryAdjust"]["userErrors"],
        json!([]),
        "{retried}"
    );
    let now = server
        .data(
            "query($i: ID!) { inventoryItem(id: $i) { onHand version } }",
            json!({ "i": items[0] }),
        )
        .await;
    assert_eq!(
        now["inventoryItem"]["version"], before[&items[0]]["inventoryItem"]["version"],
        "the retry applied again: {retried} {now}"
    );
    assert!(
        retried["inventoryAdjust"]["inventoryItem"]["version"].as_u64()
            < now["inventoryItem"]["version"].as_u64(),
        "the retry did not return the first answer: {retried}"
    );
    // So did the uniqueness guards: a second SKU-0-0 in its warehouse is refused.
    let warehouse = before[&items[0]]["inventoryItem"]["warehouseId"].clone();
    let duplicate = server
        .data(
            "mutation($w: ID!) { inventoryItemCreate(input: {warehouseId: $w, sku: \"SKU-0-0\", productId: \"P\",
                initialQuantity: 1, reorderThreshold: 0, reorderQuantity: 1}) { userErrors { code } } }",
            json!({ "w": warehouse }),
        )
        .await;
    assert_ne!(
        duplicate["inventoryItemCreate"]["userErrors"],
        json!([]),
        "{duplicate}"
    );
    // And the API keys.
    let (_, listed, _) = cli(&["api-key", "list"], &restored, &restored_env).await;
    assert!(listed.contains("\"dashboard\""), "{listed}");
}

#[tokio::test]
async fn moving_from_sqlite_to_dynamodb_and_back_keeps_every_event_and_answer() {
    let root = tempfile::tempdir().expect("temp dir");
    let first = data_dir(&root, "movesqlite");
    let middle = data_dir(&root, "movedynamo");
    let last = data_dir(&root, "moveback");
    let Some(dynamo) = dynamodb_env(&middle) else {
        eprintln!("skipped: INVENTORY_TEST_DYNAMODB_ENDPOINT is not set");
        return;
    };
    let server = start_with_env(&first, &sqlite_env()).await;
    let (items, allocations) = populate(&server).await;
    let before = answers(&server, &items, &allocations).await;
    drop(server);

    // The recipe of the README, twice: export, then import into the other backend.
    let to_dynamo = root.path().join("to-dynamodb.jsonl");
    export(&first, &sqlite_env(), &to_dynamo, true).await;
    let (ok, _, stderr) = import(&middle, &dynamo, &to_dynamo).await;
    assert!(ok, "import into DynamoDB: {stderr}");
    // Its first start reads nothing: the import recorded that its projections cover the store.
    let log = root.path().join("restored.log");
    let mut extra: Vec<(&str, &str)> = dynamo
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    extra.push(("RUST_LOG", "inventory_service::projection=info"));
    let server = Server::start_logging_to(&middle, &extra, &log).await;
    server.until_ready().await;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("nothing to catch up") && !text.contains("catching up from the store"),
        "the restored store's first start: {text}"
    );
    assert_eq!(answers(&server, &items, &allocations).await, before);
    drop(server);

    let back = root.path().join("to-sqlite.jsonl");
    export(&middle, &dynamo, &back, true).await;
    let (ok, _, stderr) = import(&last, &sqlite_env(), &back).await;
    assert!(ok, "import back into SQLite: {stderr}");
    let server = start_with_env(&last, &sqlite_env()).await;
    assert_eq!(answers(&server, &items, &allocations).await, before);

    // Every event exactly as stored, each once (the orders of the two stores differ).
    let sorted = |file: &Path| -> Vec<String> {
        let mut lines = event_lines(file);
        lines.sort();
        lines
    };
    assert_eq!(sorted(&to_dynamo), sorted(&back));
}

/// A backup that passed: the events of a populated store (written through the service).
async fn sample_backup(root: &tempfile::TempDir) -> (PathBuf, Env, PathBuf) {
    let dir = data_dir(root, "refsource");
    let env = backend_env(&dir);
    let server = start_with_env(&dir, &env).await;
    populate(&server).await;
    drop(server);
    let file = root.path().join("sample.jsonl");
    export(&dir, &env, &file, false).await;
    (dir, env, file)
}

fn rewrite(from: &Path, to: &Path, edit: impl FnOnce(&mut Vec<String>)) {
    let text = std::fs::read_to_string(from).expect("read");
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    edit(&mut lines);
    std::fs::write(to, lines.join("\n") + "\n").expect("write");
}

#[tokio::test]
async fn bad_files_and_a_nonempty_target_are_refused_and_change_nothing() {
    let root = tempfile::tempdir().expect("temp dir");
    let (source, source_env, good) = sample_backup(&root).await;
    let lines = std::fs::read_to_string(&good)
        .expect("read")
        .lines()
        .count();

    // Truncated in the middle of a line, and at a line boundary (no trailer).
    let cut_mid = root.path().join("cut-mid.jsonl");
    let bytes = std::fs::read(&good).expect("read");
    let half = &bytes[..bytes.len() / 2];
    std::fs::write(&cut_mid, half).expect("write");
    let cut_at = half.iter().filter(|b| **b == b'\n').count() + 1;
    let cut_line = root.path().join("cut-line.jsonl");
    rewrite(&good, &cut_line, |l| l.truncate(l.len() - 3));
    // A gap: one item's third event left out; the problem shows at its fourth (or, for an
    // item with three events, nowhere before the header's counts).
    let gap = root.path().join("gap.jsonl");
    let mut gap_expected = String::new();
    rewrite(&good, &gap, |l| {
        let index = l
            .iter()
            .position(|x| x.contains("\"InventoryItem\"") && x.contains("\"sequenceNumber\":3,"))
            .expect("an item's third event");
        let removed: Value = serde_json::from_str(&l[index]).expect("json");
        let id = removed["aggregateId"].as_str().expect("id").to_owned();
        l.remove(index);
        let next = l
            .iter()
            .position(|x| x.contains(&id) && x.contains("\"sequenceNumber\":4,"))
            .expect("the item has a fourth event");
        gap_expected = format!(
            "line {}: aggregate {id}: sequence number 4 where 3 was next",
            next + 1
        );
    });
    // A changed quantity: the checksum no longer matches.
    let tampered = root.path().join("tampered.jsonl");
    rewrite(&good, &tampered, |l| {
        let index = l
            .iter()
            .position(|x| x.contains("\"StockLevelChanged\""))
            .expect("a stock change");
        l[index] = l[index].replacen("\"delta\":", "\"delta\":1", 1);
    });
    let cases: Vec<(&str, PathBuf, String)> = vec![
        (
            "truncated mid-line",
            cut_mid,
            if half.ends_with(b"\n") {
                format!("line {cut_at}: the file ends without its trailer")
            } else {
                format!("line {cut_at}: not an export line")
            },
        ),
        (
            "truncated at a line",
            cut_line,
            format!("line {}: the file ends without its trailer", lines - 2),
        ),
        ("a gap", gap, gap_expected),
        (
            "a bad checksum",
            tampered,
            format!("line {lines}: checksum mismatch"),
        ),
    ];
    for (what, file, expected) in cases {
        let target = root
            .path()
            .join(format!("refused{}", what.replace(' ', "")));
        let env = backend_env(&target);
        let (ok, _, stderr) = import(&target, &env, &file).await;
        eprintln!("{what}: {}", stderr.lines().last().unwrap_or(""));
        assert!(!ok, "{what} was imported");
        assert!(
            stderr.contains("import refused, nothing written") && stderr.contains(&expected),
            "{what}: expected {expected:?} in {stderr}"
        );
        // Nothing was written: the target exports empty (and imports the good file after).
        let empty = export(&target, &env, &root.path().join("empty.jsonl"), false).await;
        assert_eq!(empty["events"], json!(0), "{what}");
    }

    // A target that holds events is refused, and keeps exactly what it had.
    let before = root.path().join("before.jsonl");
    export(&source, &source_env, &before, false).await;
    let (ok, _, stderr) = import(&source, &source_env, &good).await;
    assert!(!ok);
    assert!(
        stderr.contains("is not empty (it holds events)"),
        "{stderr}"
    );
    let after = root.path().join("after.jsonl");
    export(&source, &source_env, &after, false).await;
    assert_eq!(event_lines(&before), event_lines(&after));
}

#[tokio::test]
async fn an_interrupted_import_finishes_when_run_again_without_duplicates() {
    let root = tempfile::tempdir().expect("temp dir");
    let dynamo = std::env::var("INVENTORY_TEST_BACKEND").as_deref() == Ok("dynamodb");
    let file = root.path().join("large.jsonl");
    let events = if dynamo { 8_000 } else { 20_000 };
    let written =
        inventory_service::archive::synthetic::write(&file.to_string_lossy(), events, events / 40)
            .expect("synthetic backup");
    let target = data_dir(&root, "interrupted");
    let env = backend_env(&target);

    // Killed (SIGKILL) once it reports writing progress.
    let mut child = tokio::process::Command::new(BINARY)
        .args(["import", "--in", &file.to_string_lossy(), "--data-dir"])
        .arg(&target)
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("RUST_LOG", "warn")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start import");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stderr));
    let mut killed_after = None;
    while let Some(line) = lines.next_line().await.expect("read stderr") {
        // "import: <events> of <total> events, ...": a batch or more is written.
        let writing = line
            .strip_prefix("import: ")
            .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
        if writing {
            child.start_kill().expect("kill");
            killed_after = Some(line);
            break;
        }
    }
    let status = child.wait().await.expect("wait");
    eprintln!("import killed after {killed_after:?}: {status}");
    assert!(
        !status.success(),
        "the import finished before it could be killed"
    );

    let (ok, stdout, stderr) = import(&target, &env, &file).await;
    assert!(ok, "the rerun failed: {stderr}");
    let report: Value = serde_json::from_str(stdout.trim()).expect("summary");
    eprintln!("rerun: {report}");
    assert_eq!(report["verified"], json!(true));
    assert!(
        report["written"]["resumedAtLine"].as_u64() > Some(0),
        "the rerun started over: {report}"
    );

    // Exactly the file's events, each once.
    let out = root.path().join("check.jsonl");
    let summary = export(&target, &env, &out, false).await;
    assert_eq!(summary["events"], json!(written.events));
    let mut exported = event_lines(&out);
    let mut original = event_lines(&file);
    exported.sort();
    original.sort();
    assert_eq!(exported.len(), original.len());
    assert!(
        exported == original,
        "the restored events differ from the file's"
    );
    // A third run has nothing to do.
    let (ok, stdout, _) = import(&target, &env, &file).await;
    assert!(
        ok && stdout.contains("imported into this store already"),
        "{stdout}"
    );
}

#[tokio::test]
async fn an_export_while_the_service_writes_is_a_consistent_cut() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = data_dir(&root, "cutsource");
    let env = backend_env(&dir);
    let server = std::sync::Arc::new(start_with_env(&dir, &env).await);
    let warehouse = server.create_warehouse("CUT").await;
    let mut items = Vec::new();
    for i in 0..4 {
        items.push(
            server
                .create_item(&warehouse, &format!("CUT-{i}"), 100_000, 0)
                .await,
        );
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for (w, item) in items.iter().cloned().enumerate() {
        let (server, stop) = (server.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut commits = 0u64;
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let created = server
                    .data(
                        "mutation($i: ID!, $o: String!) { allocationCreate(input: {orderId: $o, itemId: $i, quantity: 3}) {
                            allocation { id } userErrors { code } } }",
                        json!({ "i": item, "o": format!("o-{w}-{n}") }),
                    )
                    .await;
                commits += 1;
                let Some(id) = created["allocationCreate"]["allocation"]["id"].as_str() else {
                    continue;
                };
                let next = match n % 3 {
                    0 => "mutation($a: ID!) { allocationCancel(input: {id: $a, reason: \"r\"}) { userErrors { code } } }",
                    1 => "mutation($a: ID!) { allocationConfirm(input: {id: $a}) { userErrors { code } } }",
                    _ => continue,
                };
                server.data(next, json!({ "a": id })).await;
                commits += 1;
            }
            commits
        }));
    }
    // Three exports while the writers run.
    let mut files = Vec::new();
    for n in 0..3 {
        let file = root.path().join(format!("cut{n}.jsonl"));
        let summary = export(&dir, &env, &file, false).await;
        eprintln!("export {n} during writes: {summary}");
        files.push(file);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut commits = 0;
    for writer in writers {
        commits += writer.await.expect("writer");
    }
    eprintln!("{commits} commits during the exports");

    for (n, file) in files.iter().enumerate() {
        // Every allocation of the cut has its item's reservation, and the other way round.
        let (mut reserved, mut open) = (BTreeMap::new(), BTreeMap::new());
        let mut allocation_item = BTreeMap::new();
        for line in event_lines(file) {
            let event: Value = serde_json::from_str(&line).expect("event");
            let data = &event["eventData"];
            match event["eventType"].as_str().unwrap_or("") {
                "StockAllocated" => {
                    *reserved
                        .entry(event["aggregateId"].to_string())
                        .or_insert(0) += data["quantity"].as_i64().unwrap_or(0);
                }
                "StockDeallocated" => {
                    *reserved
                        .entry(event["aggregateId"].to_string())
                        .or_insert(0) -= data["quantity"].as_i64().unwrap_or(0);
                }
                "AllocationCreated" => {
                    allocation_item.insert(
                        event["aggregateId"].to_string(),
                        (
                            data["itemId"].to_string(),
                            data["quantity"].as_i64().unwrap_or(0),
                        ),
                    );
                    *open.entry(data["itemId"].to_string()).or_insert(0) +=
                        data["quantity"].as_i64().unwrap_or(0);
                }
                "AllocationCancelled" => {
                    let (item, quantity) =
                        allocation_item[&event["aggregateId"].to_string()].clone();
                    *open.entry(item).or_insert(0) -= quantity;
                }
                _ => {}
            }
        }
        assert_eq!(
            reserved, open,
            "export {n}: allocated differs from the open allocations"
        );

        // And the cut imports whole: verify passes, and the restored items agree.
        let target = data_dir(&root, &format!("cutrestored{n}"));
        let target_env = backend_env(&target);
        let (ok, _, stderr) = import(&target, &target_env, file).await;
        assert!(ok, "export {n} does not import: {stderr}");
        let ids: BTreeSet<_> = reserved.keys().cloned().collect();
        assert!(ids.len() <= items.len());
    }
}
