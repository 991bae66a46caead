//! The scenarios, each driving a running service over GraphQL like its clients do: sequential
//! and concurrent stock adjustments, a hot item, allocations, command latency on long streams,
//! a dashboard query under writes, bulk adjustments. Also the correctness check run after each
//! of them.

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

use crate::client::{closed_loop, Gql, Outcome, Tally};
use crate::stats::Row;

pub const ADJUST: &str = "mutation($i: ID!, $d: Int!) {
    inventoryAdjust(input: {itemId: $i, delta: $d, reason: CORRECTION}) {
        inventoryItem { id version available } userErrors { code message } } }";

const ALLOCATE: &str = "mutation($o: String!, $i: ID!) {
    allocationCreate(input: {orderId: $o, itemId: $i, quantity: 1}) {
        allocation { id } userErrors { code message } } }";

/// A bulk adjustment that applies what it can, so the same document runs on every store
/// (on DynamoDB 100 rows are three commits; REJECT_EVERYTHING would be refused there).
const BULK: &str = "mutation($rows: [InventoryBulkAdjustRowInput!]!) {
    inventoryBulkAdjust(input: {adjustments: $rows, errorPolicy: REJECT_FAILED_ROWS}) {
        results { index inventoryItem { version } userErrors { code message } }
        userErrors { code message } } }";

/// Rows in each bulk adjustment of scenario 9.
pub const BULK_ROWS: usize = 100;

const DASHBOARD: &str = "{ inventoryItems(first: 100) { edges { node {
    id sku onHand allocated available lowStock reorderThreshold version } } } }";

/// How long each closed-loop scenario warms up and then measures.
#[derive(Clone, Copy)]
pub struct Timing {
    pub warmup: Duration,
    pub measure: Duration,
}

/// The items each scenario works on, created up front in one warehouse.
pub struct Fixture {
    pub warehouse: String,
    pub sequential: String,
    pub spread: Vec<String>,
    pub hot: String,
    pub allocatable: Vec<String>,
    /// The items scenario 5 moves across their reorder threshold and back.
    pub crossing: Vec<String>,
    pub writers: Vec<String>,
    /// Scenario 9's items: each bulk adjustment has one row on each.
    pub bulk: Vec<String>,
}

/// Units and threshold of the crossing items: -15 takes 30 to 15 (≤ 20, an alert), +15 back;
/// two -15 overtaking a +15 still leave 0, never less.
pub const CROSSING_ON_HAND: i64 = 30;
pub const CROSSING_THRESHOLD: i64 = 20;

pub async fn create_warehouse(gql: &Gql, code: &str) -> anyhow::Result<String> {
    let data = gql
        .data(
            "mutation($c: String!) { warehouseCreate(input: {name: \"Bench\", code: $c}) {
                warehouse { id } userErrors { code message } } }",
            json!({ "c": code }),
        )
        .await?;
    data["warehouseCreate"]["warehouse"]["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("warehouseCreate failed: {data}"))
}

pub async fn create_items(
    gql: &Gql,
    warehouse: &str,
    prefix: &str,
    count: usize,
    on_hand: i64,
    threshold: i64,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(count);
    for n in 0..count {
        let data = gql
            .data(
                "mutation($w: ID!, $s: String!, $q: Int!, $t: Int!) {
                    inventoryItemCreate(input: {warehouseId: $w, sku: $s, productId: \"bench\",
                        initialQuantity: $q, reorderThreshold: $t, reorderQuantity: 50}) {
                    inventoryItem { id } userErrors { code message } } }",
                json!({ "w": warehouse, "s": format!("{prefix}-{n}"), "q": on_hand, "t": threshold }),
            )
            .await?;
        let id = data["inventoryItemCreate"]["inventoryItem"]["id"]
            .as_str()
            .ok_or_else(|| anyhow::anyhow!("inventoryItemCreate failed: {data}"))?;
        ids.push(id.to_owned());
    }
    Ok(ids)
}

impl Fixture {
    /// One warehouse with every scenario's items, at least 100 in all (the dashboard's page).
    pub async fn create(gql: &Gql) -> anyhow::Result<Self> {
        let warehouse = create_warehouse(gql, "BENCH").await?;
        let plenty = 1_000_000;
        let one = |ids: Vec<String>| ids.into_iter().next().unwrap_or_default();
        let sequential = one(create_items(gql, &warehouse, "SEQ", 1, plenty, 0).await?);
        let spread = create_items(gql, &warehouse, "SPREAD", 16, plenty, 0).await?;
        let hot = one(create_items(gql, &warehouse, "HOT", 1, plenty, 0).await?);
        let allocatable = create_items(gql, &warehouse, "ALLOC", 8, plenty, 0).await?;
        let crossing = create_items(
            gql,
            &warehouse,
            "CROSS",
            64,
            CROSSING_ON_HAND,
            CROSSING_THRESHOLD,
        )
        .await?;
        let writers = create_items(gql, &warehouse, "WRITE", 8, plenty, 0).await?;
        create_items(gql, &warehouse, "FILL", 2, 10, 0).await?;
        let bulk = create_items(gql, &warehouse, "BULK", BULK_ROWS, plenty, 0).await?;
        Ok(Self {
            warehouse,
            sequential,
            spread,
            hot,
            allocatable,
            crossing,
            writers,
            bulk,
        })
    }
}

/// Closed-loop `inventoryAdjust` (+1, -1, ...) by `clients` clients, client `c` on
/// `items[c % items.len()]`.
pub async fn adjust_load(gql: &Gql, items: &[String], clients: usize, timing: Timing) -> Tally {
    let gql = Arc::new(gql.clone());
    let items = Arc::new(items.to_vec());
    closed_loop(clients, timing.warmup, timing.measure, move |client, n| {
        let gql = gql.clone();
        let item = items[client % items.len()].clone();
        async move {
            let delta = if n % 2 == 0 { 1 } else { -1 };
            gql.command(ADJUST, json!({ "i": item, "d": delta }), "inventoryAdjust")
                .await
        }
    })
    .await
}

/// Scenario 9: closed-loop `inventoryBulkAdjust` by one client, a row on every item each
/// time (+1 on every item, then -1, ...); a bulk counts as done only if every row applied.
pub async fn bulk_load(gql: &Gql, items: &[String], timing: Timing) -> Tally {
    let gql = Arc::new(gql.clone());
    let items = Arc::new(items.to_vec());
    closed_loop(1, timing.warmup, timing.measure, move |_, n| {
        let gql = gql.clone();
        let (delta, reason) = if n % 2 == 0 {
            (1, "RECEIVED")
        } else {
            (-1, "SOLD")
        };
        let rows: Vec<Value> = items
            .iter()
            .map(|item| json!({ "itemId": item, "delta": delta, "reason": reason }))
            .collect();
        async move {
            match gql
                .command(BULK, json!({ "rows": rows }), "inventoryBulkAdjust")
                .await
            {
                Outcome::Ok(payload) => {
                    let results = payload["results"].as_array().cloned().unwrap_or_default();
                    let refused = results.iter().find(|r| r["inventoryItem"].is_null());
                    match (results.len(), refused) {
                        (BULK_ROWS, None) => Outcome::Ok(Value::Null),
                        (_, Some(row)) => Outcome::Failed(format!("a row refused: {row}")),
                        (count, None) => Outcome::Failed(format!("{count} results")),
                    }
                }
                other => other,
            }
        }
    })
    .await
}

pub fn tally_row(key: &str, label: &str, tally: &Tally) -> Row {
    let mut latencies = tally.latencies.clone();
    let mut row = Row::new(key, label);
    row.set("ops", tally.ok as f64)
        .set("opsPerSec", tally.ops_per_sec())
        .set("failures", tally.failed as f64)
        .set("conflicts", tally.conflicts as f64)
        .set("rejections", tally.rejected as f64)
        .latencies(&mut latencies);
    for failure in &tally.first_failures {
        eprintln!("  {key}: failure: {failure}");
    }
    row
}

/// Scenario 4: `allocationCreate` of one unit by `clients` clients over the items.
pub async fn allocate_load(gql: &Gql, items: &[String], clients: usize, timing: Timing) -> Tally {
    let gql = Arc::new(gql.clone());
    let items = Arc::new(items.to_vec());
    closed_loop(clients, timing.warmup, timing.measure, move |client, n| {
        let gql = gql.clone();
        let item = items[client % items.len()].clone();
        async move {
            gql.command(
                ALLOCATE,
                json!({ "o": format!("order-{client}-{n}"), "i": item }),
                "allocationCreate",
            )
            .await
        }
    })
    .await
}

/// Scenario 6: `commands` sequential adjustments on one item after a warm-up; p50/p99/max.
pub async fn command_latency(gql: &Gql, item: &str, commands: usize) -> anyhow::Result<Row> {
    // The first load reads the whole stream and writes a snapshot in the background.
    for _ in 0..3 {
        expect_ok(
            gql.command(ADJUST, json!({ "i": item, "d": 1 }), "inventoryAdjust")
                .await,
        )?;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut latencies = Vec::with_capacity(commands);
    for n in 0..commands {
        let delta = if n % 2 == 0 { 1 } else { -1 };
        let began = std::time::Instant::now();
        expect_ok(
            gql.command(ADJUST, json!({ "i": item, "d": delta }), "inventoryAdjust")
                .await,
        )?;
        latencies.push(began.elapsed());
    }
    let mut row = Row::new("", "");
    row.set("ops", commands as f64).latencies(&mut latencies);
    Ok(row)
}

pub fn expect_ok(outcome: Outcome) -> anyhow::Result<Value> {
    match outcome {
        Outcome::Ok(payload) => Ok(payload),
        other => anyhow::bail!("command failed: {other:?}"),
    }
}

/// Scenario 7: `inventoryItems(first: 100)` back to back while `writers` clients adjust.
pub async fn dashboard_under_writes(
    gql: &Gql,
    writers: &[String],
    timing: Timing,
) -> (Tally, Tally) {
    let writing = adjust_load(gql, writers, writers.len(), timing);
    let reader = Arc::new(gql.clone());
    let reading = closed_loop(1, timing.warmup, timing.measure, move |_, _| {
        let gql = reader.clone();
        async move {
            match gql.post(DASHBOARD, json!({})).await {
                Ok(response) if response.get("errors").is_none() => Outcome::Ok(Value::Null),
                Ok(response) => Outcome::Failed(response.to_string()),
                Err(error) => Outcome::Failed(error.to_string()),
            }
        }
    });
    let (written, read) = tokio::join!(writing, reading);
    (read, written)
}

/// No oversell, read from the (settled) projections: every item has available ≥ 0 and
/// allocated ≤ on hand, and its active allocations (CREATED, CONFIRMED) add up to allocated.
pub async fn check_no_oversell(gql: &Gql) -> anyhow::Result<Vec<String>> {
    let mut problems = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let data = gql
            .data(
                "query($a: String) { inventoryItems(first: 500, after: $a) {
                    edges { node { id sku onHand allocated available } }
                    pageInfo { hasNextPage endCursor } } }",
                json!({ "a": after }),
            )
            .await?;
        let page = &data["inventoryItems"];
        for edge in page["edges"].as_array().into_iter().flatten() {
            let node = &edge["node"];
            let number = |f: &str| node[f].as_i64().unwrap_or(i64::MIN);
            let (on_hand, allocated, available) =
                (number("onHand"), number("allocated"), number("available"));
            if available < 0 || allocated > on_hand || allocated < 0 {
                problems.push(format!(
                    "{}: onHand {on_hand} allocated {allocated} available {available}",
                    node["sku"]
                ));
            }
            if allocated != 0 {
                let id = node["id"].as_str().unwrap_or_default();
                let active = active_allocations(gql, id).await?;
                if active != allocated {
                    problems.push(format!(
                        "{}: allocated {allocated} but active allocations hold {active}",
                        node["sku"]
                    ));
                }
            }
        }
        match (
            page["pageInfo"]["hasNextPage"].as_bool(),
            page["pageInfo"]["endCursor"].as_str(),
        ) {
            (Some(true), Some(cursor)) => after = Some(cursor.to_owned()),
            _ => return Ok(problems),
        }
    }
}

async fn active_allocations(gql: &Gql, item: &str) -> anyhow::Result<i64> {
    let mut total = 0;
    for status in ["CREATED", "CONFIRMED"] {
        let mut after: Option<String> = None;
        loop {
            let data = gql
                .data(
                    "query($i: ID!, $s: AllocationStatus!, $a: String) {
                        allocations(itemId: $i, status: $s, first: 500, after: $a) {
                        edges { node { quantity } } pageInfo { hasNextPage endCursor } } }",
                    json!({ "i": item, "s": status, "a": after }),
                )
                .await?;
            let page = &data["allocations"];
            total += page["edges"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["node"]["quantity"].as_i64())
                .sum::<i64>();
            match (
                page["pageInfo"]["hasNextPage"].as_bool(),
                page["pageInfo"]["endCursor"].as_str(),
            ) {
                (Some(true), Some(cursor)) => after = Some(cursor.to_owned()),
                _ => break,
            }
        }
    }
    Ok(total)
}
