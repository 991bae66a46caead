//! The pure domain: four deciders (warehouse, inventory item, allocation, transfer) and their
//! events; an item's counts (`count`) are a rule of the item decider kept in a file of their
//! own.
//! Nothing here touches I/O, the clock or randomness: time, ids and the actor arrive with the
//! command, so every business rule is a plain function tested in microseconds.

pub mod allocation;
mod count;
pub mod error;
pub mod event;
pub mod item;
pub mod transfer;
pub mod upcast;
pub mod validate;
pub mod warehouse;

#[cfg(test)]
pub(crate) mod story;

pub use error::DomainError;
pub use event::{AggregateType, DomainEvent};

/// The largest quantity (on hand, delta, allocation, threshold) the service accepts.
/// Well inside `i32` so that GraphQL `Int` carries it and sums of two never overflow `i64`.
pub const MAX_QUANTITY: i64 = 1_000_000_000;

/// A decider's state together with the stream position it was folded up to.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Versioned<S> {
    pub state: S,
    /// Sequence number of the last event folded in; 0 for a stream with no events.
    pub version: u64,
    /// Timestamp (ms since epoch) of the first event, 0 before any.
    pub created_at: i64,
    /// Timestamp (ms since epoch) of the last event, 0 before any.
    pub updated_at: i64,
    /// Version of the snapshot this state was loaded from (0: folded from the first event).
    /// Bookkeeping for the loader, never stored.
    #[serde(skip)]
    pub from_snapshot: u64,
}

/// A decider: the state of one aggregate and how an event changes it.
pub trait Aggregate:
    Default + Clone + Send + Sync + serde::Serialize + serde::de::DeserializeOwned + 'static
{
    const TYPE: AggregateType;
    /// Version of the state's shape in snapshots: bump it when the state struct changes, and
    /// older snapshots are ignored (rebuilt from events) instead of misread.
    const STATE_VERSION: u32 = 1;
    type Event: DomainEvent;
    fn evolve(&mut self, event: &Self::Event);
}

impl<S: Aggregate> Versioned<S> {
    /// Folds one stored event in, keeping the version and timestamps beside the state.
    pub fn apply(&mut self, event: &S::Event, sequence_number: u64, timestamp: i64) {
        self.state.evolve(event);
        self.version = sequence_number;
        if self.created_at == 0 {
            self.created_at = timestamp;
        }
        self.updated_at = timestamp;
    }
}
