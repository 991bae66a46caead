//! The event store port: append a commit atomically, load a stream, read everything for replay,
//! and drain the transactional outbox. Adapters (`sqlite`, `dynamodb`) live beside this file
//! and must all pass the same contract tests; the guarantees below are the contract.

pub mod archive;
pub mod dynamodb;
pub mod envelope;
pub mod memory;
pub mod sqlite;

use async_trait::async_trait;
use thiserror::Error;
use uuid::Uuid;

pub use envelope::{EventEnvelope, Metadata};

/// One atomic write. Either every part takes effect or none does:
/// - every expectation holds (the stream is exactly at that version, so two writers that loaded
///   the same version cannot both win),
/// - the events are appended, each stream's sequence numbers continuing from its expectation,
/// - an outbox row is written for every event, so a commit is published even if the process
///   dies right after it,
/// - every guard key is claimed for its owner (first writer wins, for ever: e.g.
///   `sku#<warehouse>#<SKU>` for the item that has that SKU there),
/// - the idempotency record, if any, is written (first writer wins).
#[derive(Debug, Clone, Default)]
pub struct Commit {
    pub expectations: Vec<Expectation>,
    pub events: Vec<EventEnvelope>,
    pub guards: Vec<Guard>,
    pub idempotency: Option<IdempotencyRecord>,
}

/// A unique key and the aggregate that holds it (`EventStore::guard_owner` finds it again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guard {
    pub key: String,
    pub owner: Uuid,
}

impl Commit {
    /// The items this commit takes in a store that counts them as DynamoDB's transactions do
    /// (`EventStore::max_commit_items`): one per event, one outbox row for the commit, one
    /// check per aggregate expected but not written, one per guard, the idempotency record.
    pub fn items(&self) -> usize {
        let written = |id: Uuid| self.events.iter().any(|e| e.aggregate_id == id);
        let checks = self
            .expectations
            .iter()
            .filter(|x| !written(x.aggregate_id))
            .count();
        self.events.len()
            + usize::from(!self.events.is_empty())
            + checks
            + self.guards.len()
            + usize::from(self.idempotency.is_some())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expectation {
    pub aggregate_id: Uuid,
    /// The stream's current last sequence number; 0 for a stream that must not exist yet.
    pub version: u64,
}

/// What a mutation returned the first time it ran with this key, so a retry returns it again.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// `<mutation>:<client key>`: keys are scoped per mutation.
    pub key: String,
    /// A digest of the request's input, so reusing a key for a different request is caught.
    pub fingerprint: String,
    pub response: serde_json::Value,
}

/// An outbox row: an event committed but not yet confirmed published.
#[derive(Debug, Clone)]
pub struct OutboxEntry {
    /// Opaque to callers; adapters choose the format.
    pub id: String,
    pub envelope: EventEnvelope,
}

/// What made a store call fail, kept whole for the log (shared, so one failure can be the
/// answer of every command in a batch).
pub type Cause = std::sync::Arc<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Clone, Error)]
pub enum StoreError {
    /// Another writer moved the stream since it was loaded: reload and decide again.
    #[error("concurrent write to aggregate {aggregate_id}")]
    Conflict { aggregate_id: Uuid },
    /// A uniqueness guard is held by an earlier commit.
    #[error("unique key {key} is taken")]
    GuardTaken { key: String },
    /// The idempotency key was recorded by an earlier commit.
    #[error("idempotency key {key} was used already")]
    IdempotencyKeyUsed { key: String },
    /// The commit breaks a limit of the store; it was not attempted.
    #[error("commit too large: {0}")]
    TooLarge(String),
    /// Stored data could not be decoded (or a value could not be encoded for storing).
    #[error("corrupt stored data: {what}")]
    Corrupt {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store refused for now (DynamoDB throttling after the SDK's retries): retry later.
    #[error("event store throttled: {what}")]
    Throttled {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
    /// The store could not be reached or failed; the commit may be retried by the client.
    #[error("event store unavailable: {what}")]
    Unavailable {
        what: String,
        #[source]
        cause: Option<Cause>,
    },
}

/// Equal when of the same kind with the same message (causes compare by what they say).
impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
            && crate::error::Report(self).to_string() == crate::error::Report(other).to_string()
    }
}

impl StoreError {
    pub fn corrupt(what: impl Into<String>) -> Self {
        Self::Corrupt {
            what: what.into(),
            cause: None,
        }
    }

    pub fn corrupt_because(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Corrupt {
            what: what.into(),
            cause: Some(std::sync::Arc::new(cause)),
        }
    }

    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable {
            what: what.into(),
            cause: None,
        }
    }

    pub fn unavailable_because(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable {
            what: what.into(),
            cause: Some(std::sync::Arc::new(cause)),
        }
    }

    pub fn throttled_because(
        what: impl Into<String>,
        cause: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Throttled {
            what: what.into(),
            cause: Some(std::sync::Arc::new(cause)),
        }
    }
}

/// An aggregate's state as of `version`, so a load reads only the events after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub aggregate_id: Uuid,
    pub aggregate_type: crate::domain::AggregateType,
    pub version: u64,
    /// The state's shape version; a snapshot of another shape is ignored, never trusted.
    pub state_version: u32,
    pub state: serde_json::Value,
}

/// A page of the whole store, in an order the adapter chooses, with where to go on.
#[derive(Debug, Clone, Default)]
pub struct AllEventsPage {
    pub events: Vec<EventEnvelope>,
    pub next: Option<String>,
}

#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn append(&self, commit: Commit) -> Result<(), StoreError>;

    /// The most items one commit may hold (counted as `Commit::items` counts them), or `None`
    /// when nothing but its size on disk bounds it. A larger commit is refused with `TooLarge`
    /// before anything is written; commands that may grow large (a bulk adjustment) plan by it.
    fn max_commit_items(&self) -> Option<usize> {
        None
    }

    /// The stream's events with `after < sequenceNumber <= up_to`, in order.
    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError>;

    /// One page of every stored event; `cursor` is the previous page's `next`.
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError>;

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// The aggregate holding a guard key, read consistently (a commit that landed is seen):
    /// e.g. the item with a SKU at a warehouse, whatever the read models have caught up with.
    async fn guard_owner(&self, key: &str) -> Result<Option<Uuid>, StoreError>;

    /// The oldest unpublished events, oldest first.
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError>;

    /// How many outbox rows wait, and the commit time (ms) of the oldest.
    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError>;

    /// Forgets outbox rows whose publication was confirmed.
    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError>;

    /// Waits until a commit may have added outbox rows (or a while has passed).
    async fn outbox_wait(&self);

    /// The latest snapshot of an aggregate, if any.
    async fn load_snapshot(&self, aggregate_id: Uuid) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot unless a newer one is already there.
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError>;

    /// Cheap reachability check for readiness.
    async fn ping(&self) -> Result<(), StoreError>;

    /// How many events are stored, exactly or as the store's own estimate (DynamoDB refreshes
    /// its count every few hours); for progress reports only.
    async fn count_events(&self) -> Result<u64, StoreError>;
}
