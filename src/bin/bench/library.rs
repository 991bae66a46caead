//! The library-level benchmarks. `latency`: the latency of one command (`inventoryAdjust`
//! through the application layer, i.e. load + decide + durable commit, with no remembered
//! state) on an item with 10, 1,000
//! and 100,000 prior events, with snapshots on and off, measured side by side in one run.
//! `rebuild`: every projection rebuilt from a large store. Both print a table and write every
//! figure as JSON (`--json FILE`) for scripts to compare.

use anyhow::Context as _;
use inventory_service::application::{
    AdjustStock, CommandContext, Commands, CreateItem, CreateWarehouse, Outcome,
};
use inventory_service::domain::item::{AdjustmentReason, ItemEvent, StockChangeReason};
use inventory_service::domain::AggregateType;
use inventory_service::dynamodb::{self, Tables};
use inventory_service::store::dynamodb::DynamoEventStore;
use inventory_service::store::sqlite::SqliteEventStore;
use inventory_service::store::{Commit, EventEnvelope, EventStore, Expectation, Metadata};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::Args;
use uuid::Uuid;

/// A service on `config` whose store holds about `--events` events over `--items` items (see
/// `rebuild`: commits on the embedded store, a bulk load on DynamoDB); returns it running and
/// the number of events.
pub async fn seeded(
    args: &Args,
    config: &inventory_service::config::StorageConfig,
) -> anyhow::Result<(inventory_service::app::Service, u64)> {
    use inventory_service::app::Service;
    use inventory_service::config::StoreKind;
    let on_dynamodb = config.store == StoreKind::Dynamodb;
    let endpoint = config.dynamodb_endpoint.clone();
    let service = Service::start(config).await?;
    let ctx = CommandContext::default();
    let commands = &service.context.commands;
    let warehouse = new_warehouse(commands, &ctx, "REBUILD").await?;
    let per_item = (args.events / args.items).max(2);
    let seeded = Instant::now();
    let bulk = if on_dynamodb {
        let client = dynamodb::client(endpoint.as_deref()).await;
        Some((client, Tables::new(config.table_prefix.clone()).events()))
    } else {
        None
    };
    // Every item first, through commands (so the live projections know them), then the bulk.
    let mut items = Vec::new();
    for n in 0..args.items {
        items.push(new_item(commands, &ctx, warehouse, format!("SKU-{n}"), 0).await?);
    }
    for item in items {
        // Created + the alert at 0 are versions 1 and 2.
        match &bulk {
            Some((client, table)) => {
                bulk_load(client, table, stock_changes(item, 2, per_item - 2)).await?
            }
            None => seed(&*service.context.store, item, 2, per_item - 2, 5_000).await?,
        }
    }
    let total = 1 + args.items * per_item;
    eprintln!(
        "seeded {total} events in {:.1}s; waiting for the live projections",
        seeded.elapsed().as_secs_f64()
    );
    Ok((service, total))
}

/// `rebuild`: a store of `--events` events, then every projection rebuilt by the real replay
/// (`projection::replay`, into a new generation of tables while the service runs) and
/// compared. On the embedded store the events go through commits, so the live projections are
/// built as usual and the rebuilt tables are compared with them. On DynamoDB the stock changes
/// are bulk-loaded into the events table (`BatchWriteItem`, no outbox rows), so the live
/// projectors do not have to digest them first, which would take longer than the rebuild
/// itself; there are no live tables for them, so the rebuilt tables are compared with an
/// independent rebuild into SQLite (`verify`).
pub async fn rebuild(args: &Args) -> anyhow::Result<()> {
    use inventory_service::app::verify_projections;
    use inventory_service::projection::layout::ProjectionName;
    use inventory_service::projection::replay::{replay, ReplayOptions};
    let dir = tempfile_dir()?;
    let on_dynamodb = args.store == "dynamodb";
    let (endpoint, _local) = crate::server::dynamodb_endpoint(args)?;
    let config = bench_storage(on_dynamodb, &dir, endpoint.clone(), "rebuild");
    let (service, _) = seeded(args, &config).await?;
    outbox_drained(&*service.context.store).await?;
    let board = service.context.projections.clone();
    let live = board.dump().await?;
    let started = Instant::now();
    let mut last_report = Instant::now();
    let rebuilt = replay(
        service.context.store.clone(),
        &board,
        ReplayOptions {
            projections: ProjectionName::ALL.to_vec(),
            ..ReplayOptions::default()
        },
        |progress| {
            if last_report.elapsed() >= Duration::from_secs(5) {
                eprintln!(
                    "  {} events, {:.0} events/s",
                    progress.events_done,
                    progress.rate()
                );
                last_report = Instant::now();
            }
        },
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    // The comparison is timed too: on DynamoDB it is itself a rebuild (every event read from
    // the store, projected into SQLite in this process), the yardstick for the replay's rate.
    let compared = Instant::now();
    let differences = if on_dynamodb {
        verify_projections(&config).await?
    } else {
        live.differences(&board.dump().await?)
    };
    let compare_seconds = compared.elapsed().as_secs_f64();
    service.stop().await;
    let rate = rebuilt.rate();
    let events = rebuilt.events_done as f64;
    let overall_rate = events / seconds.max(f64::EPSILON);
    let (against, independent_rate) = if on_dynamodb {
        (
            "an independent rebuild into SQLite",
            Some(events / compare_seconds.max(f64::EPSILON)),
        )
    } else {
        ("the live tables", None)
    };
    println!(
        "replayed every projection from {} events into generation {}: {rate:.0} events/s while scanning, {seconds:.1} s in all ({overall_rate:.0} events/s, scan, writes and switch-over); identical to {against}: {}",
        rebuilt.events_done,
        rebuilt.generation,
        differences.is_empty()
    );
    if let Some(independent) = independent_rate {
        println!(
            "the independent rebuild (read every event, project into SQLite, compare): {compare_seconds:.1} s, {independent:.0} events/s; replay / independent = {:.3}",
            overall_rate / independent
        );
    }
    for difference in differences.iter().take(5) {
        println!("  {difference}");
    }
    let report = json!({ "benchmark": "rebuild", "store": args.store, "events": rebuilt.events_done,
        "seconds": seconds, "eventsPerSecond": rate, "overallEventsPerSecond": overall_rate,
        "comparedWith": against, "compareSeconds": compare_seconds,
        "independentEventsPerSecond": independent_rate,
        "replayOverIndependent": independent_rate.map(|i| overall_rate / i),
        "identical": differences.is_empty() });
    std::fs::write(
        args.json_or("target/bench-rebuild.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(differences.is_empty(), "the rebuilt tables differ");
    Ok(())
}

/// Writes events straight into the DynamoDB events table, 25 per `BatchWriteItem`, retrying
/// what the service leaves unprocessed. No outbox rows: nothing is published.
async fn bulk_load(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    events: impl Iterator<Item = EventEnvelope>,
) -> anyhow::Result<()> {
    use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
    let requests = events
        .map(|event| {
            let item = inventory_service::store::dynamodb::event_item(&event)?;
            Ok(WriteRequest::builder()
                .put_request(PutRequest::builder().set_item(Some(item)).build()?)
                .build())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    inventory_service::dynamodb::batch_write(client, table, requests).await?;
    Ok(())
}

/// A warehouse created through the application layer.
pub async fn new_warehouse(
    commands: &Commands,
    ctx: &CommandContext,
    code: &str,
) -> anyhow::Result<Uuid> {
    let create = CreateWarehouse {
        name: code.into(),
        code: code.into(),
        address: None,
    };
    match commands.create_warehouse(ctx, create).await? {
        Outcome::Warehouse(warehouse) => Ok(warehouse.id),
        _ => anyhow::bail!("warehouseCreate returned something else"),
    }
}

/// An item with `initial` units on hand and no reorder threshold, created through the
/// application layer.
pub async fn new_item(
    commands: &Commands,
    ctx: &CommandContext,
    warehouse_id: Uuid,
    sku: String,
    initial: i64,
) -> anyhow::Result<Uuid> {
    let create = CreateItem {
        warehouse_id,
        sku,
        product_id: "bench".into(),
        initial_quantity: initial,
        reorder_threshold: 0,
        reorder_quantity: 0,
    };
    match commands.create_item(ctx, create).await? {
        Outcome::Item(item) => Ok(item.id),
        _ => anyhow::bail!("inventoryItemCreate returned something else"),
    }
}

/// Waits until the relay has published (and so projected) everything committed.
pub async fn outbox_drained(store: &dyn EventStore) -> anyhow::Result<()> {
    loop {
        let (depth, _) = store.outbox_stats().await?;
        if depth == 0 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn open_store(
    args: &Args,
    endpoint: Option<&str>,
    dir: &std::path::Path,
) -> anyhow::Result<(Arc<dyn EventStore>, usize)> {
    Ok(match args.store.as_str() {
        "dynamodb" => {
            let client = dynamodb::client(endpoint).await;
            let tables = Tables::new(format!("bench{}_", Uuid::now_v7().simple()));
            dynamodb::migrate(&client, &tables).await?;
            // 49 events stay under a transaction's 100 items whatever the outbox adds (at most a
            // row per event).
            (Arc::new(DynamoEventStore::new(client, tables)), 49)
        }
        _ => (Arc::new(SqliteEventStore::open(dir)?), 5_000),
    })
}

/// Appends `count` stock changes to the item directly (the seeding is not what is measured).
pub async fn seed(
    store: &dyn EventStore,
    item: Uuid,
    from: u64,
    count: u64,
    per_commit: usize,
) -> anyhow::Result<()> {
    let mut changes = stock_changes(item, from, count).peekable();
    let mut version = from;
    while changes.peek().is_some() {
        let events: Vec<EventEnvelope> = changes.by_ref().take(per_commit).collect();
        let batch = events.len() as u64;
        store
            .append(Commit {
                expectations: vec![Expectation {
                    aggregate_id: item,
                    version,
                }],
                events,
                guards: vec![],
                idempotency: None,
            })
            .await?;
        version += batch;
    }
    Ok(())
}

/// `count` stock changes of one unit on the item, after sequence number `from`.
fn stock_changes(item: Uuid, from: u64, count: u64) -> impl Iterator<Item = EventEnvelope> {
    (from + 1..=from + count).map(move |sequence| {
        let on_hand = sequence as i64;
        EventEnvelope::new(
            Uuid::now_v7(),
            AggregateType::InventoryItem,
            item,
            sequence,
            &ItemEvent::StockLevelChanged {
                previous_quantity: on_hand - 1,
                new_quantity: on_hand,
                delta: 1,
                reason: StockChangeReason::Received,
                reference: None,
                allocation_id: None,
            },
            Metadata::default(),
            inventory_service::application::now_ms(),
        )
    })
}

pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1_000.0
}

pub async fn latency(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let (endpoint, _local) = crate::server::dynamodb_endpoint(args)?;
    let (store, per_commit) = open_store(args, endpoint.as_deref(), &dir).await?;
    let ctx = CommandContext {
        actor: "bench".into(),
        correlation_id: "bench".into(),
        ..CommandContext::default()
    };
    let setup = Commands::new(store.clone(), "bench");
    let warehouse = new_warehouse(&setup, &ctx, "BENCH").await?;
    let sizes = args.sizes_or(&[10, 1_000, 100_000]);
    let mut rows = Vec::new();
    println!(
        "{:>9} {:>10} {:>9} {:>9} {:>9}",
        "prior", "snapshots", "p50 ms", "p99 ms", "max ms"
    );
    for &size in &sizes {
        // One item per size, seeded to `size` events (creation included).
        let item = new_item(&setup, &ctx, warehouse, format!("SKU-{size}"), 1_000_000).await?;
        let seeded = Instant::now();
        seed(&*store, item, 1, size.saturating_sub(1), per_commit)
            .await
            .context("seeding")?;
        eprintln!(
            "seeded {size} events in {:.1}s",
            seeded.elapsed().as_secs_f64()
        );
        for snapshots in [true, false] {
            // No remembered states: every command loads the item, which is what snapshots speed up.
            let commands = Commands::new(store.clone(), "bench")
                .with_state_cache(0)
                .with_snapshots(if snapshots { 100 } else { 0 });
            // Without snapshots a command reads the whole stream: about 9 s per command at
            // 100,000 events on the local DynamoDB endpoint, so fewer of them there.
            let measured = if !snapshots && size >= 100_000 {
                args.commands
                    .min(if args.store == "dynamodb" { 5 } else { 20 })
            } else {
                args.commands
            };
            let adjust = || AdjustStock {
                item_id: item,
                delta: 1,
                reason: AdjustmentReason::Received,
                reference: None,
                expected_version: None,
            };
            // Warm-up (also lets the first snapshot be written in the background).
            for _ in 0..3 {
                commands.adjust_stock(&ctx, adjust()).await?;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut latencies = Vec::with_capacity(measured);
            for _ in 0..measured {
                let started = Instant::now();
                commands.adjust_stock(&ctx, adjust()).await?;
                latencies.push(started.elapsed());
            }
            latencies.sort();
            let (p50, p99, max) = (
                percentile(&latencies, 0.5),
                percentile(&latencies, 0.99),
                percentile(&latencies, 1.0),
            );
            println!(
                "{size:>9} {:>10} {p50:>9.2} {p99:>9.2} {max:>9.2}",
                if snapshots { "on" } else { "off" }
            );
            rows.push(json!({ "priorEvents": size, "snapshots": snapshots, "commands": measured, "p50Ms": p50, "p99Ms": p99, "maxMs": max }));
        }
    }
    let on = |size: u64| {
        rows.iter()
            .find(|r| r["priorEvents"] == size && r["snapshots"] == true)
            .and_then(|r| r["p50Ms"].as_f64())
    };
    let (smallest, largest) = (sizes.iter().min().copied(), sizes.iter().max().copied());
    let ratio = match (smallest.and_then(on), largest.and_then(on)) {
        (Some(small), Some(large)) if small > 0.0 => Some(large / small),
        _ => None,
    };
    if let Some(ratio) = ratio {
        println!(
            "with snapshots, p50 at {} prior events / p50 at {}: {ratio:.2}",
            largest.unwrap_or(0),
            smallest.unwrap_or(0)
        );
    }
    let report = json!({ "benchmark": "command-latency", "store": args.store, "rows": rows, "snapshotRatioLargestToSmallest": ratio });
    std::fs::write(
        args.json_or("target/bench-latency.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    eprintln!(
        "figures written to {}",
        args.json_or("target/bench-latency.json")
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

pub fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("inventory-bench-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The storage a library benchmark seeds: a fresh directory and, on DynamoDB, tables of their
/// own under `prefix`.
pub fn bench_storage(
    on_dynamodb: bool,
    dir: &std::path::Path,
    endpoint: Option<String>,
    prefix: &str,
) -> inventory_service::config::StorageConfig {
    inventory_service::config::StorageConfig {
        store: if on_dynamodb {
            inventory_service::config::StoreKind::Dynamodb
        } else {
            inventory_service::config::StoreKind::Sqlite
        },
        data_dir: dir.to_path_buf(),
        dynamodb_endpoint: endpoint,
        table_prefix: format!("{prefix}{}_", Uuid::now_v7().simple()),
        migrate: true,
        dynamodb_report_capacity: false,
        outbox_shards: 4,
        snapshot_every: 100,
    }
}
