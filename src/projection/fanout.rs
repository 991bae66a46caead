//! Several projections' tables as one projection store: a batch goes to each at once (so a
//! store whose requests wait on the network keeps its projectors concurrent), and the outcome
//! is the shortest prefix any of them applied, so the runner's gap fill serves them all.

use async_trait::async_trait;
use std::sync::Arc;

use super::{Applied, ProjectionDump, ProjectionError, ProjectionStore};
use crate::store::EventEnvelope;

pub struct Fanout {
    parts: Vec<Arc<dyn ProjectionStore>>,
}

impl Fanout {
    /// Each part applies and dumps its own projections only.
    pub fn new(parts: Vec<Arc<dyn ProjectionStore>>) -> Self {
        Self { parts }
    }
}

#[async_trait]
impl ProjectionStore for Fanout {
    /// A part that went past where another stopped sees those events again after the gap is
    /// filled, as duplicates (skipped by its checkpoints), so applying "too far" is harmless.
    async fn apply(&self, events: Vec<EventEnvelope>) -> Result<Applied, ProjectionError> {
        let outcomes =
            futures::future::try_join_all(self.parts.iter().map(|part| part.apply(events.clone())))
                .await?;
        let mut merged = Applied {
            applied: events.len(),
            ..Applied::default()
        };
        for outcome in outcomes {
            merged.changed_items.extend(outcome.changed_items);
            merged
                .changed_allocations
                .extend(outcome.changed_allocations);
            // The earliest stop; of two at one event, the lower checkpoint (one fill serves
            // both).
            let earlier = (outcome.applied, outcome.gap.map(|g| g.after))
                < (merged.applied, merged.gap.map(|g| g.after));
            if outcome.gap.is_some() && (merged.gap.is_none() || earlier) {
                merged.applied = outcome.applied;
                merged.gap = outcome.gap;
            }
        }
        Ok(merged)
    }

    async fn dump(&self) -> Result<ProjectionDump, ProjectionError> {
        let dumps =
            futures::future::try_join_all(self.parts.iter().map(|part| part.dump())).await?;
        let mut all = ProjectionDump::default();
        for dump in dumps {
            all.warehouses.extend(dump.warehouses);
            all.items.extend(dump.items);
            all.allocations.extend(dump.allocations);
            all.history.extend(dump.history);
            all.movements.extend(dump.movements);
            all.transfers.extend(dump.transfers);
        }
        Ok(all)
    }
}
