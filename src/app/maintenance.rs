//! The maintenance commands: `migrate`, `rebuild-snapshots` and `verify`. Each opens the
//! storage from configuration, does its one job over the whole store and returns what it found;
//! the command line prints it.

use std::sync::Arc;

use super::Storage;
use crate::config::{StorageConfig, StoreKind};
use crate::dynamodb::{self, Tables};
use crate::projection::layout::ProjectionName;
use crate::projection::runner::ProjectionRunner;
use crate::projection::sqlite::SqliteProjections;
use crate::projection::ProjectionStore;
use crate::store::{EventEnvelope, EventStore};

/// Creates the store's tables (DynamoDB) and returns their names; the embedded store creates
/// its tables when it opens, so there is nothing to do for it.
pub async fn migrate(config: &StorageConfig) -> anyhow::Result<Vec<String>> {
    match config.store {
        StoreKind::Sqlite => {
            Storage::open(config).await?;
            Ok(vec![])
        }
        StoreKind::Dynamodb => {
            let client = dynamodb::client_with(
                config.dynamodb_endpoint.as_deref(),
                config.dynamodb_report_capacity,
            )
            .await;
            Ok(dynamodb::migrate(&client, &Tables::new(config.table_prefix.clone())).await?)
        }
    }
}

/// Reads every stored event, page by page (a parallel scan on DynamoDB), handing each page to
/// `handle` before reading the next.
pub(super) async fn for_each_page<F, Fut>(
    store: &dyn EventStore,
    mut handle: F,
) -> anyhow::Result<()>
where
    F: FnMut(Vec<EventEnvelope>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut cursor = None;
    loop {
        let page = store.read_all(cursor, 5_000).await?;
        handle(page.events).await?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Rewrites the snapshot of every aggregate with at least `snapshot_every` events, folded from
/// its events (so a stale, corrupt or missing snapshot is replaced). Returns how many.
pub async fn rebuild_snapshots(config: &StorageConfig) -> anyhow::Result<u64> {
    anyhow::ensure!(
        config.snapshot_every > 0,
        "snapshots are disabled (--snapshot-every 0)"
    );
    let Storage { store, .. } = Storage::open(config).await?;
    rebuild_snapshots_in(&*store, config.snapshot_every).await
}

/// `rebuild_snapshots` on an open store (also the last steps of `import`).
pub(super) async fn rebuild_snapshots_in(
    store: &dyn EventStore,
    snapshot_every: u64,
) -> anyhow::Result<u64> {
    use crate::application::load;
    use crate::domain::{
        allocation::Allocation, item::InventoryItem, transfer::Transfer, warehouse::Warehouse,
        Aggregate, AggregateType,
    };
    use crate::store::Snapshot;
    let mut streams: std::collections::HashMap<uuid::Uuid, (AggregateType, u64)> =
        Default::default();
    for_each_page(store, |events| {
        for event in events {
            let entry = streams
                .entry(event.aggregate_id)
                .or_insert((event.aggregate_type, 0));
            entry.1 = entry.1.max(event.sequence_number);
        }
        async { Ok(()) }
    })
    .await?;
    async fn snapshot<A: Aggregate>(
        store: &dyn EventStore,
        id: uuid::Uuid,
    ) -> anyhow::Result<Snapshot> {
        let state = load::<A>(store, id, None).await?;
        Ok(Snapshot {
            aggregate_id: id,
            aggregate_type: A::TYPE,
            version: state.version,
            state_version: A::STATE_VERSION,
            state: serde_json::to_value(&state)?,
        })
    }
    let mut written = 0;
    for (id, (kind, version)) in streams {
        if version < snapshot_every {
            continue;
        }
        let snapshot = match kind {
            AggregateType::Warehouse => snapshot::<Warehouse>(store, id).await?,
            AggregateType::InventoryItem => snapshot::<InventoryItem>(store, id).await?,
            AggregateType::Allocation => snapshot::<Allocation>(store, id).await?,
            AggregateType::Transfer => snapshot::<Transfer>(store, id).await?,
        };
        store.save_snapshot(snapshot).await?;
        written += 1;
    }
    Ok(written)
}

/// Differences between the live projections and a rebuild from every stored event into a
/// scratch SQLite file; empty when they agree. Run it when writes have settled (the live side
/// may lag by milliseconds).
pub async fn verify_projections(config: &StorageConfig) -> anyhow::Result<Vec<String>> {
    let Storage {
        store, projections, ..
    } = Storage::open(config).await?;
    verify_in(store, &projections).await
}

/// `verify_projections` on an open store and its projections (also the end of `import`).
pub(super) async fn verify_in(
    store: Arc<dyn EventStore>,
    projections: &crate::projection::switch::Switchboard,
) -> anyhow::Result<Vec<String>> {
    let scratch = std::env::temp_dir().join(format!("inventory-verify-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&scratch)?;
    let rebuilt = Arc::new(SqliteProjections::open(&scratch.join("rebuild.db"))?);
    let runner = ProjectionRunner::new(store.clone(), rebuilt.clone());
    let result = async {
        for_each_page(&*store, |events| async {
            Ok(runner.handle(events).await.map(|_| ())?)
        })
        .await?;
        Ok::<_, anyhow::Error>(
            projections
                .dump()
                .await?
                .differences(&rebuilt.dump().await?),
        )
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// What `replay` is asked to do.
pub struct ReplayRequest {
    /// The projections to rebuild; none resumes an interrupted rebuild.
    pub projections: Vec<ProjectionName>,
    /// Stop the rebuild in progress and drop its tables instead.
    pub abandon: bool,
    pub page_size: usize,
    pub throttle: std::time::Duration,
}

/// Rebuilds (or resumes, or abandons) with progress on stderr; returns a JSON summary.
pub async fn replay(
    config: &StorageConfig,
    request: ReplayRequest,
) -> anyhow::Result<serde_json::Value> {
    use crate::projection::replay::{abandon, replay, ReplayOptions};
    let Storage {
        store, projections, ..
    } = Storage::open(config).await?;
    if request.abandon {
        let abandoned = abandon(&projections).await?;
        return Ok(serde_json::json!({ "abandoned": abandoned.map(|r| r.generation) }));
    }
    let options = ReplayOptions {
        projections: request.projections,
        page_size: request.page_size,
        throttle: request.throttle,
    };
    let started = std::time::Instant::now();
    let rebuild = replay(store, &projections, options, |rebuild| {
        let total = rebuild
            .events_total
            .filter(|total| *total >= rebuild.events_done)
            .map_or_else(|| "?".to_owned(), |t| t.to_string());
        let left = rebuild
            .seconds_left()
            .map_or_else(|| "unknown".to_owned(), |s| format!("{s:.0} s"));
        eprintln!(
            "replay generation {} ({:?}): {} of {total} events, {:.0} events/s, time left {left}",
            rebuild.generation,
            rebuild.phase,
            rebuild.events_done,
            rebuild.rate(),
        );
    })
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(serde_json::json!({
        "generation": rebuild.generation,
        "projections": rebuild.projections,
        "events": rebuild.events_done,
        "resumedAtEvents": rebuild.resumed_at_events,
        "seconds": seconds,
        "eventsPerSecond": rebuild.rate(),
    }))
}
