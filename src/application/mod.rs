//! The application layer: turns a command into a commit. Every command takes one path (the
//! pipeline): queued on its aggregate, decided by the pure deciders on a draft of the
//! aggregates it needs, appended with their expectations; a lost race is retried from a fresh
//! load a bounded number of times, a business-rule failure never is. It knows the store only
//! through its port.

mod bulk;
mod cache;
pub mod commands;
mod draft;
mod idempotency;
mod outcome;
mod pipeline;

pub use bulk::{BulkAdjust, BulkOutcome, BulkPolicy, BulkRow, RowError, RowOutcome, BULK_MAX_ROWS};
pub use commands::{
    AdjustStock, Commands, CreateAllocation, CreateItem, CreateTransfer, CreateWarehouse,
};
pub use outcome::{CommandContext, CommandError, Entity, Outcome};

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
    fold(Versioned::<A>::default(), id, events)
}

/// The state as of a moment (`at`, ms: every event committed at or before it) and/or a version
/// (every event up to it), folded from the events; `None` if the aggregate did not exist then.
pub async fn load_as_of<A: Aggregate>(
    store: &dyn EventStore,
    id: Uuid,
    at: Option<i64>,
    version: Option<u64>,
) -> Result<Option<Versioned<A>>, StoreError> {
    let mut events = store.load(id, 0, version).await?;
    if let Some(at) = at {
        // A prefix of the stream, so a clock that stepped back cannot skip an event.
        let cut = events
            .iter()
            .position(|e| e.timestamp > at)
            .unwrap_or(events.len());
        events.truncate(cut);
    }
    if events.is_empty() || events.iter().any(|e| e.aggregate_type != A::TYPE) {
        return Ok(None);
    }
    fold(Versioned::<A>::default(), id, events).map(Some)
}

/// The current state, from the latest usable snapshot plus the events after it (or from every
/// event when `use_snapshots` is false or no snapshot can be trusted). A snapshot of another
/// aggregate type, of an older state shape, or that does not decode is ignored and logged.
pub async fn load_latest<A: Aggregate>(
    store: &dyn EventStore,
    id: Uuid,
    use_snapshots: bool,
) -> Result<Versioned<A>, StoreError> {
    if use_snapshots {
        match store.load_snapshot(id).await {
            Ok(Some(snapshot))
                if snapshot.aggregate_type == A::TYPE
                    && snapshot.state_version == A::STATE_VERSION =>
            {
                match serde_json::from_value::<Versioned<A>>(snapshot.state) {
                    Ok(mut state) if state.version == snapshot.version => {
                        state.from_snapshot = snapshot.version;
                        let tail = store.load(id, snapshot.version, None).await?;
                        return fold(state, id, tail);
                    }
                    Ok(_) => {
                        tracing::warn!(%id, "snapshot version disagrees with its state; ignored")
                    }
                    Err(error) => tracing::warn!(%id, %error, "unreadable snapshot ignored"),
                }
            }
            Ok(Some(snapshot)) => {
                tracing::info!(%id, state_version = snapshot.state_version, "stale snapshot ignored")
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%id, %error, "cannot read snapshot; loading every event"),
        }
    }
    load(store, id, None).await
}

fn fold<A: Aggregate>(
    mut state: Versioned<A>,
    id: Uuid,
    events: Vec<crate::store::EventEnvelope>,
) -> Result<Versioned<A>, StoreError> {
    for envelope in events {
        if envelope.aggregate_type != A::TYPE {
            return Ok(Versioned::default());
        }
        let event: A::Event = envelope.decode().map_err(|e| {
            StoreError::corrupt_because(
                format!(
                    "event {} of {id} ({})",
                    envelope.sequence_number, envelope.event_type
                ),
                e,
            )
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

#[cfg(test)]
mod tests;
