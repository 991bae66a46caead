//! The live projector: the durable consumer that applies delivered events to every generation
//! of projection tables a process writes (serving, or being rebuilt), then announces the rows
//! it changed. A poison event is rejected (dead-lettered); anything else is retried.

use async_trait::async_trait;
use std::sync::Arc;

use crate::bus::{EventBus, EventHandler, HandlerError};
use crate::projection::layout::ProjectionName;
use crate::projection::runner::{Changed, ProjectionRunner, ReadModelChanges};
use crate::projection::stall::ProjectorHealth;
use crate::projection::switch::Switchboard;
use crate::projection::ProjectionError;
use crate::store::{EventEnvelope, EventStore};

/// The durable consumer that keeps the projections up to date — in every generation of tables
/// that serves or is being rebuilt — and announces changed rows.
pub(super) struct Projector {
    pub(super) store: Arc<dyn EventStore>,
    pub(super) projections: Arc<Switchboard>,
    pub(super) bus: Arc<dyn EventBus>,
    /// Told of every batch taken and how it ended, so that a stall is seen.
    pub(super) health: ProjectorHealth,
}

impl Projector {
    async fn apply(&self, events: &[EventEnvelope]) -> Result<ReadModelChanges, ProjectionError> {
        let routing = self.projections.write_routing().await?;
        // The rows as readers now see them: as the generation serving each read model left
        // them (no read back).
        let mut changes = ReadModelChanges::default();
        for target in routing.targets() {
            let runner = ProjectionRunner::new(self.store.clone(), target.clone());
            let Changed { items, allocations } = runner.handle(events.to_vec()).await?;
            if routing.serves(target, ProjectionName::CurrentInventory) {
                changes.items.extend(items.into_values());
            }
            if routing.serves(target, ProjectionName::AllocationStatus) {
                changes.allocations.extend(allocations.into_values());
            }
        }
        Ok(changes)
    }
}

#[async_trait]
impl EventHandler for Projector {
    async fn handle(&self, events: &[EventEnvelope]) -> Result<(), HandlerError> {
        self.health.taking();
        let applied = self.apply(events).await;
        match &applied {
            Ok(_) => self.health.applied(),
            Err(error) => self.health.failed(error),
        }
        match applied {
            Ok(changes) => {
                if let Some(last) = events.last() {
                    let lag =
                        (crate::application::now_ms() - last.timestamp).max(0) as f64 / 1000.0;
                    crate::metrics::record_projection_lag(lag);
                }
                if let Err(error) = self.bus.announce(changes).await {
                    let error = crate::bus::chain(&error);
                    tracing::warn!(%error, "could not announce read-model changes");
                }
                Ok(())
            }
            Err(error @ ProjectionError::Poison { .. }) => Err(HandlerError::Reject(error.into())),
            Err(error) => Err(HandlerError::Retry(error.into())),
        }
    }
}
