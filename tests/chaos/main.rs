//! The chaos run (issue 16, item 6): two instances over RabbitMQ on DynamoDB (Dynoxide behind
//! the fault proxy), steady load from several clients over both, a `lowStockAlerts` subscriber
//! per warehouse on each instance. Every 20 s one instance (in turn) is SIGKILLed and restarted
//! on the same storage; once the broker's app is stopped and started; for a window the proxy
//! delays calls, resets connections and answers some calls with DynamoDB's errors. At the end:
//! every acknowledged command is stored exactly once, nothing is stored twice or half, stock
//! sums agree with the open allocations and transfers on both instances, `verify` is clean, the
//! history has one entry per stock change, the outbox and the dead-letter queues are empty, and
//! each subscriber got every alert it was owed (alerts.rs says which). Ignored: run it with
//! `scripts/chaos.sh [SECONDS]` (INVENTORY_CHAOS_SECONDS, default 180, at least 45).

#[path = "../common/mod.rs"]
mod common;

mod alerts;
mod checks;
mod load;
mod store;

use common::fault_proxy::{Fault, FaultProxy, Faults};
use common::{prefix_of, Server};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KILL_EVERY: Duration = Duration::from_secs(20);
const CLIENTS: usize = 6;
const SKUS: usize = 4;
/// How long an instance may take to start and be ready (a loaded two-core machine, a store
/// behind injected latency): a bound against hanging, not a measure.
const READY_WITHIN: Duration = Duration::from_secs(180);
/// Margin (ms) around a subscriber's session and the broker's outage within which an alert is
/// not owed to it (alerts.rs).
const MARGIN_MS: i64 = 3_000;
/// The window's DynamoDB errors, on top of its latency and resets.
const WINDOW_FAULTS: Faults = Faults {
    conflict: 0.02,
    throttling: 0.02,
    provisioned: 0.01,
    late: 0.005,
    lost_reply: 0.01,
};

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The two instances: where they listen (kept across restarts, so clients keep their URLs).
struct Cluster {
    data_dir: PathBuf,
    logs: PathBuf,
    env: Vec<(String, String)>,
    listen: [String; 2],
    servers: [Option<Server>; 2],
    /// (instance, killed at, ready again at), ms since the epoch.
    restarts: Vec<(usize, i64, i64)>,
}

impl Cluster {
    async fn spawn(&self, instance: usize, listen: &str) -> Server {
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let log = self.logs.join(format!("instance-{instance}.log"));
        let server =
            Server::start_appending_log(&self.data_dir, listen, &env, &log, READY_WITHIN).await;
        // For scripts/chaos.sh to stop, should this process be ended before it drops them.
        let pids = self.logs.join("server-pids");
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(pids)
        {
            use std::io::Write;
            let _ = writeln!(file, "{}", server.pid());
        }
        server
    }

    fn url(&self, instance: usize) -> String {
        format!("http://{}", self.listen[instance])
    }

    /// SIGKILL, then a new process on the same address and storage, waited for until ready.
    async fn kill_and_restart(&mut self, instance: usize) {
        let killed = now_ms();
        if let Some(mut server) = self.servers[instance].take() {
            server.kill();
        }
        let listen = self.listen[instance].clone();
        let server = self.spawn(instance, &listen).await;
        self.servers[instance] = Some(server);
        ready(&self.url(instance)).await;
        self.restarts.push((instance, killed, now_ms()));
    }
}

/// `/health/ready` polled until 200 (READY_WITHIN at most).
async fn ready(url: &str) {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let deadline = Instant::now() + READY_WITHIN;
    let mut last = String::new();
    while Instant::now() < deadline {
        match client.get(format!("{url}/health/ready")).send().await {
            Ok(response) if response.status() == 200 => return,
            Ok(response) => last = response.text().await.unwrap_or_default(),
            Err(error) => last = error.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} not ready within {READY_WITHIN:?}: {last}");
}

async fn gql(url: &str, query: &str, variables: Value) -> Value {
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    for _ in 0..60 {
        let answer = client
            .post(format!("{url}/graphql"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await;
        if let Ok(answer) = answer {
            if let Ok(body) = answer.json::<Value>().await {
                if body.get("errors").is_none() {
                    return body["data"].clone();
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{url}: no answer to {query}");
}

/// The broker's app stopped, then started again once `down` passed; returns when both
/// instances are ready again: (stopped at, ready again at) in ms since the epoch.
async fn broker_outage(cluster: &Cluster, down: Duration) -> (i64, i64) {
    let stopped = now_ms();
    assert!(store::rabbitmqctl("stop_app"), "rabbitmqctl stop_app");
    tokio::time::sleep(down).await;
    assert!(store::rabbitmqctl("start_app"), "rabbitmqctl start_app");
    for instance in 0..2 {
        ready(&cluster.url(instance)).await;
    }
    (stopped, now_ms())
}

/// Starts the broker's app again if the run fails half-way.
struct BrokerGuard;

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .arg("start_app")
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: scripts/chaos.sh runs it"]
async fn chaos() {
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
        .expect("INVENTORY_TEST_DYNAMODB_ENDPOINT (scripts/chaos.sh sets it)");
    let seconds: u64 = std::env::var("INVENTORY_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(180)
        // Room for one kill (at 20 s, with 10 s of load after it) and the broker's outage.
        .max(45);
    let seed = std::env::var("INVENTORY_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0);
    eprintln!("chaos: {seconds} s, seed {seed} (INVENTORY_CHAOS_SEED={seed} replays the draws)");
    let temp = tempfile::tempdir().expect("temp dir");
    let run = prefix_of(temp.path());
    let logs = std::env::var("INVENTORY_CHAOS_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| temp.path().to_owned());
    std::fs::create_dir_all(&logs).expect("log dir");
    let proxy = FaultProxy::start(&endpoint, seed).await;
    let tables = format!("{run}chaos_");
    let bus = format!("{run}.");
    let storage = |url: &str| -> Vec<(String, String)> {
        vec![
            ("INVENTORY_STORE".into(), "dynamodb".into()),
            ("INVENTORY_DYNAMODB_ENDPOINT".into(), url.into()),
            ("INVENTORY_TABLE_PREFIX".into(), tables.clone()),
            ("INVENTORY_MIGRATE".into(), "true".into()),
            ("INVENTORY_BUS".into(), "rabbitmq".into()),
            ("INVENTORY_BUS_PREFIX".into(), bus.clone()),
        ]
    };
    let mut env = storage(&proxy.url);
    // A killed instance's outbox shards wait for another relay this long.
    env.push(("INVENTORY_OUTBOX_LEASE_MS".into(), "3000".into()));
    env.push(("RUST_LOG".into(), "warn".into()));
    let direct = storage(&endpoint);
    let _broker = BrokerGuard;

    let mut cluster = Cluster {
        data_dir: temp.path().to_owned(),
        logs: logs.clone(),
        env,
        listen: [String::new(), String::new()],
        servers: [None, None],
        restarts: Vec::new(),
    };
    for instance in 0..2 {
        let server = cluster.spawn(instance, "127.0.0.1:0").await;
        cluster.listen[instance] = common::edge::authority(&server);
        cluster.servers[instance] = Some(server);
        ready(&cluster.url(instance)).await;
    }
    let urls = [cluster.url(0), cluster.url(1)];

    // Two warehouses with the same SKUs, so that transfers go both ways.
    let mut warehouses = Vec::new();
    let mut items = Vec::new();
    for (w, code) in ["CHAOS-A", "CHAOS-B"].into_iter().enumerate() {
        let data = gql(&urls[w], "mutation($c: String!) { warehouseCreate(input: {name: \"Chaos\", code: $c}) { warehouse { id } userErrors { code } } }", json!({ "c": code })).await;
        let id = data["warehouseCreate"]["warehouse"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("warehouse: {data}"))
            .to_owned();
        for s in 0..SKUS {
            let data = gql(&urls[s % 2], "mutation($w: ID!, $sku: String!, $q: Int!, $t: Int!) {
                inventoryItemCreate(input: {warehouseId: $w, sku: $sku, productId: \"P\",
                    initialQuantity: $q, reorderThreshold: $t, reorderQuantity: 25}) {
                inventoryItem { id } userErrors { code } } }",
                json!({ "w": id, "sku": format!("CH-{s}"), "q": load::INITIAL_STOCK, "t": load::THRESHOLD })).await;
            let item = data["inventoryItemCreate"]["inventoryItem"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("item: {data}"))
                .to_owned();
            items.push(load::Item {
                id: item,
                warehouse: w,
            });
        }
        warehouses.push(id);
    }
    let warehouses = [warehouses[0].clone(), warehouses[1].clone()];

    let stop = Arc::new(AtomicBool::new(false));
    let observer = alerts::Observer::start(format!("{bus}inventory.events"), stop.clone());
    let mut subscribers = Vec::new();
    for (instance, url) in urls.iter().enumerate() {
        for (w, warehouse) in warehouses.iter().enumerate() {
            subscribers.push(alerts::Subscriber::start(
                instance,
                url.clone(),
                w,
                warehouse.clone(),
                stop.clone(),
            ));
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    // The load, until the end of the run.
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let load = Arc::new(load::Load::new(
        urls.clone(),
        warehouses.clone(),
        items.clone(),
        &run,
    ));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| tokio::spawn(load.clone().client(c, seed, until)))
        .collect();

    // The chaos: kills every 20 s, in turn; the proxy's window over the second quarter to
    // past the middle; the broker's outage once, after the kill nearest 45 % of the run.
    let window = (seconds / 4, seconds * 3 / 5);
    let outage_after = Duration::from_secs(seconds * 45 / 100);
    let (mut kills, mut window_on, mut window_done) = (0usize, false, false);
    let mut outage: Option<(i64, i64)> = None;
    let mut kill_log = Vec::new();
    let mut next_kill = started + KILL_EVERY;
    while Instant::now() + Duration::from_secs(5) < until {
        let elapsed = started.elapsed().as_secs();
        if !window_on && !window_done && elapsed >= window.0 {
            proxy.set(WINDOW_FAULTS);
            proxy.set_latency(Some((
                0.3,
                Duration::from_millis(20),
                Duration::from_millis(400),
            )));
            proxy.set_resets(0.02);
            window_on = true;
            eprintln!("chaos: +{elapsed} s fault window opens");
        }
        if window_on && elapsed >= window.1 {
            proxy.set(Faults::NONE);
            proxy.set_latency(None);
            proxy.set_resets(0.0);
            (window_on, window_done) = (false, true);
            eprintln!("chaos: +{elapsed} s fault window closes");
        }
        if Instant::now() >= next_kill && Instant::now() + Duration::from_secs(10) < until {
            let instance = kills % 2;
            let at = Instant::now();
            cluster.kill_and_restart(instance).await;
            kills += 1;
            kill_log.push(format!(
                "+{} s instance {instance} (ready {:.1} s after the kill)",
                at.duration_since(started).as_secs(),
                at.elapsed().as_secs_f64()
            ));
            eprintln!(
                "chaos: {}",
                kill_log.last().map(String::as_str).unwrap_or_default()
            );
            next_kill = at + KILL_EVERY;
            if outage.is_none() && started.elapsed() >= outage_after {
                let window = broker_outage(&cluster, Duration::from_secs(6)).await;
                eprintln!(
                    "chaos: broker stopped and started; both instances ready {:.1} s after the stop",
                    (window.1 - window.0) as f64 / 1000.0
                );
                outage = Some(window);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if outage.is_none() {
        outage = Some(broker_outage(&cluster, Duration::from_secs(6)).await);
    }
    let outage = outage.unwrap_or_default();
    for client in clients {
        client.await.expect("client task");
    }
    proxy.set(Faults::NONE);
    proxy.set_latency(None);
    proxy.set_resets(0.0);
    assert!(
        proxy.quiesce(Duration::from_secs(60)).await,
        "held requests drained"
    );
    let load_time = started.elapsed();
    let records = load.records();

    // A last dip below the threshold on each warehouse, with everything up: each subscriber
    // hears it (the wait is a bound on hanging, not a measure).
    let dip_at = now_ms();
    for item in [&items[0], &items[SKUS]] {
        let query = "query($i: ID!) { inventoryItem(id: $i) { available } }";
        let data = gql(&urls[0], query, json!({ "i": item.id })).await;
        let available = data["inventoryItem"]["available"].as_i64().unwrap_or(0);
        let adjust = "mutation($i: ID!, $d: Int!, $r: AdjustmentReason!) {
            inventoryAdjust(input: {itemId: $i, delta: $d, reason: $r}) { userErrors { code } } }";
        let top = load::THRESHOLD + 3;
        if available < top {
            let variables = json!({ "i": item.id, "d": top - available, "r": "RECEIVED" });
            gql(&urls[0], adjust, variables).await;
        }
        let down = top.max(available) - load::THRESHOLD;
        gql(
            &urls[1],
            adjust,
            json!({ "i": item.id, "d": -down, "r": "DAMAGED" }),
        )
        .await;
    }
    let final_wait = Instant::now() + Duration::from_secs(60);
    while Instant::now() < final_wait {
        let all_heard = subscribers.iter().all(|s| {
            s.heard
                .lock()
                .map(|h| h.alerts.values().any(|&at| at > dip_at))
                .unwrap_or(false)
        });
        if all_heard {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(MARGIN_MS as u64 + 2_000)).await;
    stop.store(true, Ordering::SeqCst);
    let mut heard = Vec::new();
    for subscriber in subscribers {
        let (instance, warehouse) = (subscriber.instance, subscriber.warehouse);
        heard.push((instance, warehouse, subscriber.join().await));
    }
    let published = observer.join().await;

    // The outbox drains (both relays up, no faults); bounded against hanging.
    let outbox_table = format!("{tables}inventory_outbox");
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    let outbox = loop {
        let rows = store::count_rows(&endpoint, &outbox_table).await;
        match rows {
            Ok(0) => break 0,
            Ok(n) if Instant::now() > drain_deadline => break n,
            Err(error) if Instant::now() > drain_deadline => panic!("outbox scan: {error}"),
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    };

    // The projectors' queue drains too (what was published is applied), so the read models
    // are final when compared; bounded against hanging, the comparison below judges.
    let projections = format!("{bus}inventory.projections");
    let drain_deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < drain_deadline {
        let waiting: u64 = store::queues(&projections)
            .iter()
            .filter(|(name, _)| *name == projections)
            .map(|(_, messages)| messages)
            .sum();
        if waiting == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // What the store holds.
    let events = store::export(temp.path(), &direct, &temp.path().join("export.jsonl")).await;
    let mut findings = checks::Findings::default();
    if outbox != 0 {
        findings.fail(format!("{outbox} rows left in the outbox"));
    }
    let streams = checks::streams(&events, &mut findings);
    checks::commands(&events, &records, &format!("chaos-{run}-"), &mut findings);
    checks::sides(&streams, &mut findings);
    let stock = checks::stock(&streams, &mut findings);

    // The read models, on both instances, against the store; and verify.
    let differences = common::verify_until_consistent_with(temp.path(), direct.clone()).await;
    if !differences.is_empty() {
        findings.fail(format!("verify: {differences:?}"));
    }
    let mut history_entries = 0;
    for (instance, url) in urls.iter().enumerate() {
        read_models(
            url,
            instance,
            &warehouses,
            &stock,
            &mut findings,
            &mut history_entries,
        )
        .await;
    }

    // The broker: nothing dead-lettered, nothing left in the run's durable queues.
    let queues = store::queues(&bus);
    for (name, messages) in &queues {
        if name.ends_with(".dead") && *messages > 0 {
            findings.fail(format!(
                "{messages} messages in the dead-letter queue {name}"
            ));
        }
    }

    // Alerts.
    let low: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["eventType"] == "LowStockThresholdReached")
        .map(|e| {
            (
                e["eventId"].as_str().unwrap_or_default().to_owned(),
                e["eventData"]["warehouseId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    let mut alert_lines = Vec::new();
    for (instance, warehouse, heard) in &heard {
        let of_warehouse: Vec<String> = low
            .iter()
            .filter(|(_, w)| *w == warehouses[*warehouse])
            .map(|(id, _)| id.clone())
            .collect();
        let mut away = vec![outage];
        away.extend(
            cluster
                .restarts
                .iter()
                .filter(|(i, _, _)| i == instance)
                .map(|&(_, killed, ready)| (killed, ready)),
        );
        let owed = checks::owed(&of_warehouse, &published, heard, &away, MARGIN_MS);
        let missed: Vec<&String> = owed
            .iter()
            .filter(|id| !heard.alerts.contains_key(*id))
            .collect();
        let foreign: Vec<&String> = heard
            .alerts
            .keys()
            .filter(|id| !of_warehouse.contains(id))
            .collect();
        if !missed.is_empty() {
            findings.fail(format!("subscriber on instance {instance} for warehouse {warehouse} missed {} owed alerts: {missed:?}", missed.len()));
        }
        if !foreign.is_empty() {
            findings.fail(format!("subscriber on instance {instance} for warehouse {warehouse} got alerts that are not its warehouse's low-stock events: {foreign:?}"));
        }
        if owed.is_empty() {
            findings.fail(format!("subscriber on instance {instance} for warehouse {warehouse} was owed no alert at all"));
        }
        alert_lines.push(format!(
            "instance {instance} warehouse {warehouse}: {} sessions, {} alerts of its warehouse, {} owed, {} received ({} repeats), {} missed",
            heard.sessions.len(), of_warehouse.len(), owed.len(), heard.alerts.len(), heard.repeats, missed.len()
        ));
    }

    // Figures.
    let stats = proxy.stats();
    let kinds = checks::by_kind(&records);
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for record in &records {
        for code in &record.errors {
            *errors.entry(code.as_str()).or_default() += 1;
        }
    }
    let acknowledged: u64 = kinds.values().map(|k| k.0).sum();
    eprintln!(
        "\n=== chaos figures ({:.0} s of load, seed {seed}) ===",
        load_time.as_secs_f64()
    );
    eprintln!(
        "commands sent: {}, acknowledged: {acknowledged}",
        records.len()
    );
    for (kind, (ack, refused, gave_up)) in &kinds {
        eprintln!(
            "  {:<18} acknowledged {ack:>5}, refused {refused:>4}, given up {gave_up:>3}",
            kind.field()
        );
    }
    eprintln!("client errors resent on: {errors:?}");
    eprintln!(
        "acknowledged after a resend (each stored once): {}; given up or refused on a resend: {} stored whole, {} not at all",
        findings.resent_and_once, findings.unacknowledged_landed, findings.unacknowledged_absent
    );
    eprintln!("kills (SIGKILL) and restarts: {kills} / {kills}: {kill_log:?}");
    eprintln!(
        "broker restarts: 1 (app stopped for 6 s; both instances ready {:.1} s after the stop)",
        (outage.1 - outage.0) as f64 / 1000.0
    );
    let faults: Vec<String> = stats
        .faults
        .iter()
        .map(|(f, n)| format!("{f:?} {n}"))
        .collect();
    eprintln!(
        "injected faults: {} of {} DynamoDB calls: {}; replies lost after forwarding {} (commits that had landed {})",
        stats.total_faults(), stats.total_calls(), faults.join(", "), stats.lost_replies, stats.lost_commits
    );
    eprintln!(
        "resets: {} before forwarding, {} after",
        stats.faulted(Fault::ResetBeforeForward),
        stats.faulted(Fault::ResetAfterForward)
    );
    eprintln!(
        "events stored: {} in {} streams; history entries {history_entries}",
        events.len(),
        streams.len()
    );
    eprintln!(
        "duplicates: {}, lost acknowledged writes: {}, half-applied: {}",
        findings.duplicates, findings.lost, findings.half
    );
    eprintln!("outbox rows left: {outbox}; run's queues: {queues:?}");
    eprintln!(
        "verify: {}",
        if differences.is_empty() {
            "consistent".to_owned()
        } else {
            format!("{} differences", differences.len())
        }
    );
    for line in &alert_lines {
        eprintln!("alerts: {line}");
    }
    eprintln!(
        "observer saw {} low-stock publications in {} connections",
        published.at.len(),
        published.windows.len()
    );

    for server in cluster.servers.iter_mut() {
        if let Some(server) = server.as_mut() {
            server.kill();
        }
    }
    store::delete_queues(&bus);
    assert!(
        findings.failures.is_empty(),
        "chaos checks failed:\n{}",
        findings.failures.join("\n")
    );
    assert!(acknowledged > 0 && kills > 0, "the run did something");
    eprintln!("chaos: every check passed");
}

/// One instance's read models against the store: each item's figures, and its history (one
/// entry per stock change).
async fn read_models(
    url: &str,
    instance: usize,
    warehouses: &[String; 2],
    stock: &BTreeMap<String, checks::Stock>,
    findings: &mut checks::Findings,
    history_entries: &mut u64,
) {
    let mut seen = 0;
    for warehouse in warehouses {
        let data = gql(url, "query($w: ID!) { inventoryItems(warehouseId: $w, first: 500) { edges { node { id onHand allocated incoming version } } } }", json!({ "w": warehouse })).await;
        for edge in data["inventoryItems"]["edges"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let node = &edge["node"];
            let id = node["id"].as_str().unwrap_or_default();
            seen += 1;
            let Some(want) = stock.get(id) else {
                findings.fail(format!(
                    "instance {instance}: item {id} is not in the store"
                ));
                continue;
            };
            let got = (
                node["onHand"].as_i64(),
                node["allocated"].as_i64(),
                node["incoming"].as_i64(),
                node["version"].as_u64(),
            );
            let expected = (
                Some(want.on_hand),
                Some(want.allocated),
                Some(want.incoming),
                Some(want.version),
            );
            if got != expected {
                findings.fail(format!(
                    "instance {instance}: item {id} reads {got:?}, its events say {expected:?}"
                ));
            }
            let history = gql(
                url,
                "query($i: ID!) { inventoryHistory(itemId: $i, first: 1) { totalCount } }",
                json!({ "i": id }),
            )
            .await;
            let entries = history["inventoryHistory"]["totalCount"]
                .as_u64()
                .unwrap_or(0);
            if entries != want.history_events {
                findings.fail(format!(
                    "instance {instance}: item {id} has {entries} history entries for {} stock events (its creation and on-hand changes)",
                    want.history_events
                ));
            }
            if instance == 0 {
                *history_entries += entries;
            }
        }
    }
    if seen != stock.len() {
        findings.fail(format!(
            "instance {instance}: {seen} items listed, {} in the store",
            stock.len()
        ));
    }
}
