//! The archive port: what `export` and `import` need of an event store beyond commits. A cut
//! is a consistent set of stored events read while the service writes (per aggregate a prefix
//! of its stream, and no commit half in); an import writes a validated file's events into an
//! empty store without outbox rows, in batches that can be resumed, under a marker that says
//! which file is being imported. Each adapter keeps its own half: `sqlite/archive.rs` (one read
//! transaction), `dynamodb/archive.rs` and `dynamodb/cut.rs` (a scan made consistent).

use async_trait::async_trait;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{EventEnvelope, IdempotencyRecord, StoreError};

/// What a cut yields, in order: (any progress,) its counts once, then its events in pages, each aggregate's
/// events in sequence order (aggregates may interleave).
#[derive(Debug)]
pub enum CutPart {
    /// Progress of a store that reads everything once before it knows its cut (DynamoDB):
    /// how many stored events it has read so far.
    Scanned(u64),
    Counts {
        events: u64,
        aggregates: u64,
    },
    Events(Vec<EventEnvelope>),
    /// Only when asked for, after every event: the records of commits inside the cut (read in
    /// its transaction, or before its scan began), so a restored store never answers a retry
    /// with the reply of a write it does not hold.
    Idempotency(Vec<IdempotencyRecord>),
}

/// An import in progress (or finished) in this store: the checksum of the file being
/// imported and how many of its lines are written for certain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportMarker {
    pub checksum: String,
    pub lines_done: u64,
    pub finished: bool,
}

#[async_trait]
pub trait ArchiveStore: Send + Sync + 'static {
    /// The store's kind and location, for the export's header.
    fn describe(&self) -> serde_json::Value;

    /// Reads a consistent cut into `sink`: `CutPart::Counts` first, then the events, then
    /// (with `idempotency`) the idempotency records. Stops early (with `Ok`) when the receiver
    /// is gone.
    async fn cut(&self, idempotency: bool, sink: mpsc::Sender<CutPart>) -> Result<(), StoreError>;

    /// Whether the store holds any event (an import refuses such a store unless it is the
    /// same import, unfinished).
    async fn holds_events(&self) -> Result<bool, StoreError>;

    /// The import marker, if an import ever began here.
    async fn import_marker(&self) -> Result<Option<ImportMarker>, StoreError>;

    /// Claims the store for the import of the file with `checksum`: writes the marker only if
    /// there is none (two importers cannot both win). Returns the marker that holds afterwards.
    async fn claim_import(&self, checksum: &str) -> Result<ImportMarker, StoreError>;

    /// Writes `events` and the uniqueness guards their commits claimed (`(key, owner
    /// aggregate)`; no outbox rows: imported events are not published, the projections are
    /// rebuilt from the store), then moves the marker to `lines_done`. An event or guard
    /// already stored the same is left as it is, so a batch cut short and written again is
    /// never duplicated; something else at its place is `Conflict` or `GuardTaken` (the store
    /// is not a prefix of this import).
    async fn import_events(
        &self,
        checksum: &str,
        events: Vec<EventEnvelope>,
        guards: Vec<(String, Uuid)>,
        lines_done: u64,
    ) -> Result<(), StoreError>;

    /// Writes idempotency records (first writer wins: a record already there is kept).
    async fn import_idempotency(&self, records: Vec<IdempotencyRecord>) -> Result<(), StoreError>;

    /// Marks the import of `checksum` finished.
    async fn finish_import(&self, checksum: &str, lines: u64) -> Result<(), StoreError>;
}
