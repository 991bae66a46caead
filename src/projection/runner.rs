//! Applies delivered events to the projections, exactly once in effect: duplicates are
//! skipped by the store's checkpoints, and a gap is filled by reading the missing events from
//! the event store — never by guessing. Afterwards it announces the changed rows so that
//! `inventoryItemChanged` / `allocationChanged` subscribers see the updated read model.

use std::sync::Arc;

use super::{AllocationView, ItemView, ProjectionError, ProjectionStore, ReadModel};
use crate::store::{EventEnvelope, EventStore};

/// Read-model rows changed by a batch, for live subscribers.
#[derive(Debug, Clone, Default)]
pub struct ReadModelChanges {
    pub items: Vec<ItemView>,
    pub allocations: Vec<AllocationView>,
}

pub struct ProjectionRunner<P> {
    store: Arc<dyn EventStore>,
    projections: Arc<P>,
}

/// How many times one batch may hit a gap before giving up (each fill makes progress, so this
/// only bounds pathological input).
const MAX_GAP_FILLS: usize = 10_000;

impl<P: ProjectionStore + ReadModel> ProjectionRunner<P> {
    pub fn new(store: Arc<dyn EventStore>, projections: Arc<P>) -> Self {
        Self { store, projections }
    }

    /// Applies the batch (filling gaps first) and returns the changed rows as now stored.
    pub async fn handle(
        &self,
        mut events: Vec<EventEnvelope>,
    ) -> Result<ReadModelChanges, ProjectionError> {
        let mut items = std::collections::BTreeSet::new();
        let mut allocations = std::collections::BTreeSet::new();
        for _ in 0..MAX_GAP_FILLS {
            let outcome = self.projections.apply(events.clone()).await?;
            items.extend(outcome.changed_items);
            allocations.extend(outcome.changed_allocations);
            let Some(gap) = outcome.gap else {
                return self.changes(items, allocations).await;
            };
            let rest = events.split_off(outcome.applied);
            let before = rest[0].sequence_number;
            tracing::info!(aggregate_id = %gap.aggregate_id, after = gap.after, before, "filling a projection gap from the store");
            let missing = self
                .store
                .load(gap.aggregate_id, gap.after, Some(before - 1))
                .await
                .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
            if missing.len() as u64 != before - 1 - gap.after {
                return Err(ProjectionError::Poison {
                    event_id: rest[0].event_id,
                    reason: format!(
                        "the store has {} of the {} events before it",
                        missing.len(),
                        before - 1 - gap.after
                    ),
                });
            }
            events = missing;
            events.extend(rest);
        }
        Err(ProjectionError::Unavailable(
            "too many gaps in one batch".into(),
        ))
    }

    async fn changes(
        &self,
        items: std::collections::BTreeSet<uuid::Uuid>,
        allocations: std::collections::BTreeSet<uuid::Uuid>,
    ) -> Result<ReadModelChanges, ProjectionError> {
        let mut changes = ReadModelChanges::default();
        for id in items {
            changes.items.extend(self.projections.item(id).await?);
        }
        for id in allocations {
            changes
                .allocations
                .extend(self.projections.allocation(id).await?);
        }
        Ok(changes)
    }
}
