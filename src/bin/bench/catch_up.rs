//! `catch-up`: how long a start-up takes to bring the projections level with a store of
//! `--events` events — once with nothing behind (the cost every start pays) and once with the
//! projections deleted (files, or DynamoDB tables), when every event must be applied again.
//! Each start is timed from `Service::start` to the catch-up reporting done.

use inventory_service::app::{verify_projections, Service};
use inventory_service::config::StorageConfig;
use inventory_service::dynamodb::{self, Tables};
use inventory_service::projection::catch_up::Progress;
use inventory_service::projection::layout::ProjectionName;
use serde_json::json;
use std::time::Instant;

use crate::Args;

/// Starts the service and waits for its catch-up; returns (events read, seconds to ready).
async fn timed_start(config: &StorageConfig) -> anyhow::Result<(u64, f64)> {
    let started = Instant::now();
    let service = Service::start(config).await?;
    let mut status = service.catch_up.clone();
    let progress = status.wait().await;
    let seconds = started.elapsed().as_secs_f64();
    service.stop().await;
    match progress {
        Progress::Done { events, .. } => Ok((events, seconds)),
        other => anyhow::bail!("the catch-up stopped at {other:?}"),
    }
}

pub async fn run(args: &Args) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("bench-catch-up-{}", uuid::Uuid::now_v7()));
    let (endpoint, _local) = crate::server::dynamodb_endpoint(args)?;
    let on_dynamodb = args.store == "dynamodb";
    let config = crate::library::bench_storage(on_dynamodb, &dir, endpoint.clone(), "catchup");
    let (service, total) = crate::library::seeded(args, &config).await?;
    service.stop().await;

    let (level_events, level_seconds) = timed_start(&config).await?;
    eprintln!(
        "start with nothing behind: {level_events} events read, ready in {level_seconds:.2} s"
    );

    if on_dynamodb {
        let client = dynamodb::client(endpoint.as_deref()).await;
        let tables = Tables::new(config.table_prefix.clone());
        let mut names: Vec<String> = ProjectionName::ALL
            .iter()
            .flat_map(|p| tables.projection_tables(*p))
            .collect();
        names.push(tables.checkpoints());
        dynamodb::delete_tables(&client, &names).await?;
    } else {
        for entry in std::fs::read_dir(&dir)?.flatten() {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with("projections")
            {
                std::fs::remove_file(entry.path())?;
            }
        }
    }
    let (rebuilt_events, rebuilt_seconds) = timed_start(&config).await?;
    let rate = rebuilt_events as f64 / rebuilt_seconds.max(f64::EPSILON);
    eprintln!(
        "start with the projections deleted: {rebuilt_events} events applied, ready in {rebuilt_seconds:.2} s ({rate:.0} events/s)"
    );
    let differences = verify_projections(&config).await?;
    let report = json!({ "benchmark": "catch-up", "store": args.store, "events": total,
        "levelEventsRead": level_events, "levelSeconds": level_seconds,
        "deletedEventsRead": rebuilt_events, "deletedSeconds": rebuilt_seconds,
        "deletedEventsPerSecond": rate, "identical": differences.is_empty() });
    println!("{report}");
    std::fs::write(
        args.json_or("target/bench-catch-up.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        differences.is_empty(),
        "the caught-up projections differ: {differences:?}"
    );
    Ok(())
}
