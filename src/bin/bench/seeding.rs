//! Fast seeding of long histories and large stores through the library: the service runs
//! in-process on the instance's data directory (or tables), items are created through its
//! commands, their stock changes are appended to the store in large commits, and the live
//! projections are left to catch up before it stops. A service process started on the same
//! data afterwards finds a consistent store and projections.

use futures::StreamExt;
use inventory_service::app::Service;
use inventory_service::application::CommandContext;
use inventory_service::store::EventStore;
use std::time::Instant;
use uuid::Uuid;

use crate::library::{new_item, new_warehouse, outbox_drained, seed};
use crate::server::Instance;

/// Creates one item per entry of `events` and gives it that many events in total (at least 2:
/// created, and the low-stock alert at 0 units); returns the item ids in the same order.
pub async fn seed_items(
    instance: &Instance,
    events: &[u64],
    concurrency: usize,
) -> anyhow::Result<Vec<Uuid>> {
    let config = instance.storage_config();
    let service = Service::start(&config).await?;
    let ctx = CommandContext {
        actor: "bench-seed".into(),
        correlation_id: "bench-seed".into(),
        ..CommandContext::default()
    };
    let commands = service.context.commands.clone();
    let store = service.context.store.clone();
    let warehouse_id = new_warehouse(&commands, &ctx, "SEEDED").await?;
    // On DynamoDB 49 events stay under a transaction's 100 items whatever the outbox adds (at
    // most a row per event).
    let per_commit = if instance.store == "dynamodb" {
        49
    } else {
        5_000
    };
    let started = Instant::now();
    let results: Vec<anyhow::Result<Uuid>> =
        futures::stream::iter(events.iter().copied().enumerate())
            .map(|(n, total)| {
                let (commands, store, ctx) = (commands.clone(), store.clone(), ctx.clone());
                async move {
                    let item =
                        new_item(&commands, &ctx, warehouse_id, format!("SEED-{n}"), 0).await?;
                    // Created + the alert at 0 units are versions 1 and 2.
                    seed_stream(&*store, item, total.max(2), per_commit).await?;
                    Ok(item)
                }
            })
            .buffered(concurrency)
            .collect()
            .await;
    let ids = results.into_iter().collect::<anyhow::Result<Vec<Uuid>>>()?;
    let total: u64 = 1 + events.iter().map(|e| (*e).max(2)).sum::<u64>();
    eprintln!(
        "  seeded {} items, {total} events in {:.1}s; waiting for the projections",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
    outbox_drained(&*store).await?;
    service.stop().await;
    eprintln!("  seeding done in {:.1}s", started.elapsed().as_secs_f64());
    Ok(ids)
}

/// Appends stock changes until the stream holds `total` events. A request the SDK retried after
/// its first attempt had landed comes back as a conflict: go on from where the stream stands.
async fn seed_stream(
    store: &dyn EventStore,
    item: Uuid,
    total: u64,
    per_commit: usize,
) -> anyhow::Result<()> {
    let mut version = 2;
    for _ in 0..10 {
        match seed(
            store,
            item,
            version,
            total.saturating_sub(version),
            per_commit,
        )
        .await
        {
            Ok(()) => return Ok(()),
            Err(error) => {
                let tail = store.load(item, version, None).await?;
                version = tail.last().map_or(version, |e| e.sequence_number);
                eprintln!("  seeding {item}: {error}; going on from version {version}");
            }
        }
    }
    anyhow::bail!("seeding {item} kept failing")
}
