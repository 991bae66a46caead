//! Baselines measured in the same run on the same machine, so the service's figures can be read
//! as ratios: raw DynamoDB single-event appends (what one commit costs the store at least), a
//! do-nothing async-graphql mutation on axum (what the framework costs at least), and raw
//! durable SQLite inserts (what one fsynced commit costs at least).

use async_graphql::{EmptySubscription, Object, Schema, ID};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{closed_loop, Gql};
use crate::cost::{CommandCost, Counters, UnitKey};
use crate::stats::Row;

/// A payload the size of a stock change's `eventData` and metadata.
fn event_body(n: u64) -> String {
    json!({ "previousQuantity": n, "newQuantity": n + 1, "delta": 1, "reason": "RECEIVED",
        "reference": null, "allocationId": null, "actor": "bench", "correlationId": "bench-raw" })
    .to_string()
}

/// `appends` single-event appends straight to DynamoDB on a scratch table with the event
/// table's keys: one `TransactWriteItems` holding one Put conditioned on
/// `attribute_not_exists(sequenceNumber)` each, spread over `concurrency` streams.
pub async fn raw_dynamodb(
    endpoint: Option<&str>,
    appends: u64,
    concurrency: usize,
    key: &str,
    label: &str,
) -> anyhow::Result<Row> {
    let client = inventory_service::dynamodb::client(endpoint).await;
    let table = create_raw_table(&client).await?;
    let per_stream = appends.div_ceil(concurrency as u64).max(1);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, table) = (client.clone(), table.clone());
        tasks.push(tokio::spawn(async move {
            let aggregate = uuid::Uuid::now_v7().to_string();
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            for sequence in 1..=per_stream {
                let begun = Instant::now();
                let result = raw_append(&client, &table, &aggregate, sequence).await;
                latencies.push(begun.elapsed());
                if result.is_err() {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await?;
        latencies.extend(l);
        failures += f;
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = client.delete_table().table_name(&table).send().await;
    let ok = latencies.len() as u64 - failures.min(latencies.len() as u64);
    let mut row = Row::new(key, label);
    row.set("ops", ok as f64)
        .set("opsPerSec", ok as f64 / seconds)
        .set("failures", failures as f64)
        .set("concurrency", concurrency as f64)
        .latencies(&mut latencies);
    Ok(row)
}

/// The raw baseline of the cost section: `appends` sequential single-event appends (as in
/// `raw_dynamodb`) through a client that asks for consumed capacity, counted by the library's
/// own counters the way the service counts its calls. Nothing else may call DynamoDB from this
/// process meanwhile: requests are counted per process, units per table.
pub async fn raw_dynamodb_cost(
    endpoint: Option<&str>,
    appends: u64,
) -> anyhow::Result<CommandCost> {
    use inventory_service::dynamodb::{capacity_snapshot, client_with};
    let client = client_with(endpoint, true).await;
    let table = create_raw_table(&client).await?;
    let aggregate = uuid::Uuid::now_v7().to_string();
    // The first call opens the connection.
    raw_append(&client, &table, &aggregate, 1).await?;
    let before = capacity_snapshot();
    let started = Instant::now();
    for sequence in 2..=appends + 1 {
        raw_append(&client, &table, &aggregate, sequence).await?;
    }
    let window = started.elapsed();
    let after = capacity_snapshot();
    let _ = client.delete_table().table_name(&table).send().await;
    let spent = after.since(&before);
    let mut delta = Counters::default();
    for (operation, count) in &spent.requests {
        delta.requests.insert(operation.clone(), *count as f64);
    }
    for ((name, index), units) in &spent.units {
        // Only this table: the capacity of anything else in the process is not the baseline's.
        if name != &table {
            continue;
        }
        // A transaction of Puts consumes write capacity only.
        let key = UnitKey {
            table: "raw_events".into(),
            index: index.clone(),
            kind: "write".into(),
        };
        *delta.units.entry(key).or_default() += units;
    }
    Ok(CommandCost::new(
        "rawAppend",
        "raw single-event append",
        appends as usize,
        0,
        &delta,
        &Counters::default(),
        window,
    ))
}

/// A scratch table with the events table's keys (on-demand), active.
async fn create_raw_table(client: &aws_sdk_dynamodb::Client) -> anyhow::Result<String> {
    let table = format!("bench_raw_{}", uuid::Uuid::now_v7().simple());
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("aggregateId")
                .attribute_type(ScalarAttributeType::S)
                .build()?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sequenceNumber")
                .attribute_type(ScalarAttributeType::N)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("aggregateId")
                .key_type(KeyType::Hash)
                .build()?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sequenceNumber")
                .key_type(KeyType::Range)
                .build()?,
        )
        .send()
        .await?;
    wait_active(client, &table).await?;
    Ok(table)
}

/// One single-event append: a `TransactWriteItems` of one Put conditioned on
/// `attribute_not_exists(sequenceNumber)`, an event the size of a stock change.
async fn raw_append(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    aggregate: &str,
    sequence: u64,
) -> anyhow::Result<()> {
    let item = HashMap::from([
        (
            "aggregateId".to_owned(),
            AttributeValue::S(aggregate.into()),
        ),
        (
            "sequenceNumber".to_owned(),
            AttributeValue::N(sequence.to_string()),
        ),
        (
            "eventId".to_owned(),
            AttributeValue::S(uuid::Uuid::now_v7().to_string()),
        ),
        (
            "eventType".to_owned(),
            AttributeValue::S("StockLevelChanged".into()),
        ),
        (
            "eventData".to_owned(),
            AttributeValue::S(event_body(sequence)),
        ),
        (
            "timestamp".to_owned(),
            AttributeValue::N(inventory_service::application::now_ms().to_string()),
        ),
    ]);
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(#seq)")
        .expression_attribute_names("#seq", "sequenceNumber")
        .build()?;
    client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .send()
        .await?;
    Ok(())
}

async fn wait_active(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    for _ in 0..120 {
        let described = client.describe_table().table_name(table).send().await?;
        let status = described.table().and_then(|t| t.table_status());
        if status == Some(&aws_sdk_dynamodb::types::TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    anyhow::bail!("table {table} never became active")
}

/// `sequential` durable single-row inserts into a scratch SQLite file with the event store's
/// settings (WAL, synchronous=FULL), each its own transaction.
pub async fn raw_sqlite(dir: &Path, inserts: u64) -> anyhow::Result<Row> {
    let path = dir.join("raw.db");
    let latencies = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<Duration>> {
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE events (aggregate_id TEXT NOT NULL, sequence_number INTEGER NOT NULL,
                event_data TEXT NOT NULL, timestamp INTEGER NOT NULL,
                PRIMARY KEY (aggregate_id, sequence_number))",
        )?;
        let aggregate = uuid::Uuid::now_v7().to_string();
        let mut insert = conn.prepare(
            "INSERT INTO events (aggregate_id, sequence_number, event_data, timestamp)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut latencies = Vec::with_capacity(inserts as usize);
        for sequence in 1..=inserts {
            let begun = Instant::now();
            // Outside an explicit transaction each statement is its own durable transaction.
            insert.execute(rusqlite::params![
                aggregate,
                sequence as i64,
                event_body(sequence),
                inventory_service::application::now_ms()
            ])?;
            latencies.push(begun.elapsed());
        }
        Ok(latencies)
    })
    .await??;
    let mut latencies = latencies;
    let seconds: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    let mut row = Row::new(
        "raw_sqlite_sequential",
        "raw SQLite durable insert, sequential",
    );
    row.set("ops", latencies.len() as f64)
        .set("opsPerSec", latencies.len() as f64 / seconds)
        .latencies(&mut latencies);
    Ok(row)
}

struct FloorQuery;

#[Object]
impl FloorQuery {
    /// Always true.
    async fn ping(&self) -> bool {
        true
    }
}

struct FloorMutation;

#[Object]
impl FloorMutation {
    /// Does nothing: the cost of parsing, validating and executing one mutation over HTTP.
    async fn inventory_adjust(&self, item_id: ID, delta: i32) -> bool {
        !item_id.is_empty() || delta != 0
    }
}

/// Starts the do-nothing server inside this process on a random port; its base URL.
pub async fn start_floor() -> anyhow::Result<String> {
    let schema = Schema::build(FloorQuery, FloorMutation, EmptySubscription).finish();
    let router = axum::Router::new().route(
        "/graphql",
        axum::routing::post_service(async_graphql_axum::GraphQL::new(schema)),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(format!("http://{address}"))
}

/// The floor at one concurrency: the same client, the same kind of request as scenario 1.
pub async fn floor(gql: &Gql, concurrency: usize, warmup: Duration, measure: Duration) -> Row {
    let gql = Arc::new(gql.clone());
    let tally = closed_loop(concurrency, warmup, measure, move |client, n| {
        let gql = gql.clone();
        async move {
            gql.command(
                "mutation($i: ID!, $d: Int!) { inventoryAdjust(itemId: $i, delta: $d) }",
                json!({ "i": format!("item-{client}"), "d": (n % 3) as i64 + 1 }),
                "inventoryAdjust",
            )
            .await
        }
    })
    .await;
    let mut latencies = tally.latencies.clone();
    let mut row = Row::new(
        &format!("floor_c{concurrency}"),
        &format!("framework floor (no-op mutation), {concurrency} clients"),
    );
    row.set("ops", tally.ok as f64)
        .set("opsPerSec", tally.ops_per_sec())
        .set("failures", tally.failed as f64)
        .latencies(&mut latencies);
    row
}
