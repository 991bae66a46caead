//! `export` and `import` from configuration: opens the store (either backend, the flags of
//! `serve`) and runs the cores of `archive`; an import then rebuilds every projection and
//! snapshot from the imported events and ends with `verify`.

use std::sync::Arc;

use super::maintenance::{for_each_page, rebuild_snapshots_in, verify_in};
use super::Storage;
use crate::archive::check::check_file;
use crate::archive::export::Exported;
use crate::archive::file::open_input;
use crate::archive::import::{self, Start};
use crate::archive::progress::Progress;
use crate::config::StorageConfig;
use crate::projection::runner::ProjectionRunner;

/// Exports the store of `config` to `out` (`-`: standard output).
pub async fn export(
    config: &StorageConfig,
    out: &str,
    include_keys: bool,
) -> anyhow::Result<Exported> {
    let storage = Storage::open(config).await?;
    let estimate = storage.store.count_events().await.ok();
    let keys = include_keys.then(|| storage.keys.clone());
    crate::archive::export::export(storage.archive.clone(), keys, estimate, out).await
}

/// Checks the backup `input`, then imports it into the (empty) store of `config`, rebuilds
/// the projections and snapshots, and verifies; returns a JSON summary.
pub async fn import(config: &StorageConfig, input: &str) -> anyhow::Result<serde_json::Value> {
    anyhow::ensure!(
        input != "-",
        "import reads its file twice (check, then write): give a file, not standard input"
    );
    let started = std::time::Instant::now();
    let checked = {
        let input = input.to_owned();
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut reader = open_input(&input)?;
            check_file(&mut reader)
                .map_err(|problem| anyhow::anyhow!("import refused, nothing written: {problem}"))
        })
        .await??
    };
    eprintln!(
        "import: {input} checked: {} events of {} aggregates, sha256 {}",
        checked.header.events, checked.header.aggregates, checked.trailer.sha256
    );
    let storage = Storage::open(config).await?;
    let from = match import::start(&*storage.archive, &storage.keys, &checked)
        .await
        .map_err(|e| anyhow::anyhow!("import refused, nothing written: {e}"))?
    {
        Start::Finished => {
            return Ok(serde_json::json!({
                "imported": false,
                "reason": "this file was imported into this store already",
                "sha256": checked.trailer.sha256,
            }))
        }
        Start::Fresh => 0,
        Start::Resume(line) => {
            eprintln!("import: resuming after line {line}");
            line
        }
    };
    let checked_at = started.elapsed();
    let written = import::write(&*storage.archive, &storage.keys, input, &checked, from).await?;
    let written_at = started.elapsed();

    // Every projection from the imported events, into the tables that serve them (each row's
    // checkpoint makes a rerun after an interruption apply nothing twice).
    let target = storage
        .projections
        .routing()
        .await?
        .targets()
        .next()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no projection tables serve readers"))?;
    let runner = ProjectionRunner::new(storage.store.clone(), target);
    let mut progress = Progress::new("import: projecting", "events", Some(checked.header.events));
    let mut projected = 0u64;
    for_each_page(&*storage.store, |events| {
        projected += events.len() as u64;
        progress.tick(projected);
        let runner = &runner;
        async move { Ok(runner.handle(events).await.map(|_| ())?) }
    })
    .await?;
    let projected_at = started.elapsed();
    let snapshots = if config.snapshot_every > 0 {
        rebuild_snapshots_in(&*storage.store, config.snapshot_every).await?
    } else {
        0
    };
    let snapshots_at = started.elapsed();
    let differences = verify_in(Arc::clone(&storage.store), &storage.projections).await?;
    anyhow::ensure!(
        differences.is_empty(),
        "import written, but verify found the projections differ from the events: {differences:?}"
    );
    let verified_at = started.elapsed();
    // The projections hold every stored event and nothing else writes an importing store: the
    // first start need not read it all again (a finished catch-up's record says so).
    let layout = storage.projections.routing().await?.layout.clone();
    if let Some(token) = storage.coverage.needed(&layout).await? {
        storage.coverage.covered(&token).await?;
    }
    storage
        .archive
        .finish_import(&checked.trailer.sha256, checked.lines)
        .await?;
    Ok(serde_json::json!({
        "imported": true,
        "sha256": checked.trailer.sha256,
        "events": checked.header.events,
        "aggregates": checked.header.aggregates,
        "written": written,
        "snapshots": snapshots,
        "verified": true,
        "seconds": started.elapsed().as_secs_f64(),
        // Wall time of each phase: checking the file and opening the store, writing the
        // events, projecting them, the snapshots and verify (a resumed import counts only
        // what this run did).
        "phaseSeconds": {
            "checkAndOpen": checked_at.as_secs_f64(),
            "write": (written_at - checked_at).as_secs_f64(),
            "project": (projected_at - written_at).as_secs_f64(),
            "snapshots": (snapshots_at - projected_at).as_secs_f64(),
            "verify": (verified_at - snapshots_at).as_secs_f64(),
        },
    }))
}
