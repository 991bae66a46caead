//! Projections: read models built from events. The ports are here — `ProjectionStore` (apply
//! events, exactly-once in effect per aggregate sequence number) and `ReadModel` (the queries
//! the API needs); `runner` fills gaps from the event store and returns the changed rows;
//! `catch_up` brings the projections level with the store when an instance starts.

pub mod batch;
pub mod catch_up;
pub mod dynamodb;
pub mod fanout;
pub mod fold;
pub mod layout;
pub mod lease;
pub mod model;
pub mod movements;
pub mod replay;
pub mod runner;
pub mod sqlite;
pub mod stall;
pub mod switch;

use async_trait::async_trait;
use std::collections::BTreeMap;
use thiserror::Error;
use uuid::Uuid;

use crate::domain::allocation::AllocationStatus;
use crate::store::EventEnvelope;
pub use model::{AllocationView, HistoryEntry, ItemView, MovementRow, TransferView, WarehouseView};
pub use movements::day_of;

/// What caused a projection error, kept whole for `source()`.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Two kinds: the projection store cannot serve now (`Unavailable`, `Request`: a retry may
/// succeed) or an event can never be applied (`Poison`: reject it). Each says what this layer
/// was doing; the error it met is its `source()`.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// A condition with no underlying error (a missing generation, a race lost too often).
    #[error("projection store unavailable: {0}")]
    Unavailable(String),
    /// A request to the projection tables (or, filling a gap, to the event store) failed.
    #[error("projection store unavailable while {doing}")]
    Request {
        doing: &'static str,
        #[source]
        source: Cause,
    },
    /// An event that cannot be decoded or applied; retrying will not help.
    #[error("cannot apply event {event_id}")]
    Poison {
        event_id: Uuid,
        #[source]
        reason: Cause,
    },
}

impl ProjectionError {
    /// A failed request, with what it was for.
    pub fn request(doing: &'static str, source: impl Into<Cause>) -> Self {
        Self::Request {
            doing,
            source: source.into(),
        }
    }

    pub fn poison(event_id: Uuid, reason: impl Into<Cause>) -> Self {
        Self::Poison {
            event_id,
            reason: reason.into(),
        }
    }

    /// Whether a retry may succeed (everything but poison).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Poison { .. })
    }
}

/// The rows a batch changed, the last version of each (what live subscribers are told).
#[derive(Debug, Clone, Default)]
pub struct Changed {
    pub items: BTreeMap<Uuid, ItemView>,
    pub allocations: BTreeMap<Uuid, AllocationView>,
}

/// The result of applying a batch.
#[derive(Debug, Default)]
pub struct Applied {
    /// Everything up to `applied` (exclusive) is applied or was a duplicate.
    pub applied: usize,
    /// Set when event `applied` is ahead of its stream's checkpoint: the events with
    /// `after < sequenceNumber < events[applied].sequenceNumber` must be applied first.
    pub gap: Option<Gap>,
    /// The rows the batch changed, as it left them (so they can be announced to live
    /// subscribers without reading them back).
    pub changed_items: Vec<ItemView>,
    pub changed_allocations: Vec<AllocationView>,
}

impl Applied {
    /// A batch of `len` events applied up to its earliest gap (`batch::earliest_gap`), or whole
    /// without one, having changed these rows.
    pub fn up_to(len: usize, earliest: Option<(usize, u64, Uuid)>, changed: Changed) -> Self {
        Self {
            applied: earliest.map_or(len, |(index, _, _)| index),
            gap: earliest.map(|(_, after, aggregate_id)| Gap {
                aggregate_id,
                after,
            }),
            changed_items: changed.items.into_values().collect(),
            changed_allocations: changed.allocations.into_values().collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub aggregate_id: Uuid,
    pub after: u64,
}

/// Every projected row, each list in key order: two projection stores built from the same
/// events dump equal, whatever their technology.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProjectionDump {
    pub warehouses: Vec<WarehouseView>,
    pub items: Vec<ItemView>,
    pub allocations: Vec<AllocationView>,
    /// By item, then sequence number.
    pub history: Vec<HistoryEntry>,
    /// By item, then day.
    pub movements: Vec<MovementRow>,
    pub transfers: Vec<TransferView>,
}

impl ProjectionDump {
    /// Human-readable differences, empty when equal.
    pub fn differences(&self, other: &ProjectionDump) -> Vec<String> {
        fn compare<T: PartialEq + std::fmt::Debug>(
            name: &str,
            a: &[T],
            b: &[T],
            out: &mut Vec<String>,
        ) {
            if a.len() != b.len() {
                out.push(format!("{name}: {} rows against {}", a.len(), b.len()));
            }
            if let Some((x, y)) = a.iter().zip(b).find(|(x, y)| x != y) {
                out.push(format!("{name}: {x:?} differs from {y:?}"));
            }
        }
        let mut out = Vec::new();
        compare("warehouses", &self.warehouses, &other.warehouses, &mut out);
        compare("items", &self.items, &other.items, &mut out);
        compare(
            "allocations",
            &self.allocations,
            &other.allocations,
            &mut out,
        );
        compare("history", &self.history, &other.history, &mut out);
        compare("movements", &self.movements, &other.movements, &mut out);
        compare("transfers", &self.transfers, &other.transfers, &mut out);
        out
    }
}

#[async_trait]
pub trait ProjectionStore: Send + Sync + 'static {
    /// Applies events in order, skipping those already applied, stopping at the first gap.
    async fn apply(&self, events: Vec<EventEnvelope>) -> Result<Applied, ProjectionError>;

    /// Every projected row (for verification and audits; reads whole tables).
    async fn dump(&self) -> Result<ProjectionDump, ProjectionError>;
}

#[derive(Debug, Clone, Default)]
pub struct AllocationFilter {
    pub order_id: Option<String>,
    pub item_id: Option<Uuid>,
    pub status: Option<AllocationStatus>,
    /// Only the allocations of this warehouse (a principal scoped to warehouses reads only
    /// theirs).
    pub warehouse_id: Option<Uuid>,
}

/// Which transfers a list reads: those leaving or entering any of `warehouses` (`None`: any
/// warehouse), optionally only of one status or one item (at either end).
#[derive(Debug, Clone, Default)]
pub struct TransferFilter {
    pub warehouses: Option<Vec<Uuid>>,
    pub status: Option<crate::domain::transfer::TransferStatus>,
    pub item_id: Option<Uuid>,
}

/// Which part of a list, by key: the rows with `after < key < before`, at most `limit` of them,
/// taken from the front (`backward == false`) or from the back (`backward == true`, read with a
/// descending query). Either way they come back in ascending key order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys<K> {
    pub after: Option<K>,
    pub before: Option<K>,
    pub backward: bool,
    pub limit: usize,
}

impl<K> Keys<K> {
    /// The first `limit` rows after `after` (the whole list from its start when `None`).
    pub fn after(after: Option<K>, limit: usize) -> Self {
        Self {
            after,
            before: None,
            backward: false,
            limit,
        }
    }

    /// The last `limit` rows before `before` (up to the list's end when `None`).
    pub fn before(before: Option<K>, limit: usize) -> Self {
        Self {
            after: None,
            before,
            backward: true,
            limit,
        }
    }
}

/// The rows of a keyset (`after < key < before`, at most `limit` from the requested end), in
/// ascending key order, out of rows in any order.
pub fn keyset_slice<K: Ord + Copy, T>(
    mut rows: Vec<T>,
    keys: &Keys<K>,
    key_of: fn(&T) -> K,
) -> Vec<T> {
    rows.retain(|row| {
        let key = key_of(row);
        keys.after.is_none_or(|after| key > after) && keys.before.is_none_or(|before| key < before)
    });
    rows.sort_by_key(key_of);
    if keys.backward {
        let cut = rows.len().saturating_sub(keys.limit);
        rows.drain(..cut);
    } else {
        rows.truncate(keys.limit);
    }
    rows
}

/// The queries behind the GraphQL API. Lists are keyset-paginated (see [`Keys`]) so that page
/// N costs what page 1 costs; the `*_by_ids` reads answer a DataLoader's batch in one call
/// (rows in no particular order, unknown ids left out); the `count_*` reads count a list's
/// rows under the same filters.
#[async_trait]
pub trait ReadModel: Send + Sync + 'static {
    async fn warehouse(&self, id: Uuid) -> Result<Option<WarehouseView>, ProjectionError>;
    async fn warehouses(
        &self,
        include_inactive: bool,
        keys: Keys<Uuid>,
    ) -> Result<Vec<WarehouseView>, ProjectionError>;
    async fn warehouses_by_ids(&self, ids: &[Uuid]) -> Result<Vec<WarehouseView>, ProjectionError>;
    async fn count_warehouses(&self, include_inactive: bool) -> Result<u64, ProjectionError>;
    async fn item(&self, id: Uuid) -> Result<Option<ItemView>, ProjectionError>;
    async fn item_by_sku(
        &self,
        warehouse_id: Uuid,
        sku: &str,
    ) -> Result<Option<ItemView>, ProjectionError>;
    async fn items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
        keys: Keys<Uuid>,
    ) -> Result<Vec<ItemView>, ProjectionError>;
    async fn items_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ItemView>, ProjectionError>;
    async fn count_items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
    ) -> Result<u64, ProjectionError>;
    async fn allocation(&self, id: Uuid) -> Result<Option<AllocationView>, ProjectionError>;
    async fn allocations(
        &self,
        filter: AllocationFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<AllocationView>, ProjectionError>;
    async fn allocations_by_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<AllocationView>, ProjectionError>;
    async fn count_allocations(&self, filter: AllocationFilter) -> Result<u64, ProjectionError>;
    /// Up to `limit` allocations still created whose deadline is at or before `now` (ms),
    /// earliest deadline first: what the expiry sweeper cancels. Read from an index of open
    /// deadlines only (never a scan), and possibly a little behind the store: the cancel
    /// decides on the stored allocation.
    async fn due_allocations(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, ProjectionError>;
    async fn transfer(&self, id: Uuid) -> Result<Option<TransferView>, ProjectionError>;
    /// A keyset page of transfers by id.
    async fn transfers(
        &self,
        filter: TransferFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<TransferView>, ProjectionError>;
    async fn count_transfers(&self, filter: TransferFilter) -> Result<u64, ProjectionError>;
    /// History entries with `from <= occurredAt < to` (ms), keyed by sequence number.
    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        keys: Keys<u64>,
    ) -> Result<Vec<HistoryEntry>, ProjectionError>;
    async fn count_history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<u64, ProjectionError>;
    /// Movement rows with `from <= day <= to` (`YYYY-MM-DD`).
    async fn movements(
        &self,
        warehouse_id: Option<Uuid>,
        item_id: Option<Uuid>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<MovementRow>, ProjectionError>;
    async fn ping(&self) -> Result<(), ProjectionError>;
}
