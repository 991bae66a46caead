//! What a command costs on DynamoDB: the service runs with `--dynamodb-report-capacity`, so it
//! asks every call for `ReturnConsumedCapacity: INDEXES` and counts requests and capacity units
//! in `/metrics`. Per command kind, 50 sequential commands run between two scrapes taken when
//! the service is settled (for a second it did only what it does while idle: projections and
//! outbox removal done), so each figure is the whole cost of the command, read models and relay
//! included. What the relay does regardless (outbox sweeps, lease renewals) is measured while
//! idle and subtracted.

mod counters;
mod figures;

pub use counters::{Counters, UnitKey};
pub use figures::{CommandCost, CostReport};

use anyhow::Context as _;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

use crate::client::{Gql, Outcome};
use crate::scenarios::{self, expect_ok};
use counters::Noise;

/// Commands of each kind run before measuring (first loads, snapshots, table warm-up).
const WARMUP: usize = 5;
/// The service counts as settled when for this long it did only its idle work.
const QUIET: Duration = Duration::from_secs(1);
const SETTLE_DEADLINE: Duration = Duration::from_secs(60);
const IDLE_WINDOW: Duration = Duration::from_secs(8);
/// The outbox lease of the measured service (1 h), so no renewal falls in a window.
pub const LEASE_MS: u64 = 3_600_000;
/// After the set-up commands, before the idle background is measured.
const SETUP_PAUSE: Duration = Duration::from_secs(3);

/// A command kind the section measures.
enum Kind {
    Adjust { item: String },
    Allocate { item: String },
    CreateWarehouse,
    CreateItem { warehouse: String },
}

const COST_ALLOCATE: &str = "mutation($o: String!, $i: ID!) {
    allocationCreate(input: {orderId: $o, itemId: $i, quantity: 1}) {
        allocation { id } inventoryItem { id version } userErrors { code message } } }";

const COST_WAREHOUSE: &str = "mutation($c: String!) {
    warehouseCreate(input: {name: \"Cost\", code: $c}) {
        warehouse { id } userErrors { code message } } }";

const COST_ITEM: &str = "mutation($w: ID!, $s: String!) {
    inventoryItemCreate(input: {warehouseId: $w, sku: $s, productId: \"bench\",
        initialQuantity: 100, reorderThreshold: 0, reorderQuantity: 0}) {
        inventoryItem { id version } userErrors { code message } } }";

const ITEM_VERSION: &str = "query($i: ID!) { inventoryItem(id: $i) { version } }";
const WAREHOUSE_ID: &str = "query($i: ID!) { warehouse(id: $i) { id } }";

impl Kind {
    fn field(&self) -> &'static str {
        match self {
            Kind::Adjust { .. } => "inventoryAdjust",
            Kind::Allocate { .. } => "allocationCreate",
            Kind::CreateWarehouse => "warehouseCreate",
            Kind::CreateItem { .. } => "inventoryItemCreate",
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Kind::Adjust { .. } => "inventoryAdjust (1 item)",
            Kind::Allocate { .. } => "allocationCreate (1 item)",
            Kind::CreateWarehouse => "warehouseCreate",
            Kind::CreateItem { .. } => "inventoryItemCreate",
        }
    }

    /// The `n`-th command of this kind in the run (unique codes and order ids).
    fn command(&self, n: usize) -> (&'static str, Value) {
        match self {
            Kind::Adjust { item } => (
                scenarios::ADJUST,
                json!({ "i": item, "d": if n.is_multiple_of(2) { 1 } else { -1 } }),
            ),
            Kind::Allocate { item } => (
                COST_ALLOCATE,
                json!({ "o": format!("cost-{n}"), "i": item }),
            ),
            Kind::CreateWarehouse => (COST_WAREHOUSE, json!({ "c": format!("COST-{n}") })),
            Kind::CreateItem { warehouse } => (
                COST_ITEM,
                json!({ "w": warehouse, "s": format!("COST-{n}") }),
            ),
        }
    }

    /// A query that shows the read model caught up with the last command (its payload): the
    /// query, its variables, where the answer is and what it must be.
    fn probe(&self, payload: &Value) -> (&'static str, Value, &'static str, Value) {
        match self {
            Kind::Adjust { .. } | Kind::Allocate { .. } | Kind::CreateItem { .. } => {
                let item = &payload["inventoryItem"];
                (
                    ITEM_VERSION,
                    json!({ "i": item["id"] }),
                    "/inventoryItem/version",
                    item["version"].clone(),
                )
            }
            Kind::CreateWarehouse => {
                let id = payload["warehouse"]["id"].clone();
                (WAREHOUSE_ID, json!({ "i": id }), "/warehouse/id", id)
            }
        }
    }
}

/// Reads the service's `/metrics`.
pub struct Scraper {
    http: reqwest::Client,
    url: String,
    prefix: String,
}

impl Scraper {
    pub fn new(http: reqwest::Client, base: &str, prefix: &str) -> Self {
        Self {
            http,
            url: format!("{base}/metrics"),
            prefix: prefix.into(),
        }
    }

    pub async fn scrape(&self) -> anyhow::Result<Counters> {
        let text = self
            .http
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Counters::parse(&text, &self.prefix))
    }

    /// Waits until for `QUIET` the service did nothing but what it does while idle, and the
    /// outbox is empty; that scrape and when it was taken.
    async fn settle(&self, noise: &Noise) -> anyhow::Result<(Counters, Instant)> {
        let deadline = Instant::now() + SETTLE_DEADLINE;
        let mut last = self.scrape().await?;
        loop {
            tokio::time::sleep(QUIET).await;
            let now = self.scrape().await?;
            let at = Instant::now();
            if now.work(noise) == last.work(noise) && now.outbox_depth.unwrap_or(0.0) == 0.0 {
                return Ok((now, at));
            }
            anyhow::ensure!(
                at < deadline,
                "the service kept working for {} s after the last command",
                SETTLE_DEADLINE.as_secs()
            );
            last = now;
        }
    }
}

/// Runs the section on a service started with the capacity flag; `commands` per kind.
pub async fn measure(gql: &Gql, scraper: &Scraper, commands: usize) -> anyhow::Result<CostReport> {
    let warehouse = scenarios::create_warehouse(gql, "COST").await?;
    let items = scenarios::create_items(gql, &warehouse, "COSTED", 2, 1_000_000, 0).await?;
    let [adjusted, allocated] =
        <[String; 2]>::try_from(items).map_err(|_| anyhow::anyhow!("two items were asked for"))?;
    let mut problems = Vec::new();

    // The idle background: what the service does while nothing happens (the relay sweeps the
    // outbox and renews its shard leases). The set-up's own work is over within the pause.
    tokio::time::sleep(SETUP_PAUSE).await;
    let idle_from = scraper.scrape().await?;
    let idle_started = Instant::now();
    tokio::time::sleep(IDLE_WINDOW).await;
    let idle_to = scraper.scrape().await?;
    let idle = idle_to.minus(&idle_from);
    let background = idle.scaled(1.0 / idle_started.elapsed().as_secs_f64());
    let noise = Noise::of(&idle);
    if noise.touches("TransactWriteItems") {
        problems.push(
            "commits while idle: the background subtracted may hold the set-up's work".into(),
        );
    }
    if idle_to.units.keys().any(|k| k.kind.is_empty()) {
        problems.push(
            "capacity units carry no `kind` label: reads and writes cannot be told apart, so all are priced as writes (an upper bound)"
                .into(),
        );
    }
    if idle_to.units.is_empty() {
        problems.push(
            "the service reported no capacity units: is INVENTORY_DYNAMODB_REPORT_CAPACITY supported by this build?"
                .into(),
        );
    }

    let kinds = [
        Kind::Adjust { item: adjusted },
        Kind::Allocate { item: allocated },
        Kind::CreateWarehouse,
        Kind::CreateItem {
            warehouse: warehouse.clone(),
        },
    ];
    let mut costs = Vec::new();
    let mut n = 0usize;
    for kind in &kinds {
        eprintln!("  cost: {} × {commands}", kind.field());
        for _ in 0..WARMUP {
            let (query, variables) = kind.command(n);
            n += 1;
            expect_ok(gql.command(query, variables, kind.field()).await)
                .with_context(|| format!("warm-up {}", kind.field()))?;
        }
        let (before, from) = scraper.settle(&noise).await?;
        let mut applied = 0;
        let mut failures = 0;
        let mut last = None;
        for _ in 0..commands {
            let (query, variables) = kind.command(n);
            n += 1;
            match gql.command(query, variables, kind.field()).await {
                Outcome::Ok(payload) => {
                    applied += 1;
                    last = Some(payload);
                }
                other => {
                    if failures == 0 {
                        problems.push(format!("{}: a command failed: {other:?}", kind.field()));
                    }
                    failures += 1;
                }
            }
        }
        let (after, to) = scraper.settle(&noise).await?;
        if let Some(payload) = &last {
            let (query, variables, pointer, expected) = kind.probe(payload);
            let data = gql.data(query, variables).await?;
            let seen = data.pointer(pointer).cloned().unwrap_or(Value::Null);
            if seen != expected || expected.is_null() {
                problems.push(format!(
                    "{}: the read model shows {seen} where the last command gave {expected}: the figures may miss projection work",
                    kind.field()
                ));
            }
        }
        costs.push(CommandCost::new(
            kind.field(),
            kind.label(),
            applied,
            failures,
            &after.minus(&before),
            &background,
            to - from,
        ));
    }
    Ok(CostReport {
        kinds: costs,
        baseline: None,
        background_per_second: background,
        problems,
    })
}
