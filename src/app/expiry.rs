//! The expiry sweeper: every instance polls the read model's index of open deadlines and
//! cancels what is due through the ordinary command path (`Commands::expire_allocation`).
//! Nothing is kept in memory: the deadlines live in the events and the allocation projection,
//! so a restart or a crash loses none. The read model only says where to look; the command
//! decides on the stored allocation and commits conditioned on its version, so an allocation
//! confirmed meanwhile is left alone and, of several instances sweeping at once, one cancels.

use futures::StreamExt;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::application::{now_ms, CommandError, Commands, Outcome};
use crate::domain::allocation::NOT_DUE;
use crate::domain::DomainError;
use crate::projection::ReadModel;

/// Most allocations one sweep asks for; a full batch that expired something is followed by
/// another sweep at once, so a backlog drains without waiting for the next tick.
const BATCH: usize = 100;

/// Expiries of one sweep in flight at once (each is a commit on its item's queue).
const IN_FLIGHT: usize = 8;

/// Most allocations remembered as settled (see `Sweeper::settled`); past it the memory starts
/// afresh, which costs only a refused expiry each.
const MAX_SETTLED: usize = 10_000;

pub(super) struct Sweeper {
    pub commands: Arc<Commands>,
    pub read: Arc<dyn ReadModel>,
    pub interval: Duration,
    /// Allocations the read model still shows due that the store says are settled
    /// (confirmed, cancelled, fulfilled: none of them becomes due again). Skipped, so that a
    /// read model stuck behind on a few rows cannot fill every batch with them and starve
    /// the allocations behind them.
    pub settled: HashSet<uuid::Uuid>,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Swept {
    found: usize,
    expired: usize,
}

impl Sweeper {
    /// Sweeps every `interval` until `stopping` turns true; a sweep under way finishes first,
    /// so its commits are in the outbox before the relay drains it.
    pub async fn run(mut self, mut stopping: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stopping.changed() => {}
            }
            if *stopping.borrow() {
                return;
            }
            loop {
                let swept = self.sweep().await;
                if swept.found < BATCH || swept.expired == 0 || *stopping.borrow() {
                    break;
                }
            }
        }
    }

    async fn sweep(&mut self) -> Swept {
        let now = now_ms();
        let asked = BATCH + self.settled.len();
        let due = match self.read.due_allocations(now, asked).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %crate::error::Report(&error), "cannot look for allocations past their deadline; trying again next tick");
                return Swept::default();
            }
        };
        // A row the read model no longer shows due has caught up: forget it.
        let shown: HashSet<_> = due.iter().copied().collect();
        self.settled.retain(|id| shown.contains(id));
        let fresh: Vec<_> = due
            .into_iter()
            .filter(|id| !self.settled.contains(id))
            .collect();
        let found = fresh.len();
        let wanted: Vec<_> = fresh.into_iter().take(BATCH).collect();
        let commands = &self.commands;
        let results: Vec<_> = futures::stream::iter(wanted)
            .map(|id| async move { (id, commands.expire_allocation(id).await) })
            .buffer_unordered(IN_FLIGHT)
            .collect()
            .await;
        let mut expired = 0;
        for (id, result) in &results {
            match report(*id, result) {
                Expiry::Expired => expired += 1,
                Expiry::Settled => {
                    if self.settled.len() >= MAX_SETTLED {
                        self.settled.clear();
                    }
                    self.settled.insert(*id);
                }
                Expiry::Later => {}
            }
        }
        Swept { found, expired }
    }
}

/// What one expiry came to.
enum Expiry {
    Expired,
    /// The stored allocation is past expiring (or not there): never worth trying again.
    Settled,
    /// Not due on this clock, or the store failed: the next tick tries again.
    Later,
}

/// Logs (and measures) one expiry.
fn report(id: uuid::Uuid, result: &Result<Outcome, CommandError>) -> Expiry {
    match result {
        Ok(Outcome::Allocation { allocation, .. }) => {
            let state = &allocation.current;
            if let Some(deadline) = state.state.expires_at {
                // The cancel's commit time, also for a first result replayed to a retry.
                let late = (state.updated_at - deadline).max(0) as f64 / 1000.0;
                metrics::histogram!(crate::metrics::EXPIRY_DELAY).record(late);
            }
            tracing::info!(%id, "allocation expired");
            Expiry::Expired
        }
        Ok(_) => Expiry::Later,
        // Due by the read model, not yet by this instance's clock.
        Err(CommandError::Rejected(DomainError::InvalidStateTransition {
            from: NOT_DUE, ..
        })) => Expiry::Later,
        // Confirmed, cancelled or expired by another instance since the read model was
        // written: the stored state decided, and nothing changed.
        Err(CommandError::Rejected(
            error @ (DomainError::InvalidStateTransition { .. } | DomainError::NotFound { .. }),
        )) => {
            tracing::debug!(%id, %error, "allocation not expired");
            Expiry::Settled
        }
        Err(error) => {
            tracing::warn!(%id, error = %crate::error::Report(error), "allocation not expired; trying again next tick");
            Expiry::Later
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::application::{CreateAllocation, CreateItem, CreateWarehouse};
    use crate::domain::allocation::AllocationEvent;
    use crate::domain::AggregateType;
    use crate::projection::sqlite::SqliteProjections;
    use crate::projection::ProjectionStore;
    use crate::store::memory::MemoryEventStore;
    use crate::store::{EventEnvelope, EventStore, Metadata};
    use uuid::Uuid;

    #[tokio::test]
    async fn rows_the_read_model_shows_due_wrongly_cannot_starve_a_due_allocation() {
        let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
        let commands = Arc::new(Commands::new(store.clone(), "test"));
        let dir = tempfile::tempdir().expect("temp dir");
        let projections = Arc::new(
            SqliteProjections::open(&dir.path().join("projections.db")).expect("projections"),
        );
        let ctx = crate::application::CommandContext::default();
        let Ok(Outcome::Warehouse(warehouse)) = commands
            .create_warehouse(
                &ctx,
                CreateWarehouse {
                    name: "W".into(),
                    code: "W".into(),
                    address: None,
                },
            )
            .await
        else {
            panic!("warehouse")
        };
        let item = CreateItem {
            warehouse_id: warehouse.id,
            sku: "S".into(),
            product_id: "P".into(),
            initial_quantity: 5,
            reorder_threshold: 0,
            reorder_quantity: 1,
        };
        let Ok(Outcome::Item(item)) = commands.create_item(&ctx, item).await else {
            panic!("item")
        };
        let allocation = CreateAllocation {
            order_id: "o".into(),
            item_id: item.id,
            quantity: 1,
            expires_at: Some(now_ms() + 20),
        };
        let Ok(Outcome::Allocation { allocation, .. }) =
            commands.create_allocation(&ctx, allocation).await
        else {
            panic!("allocation")
        };
        let mut rows = store.load(allocation.id, 0, None).await.expect("load");
        // More rows than a batch that the store knows nothing of, due before the real one.
        for _ in 0..BATCH + 20 {
            let event = AllocationEvent::AllocationCreated {
                order_id: "ghost".into(),
                item_id: item.id,
                warehouse_id: warehouse.id,
                quantity: 1,
                expires_at: Some(1),
            };
            let (id, metadata) = (Uuid::now_v7(), Metadata::default());
            let envelope =
                EventEnvelope::new(id, AggregateType::Allocation, id, 1, &event, metadata, 0);
            rows.push(envelope);
        }
        projections.apply(rows).await.expect("project");
        tokio::time::sleep(Duration::from_millis(30)).await;

        let mut sweeper = Sweeper {
            commands,
            read: projections,
            interval: Duration::from_millis(10),
            settled: HashSet::new(),
        };
        let first = sweeper.sweep().await;
        assert_eq!(first.expired, 0, "a batch of rows the store refuses");
        assert_eq!(sweeper.settled.len(), BATCH);
        let second = sweeper.sweep().await;
        assert_eq!(second.expired, 1, "the due allocation behind them");
        let stored = crate::application::load::<crate::domain::allocation::Allocation>(
            &*store,
            allocation.id,
            None,
        )
        .await
        .expect("load");
        assert_eq!(stored.state.cancel_reason.as_deref(), Some("expired"));
    }
}
