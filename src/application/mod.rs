//! The application layer: turns a command into a commit. It loads the aggregates a command
//! needs, asks the pure deciders, and appends the events with their expectations; a lost race
//! is retried from a fresh load a bounded number of times, a business-rule failure never is.
//! It knows the store only through its port.

pub mod commands;
mod locks;
mod runner;

pub use commands::{AdjustStock, Commands, CreateAllocation, CreateItem, CreateWarehouse};
pub use runner::{CommandContext, CommandError, Entity, Outcome};

use uuid::Uuid;

use crate::domain::{Aggregate, Versioned};
use crate::store::{EventStore, StoreError};

/// Folds a stream into its aggregate's state. A stream of another aggregate type reads as
/// absent, so an item id passed where an allocation id belongs is simply "not found".
pub async fn load<A: Aggregate>(
    store: &dyn EventStore,
    id: Uuid,
    up_to: Option<u64>,
) -> Result<Versioned<A>, StoreError> {
    let events = store.load(id, 0, up_to).await?;
    let mut state = Versioned::<A>::default();
    for envelope in events {
        if envelope.aggregate_type != A::TYPE {
            return Ok(Versioned::default());
        }
        let event: A::Event = envelope.decode().map_err(|e| {
            StoreError::Corrupt(format!(
                "event {} of {id} ({}): {e}",
                envelope.sequence_number, envelope.event_type
            ))
        })?;
        state.apply(&event, envelope.sequence_number, envelope.timestamp);
    }
    Ok(state)
}

/// Milliseconds since the Unix epoch, the timestamp given to new events.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
