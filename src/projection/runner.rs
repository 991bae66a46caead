//! Applies delivered events to the projections, exactly once in effect: duplicates are
//! skipped by the store's checkpoints, and a gap is filled by reading the missing events from
//! the event store — never by guessing. It returns the rows it changed, as it left them, so
//! that the caller can announce them to `inventoryItemChanged` / `allocationChanged`
//! subscribers without reading them back.

use std::sync::Arc;

pub use super::Changed;
use super::{AllocationView, ItemView, ProjectionError, ProjectionStore};
use crate::store::{EventEnvelope, EventStore};

/// Read-model rows changed by a batch, for live subscribers.
#[derive(Debug, Clone, Default)]
pub struct ReadModelChanges {
    pub items: Vec<ItemView>,
    pub allocations: Vec<AllocationView>,
}

pub struct ProjectionRunner {
    store: Arc<dyn EventStore>,
    projections: Arc<dyn ProjectionStore>,
}

/// How many times one batch may hit a gap before giving up (each fill makes progress, so this
/// only bounds pathological input).
const MAX_GAP_FILLS: usize = 10_000;

impl ProjectionRunner {
    pub fn new(store: Arc<dyn EventStore>, projections: Arc<dyn ProjectionStore>) -> Self {
        Self { store, projections }
    }

    /// Applies the batch (filling gaps first) and returns the changed rows.
    pub async fn handle(&self, mut events: Vec<EventEnvelope>) -> Result<Changed, ProjectionError> {
        let mut changed = Changed::default();
        for _ in 0..MAX_GAP_FILLS {
            let outcome = self.projections.apply(events.clone()).await?;
            // Later applies of the batch (after a gap fill) hold later rows.
            changed
                .items
                .extend(outcome.changed_items.into_iter().map(|row| (row.id, row)));
            changed.allocations.extend(
                outcome
                    .changed_allocations
                    .into_iter()
                    .map(|row| (row.id, row)),
            );
            let Some(gap) = outcome.gap else {
                return Ok(changed);
            };
            let rest = events.split_off(outcome.applied);
            let before = rest[0].sequence_number;
            tracing::info!(aggregate_id = %gap.aggregate_id, after = gap.after, before, "filling a projection gap from the store");
            let missing = self
                .store
                .load(gap.aggregate_id, gap.after, Some(before - 1))
                .await
                .map_err(|e| {
                    ProjectionError::request("reading a gap's events from the store", e)
                })?;
            if missing.len() as u64 != before - 1 - gap.after {
                return Err(ProjectionError::poison(
                    rest[0].event_id,
                    format!(
                        "the store has {} of the {} events before it",
                        missing.len(),
                        before - 1 - gap.after
                    ),
                ));
            }
            events = missing;
            events.extend(rest);
        }
        Err(ProjectionError::Unavailable(
            "too many gaps in one batch".into(),
        ))
    }
}
