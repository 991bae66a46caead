//! DynamoDB projection store: one table per read model (created by `crate::dynamodb::migrate`),
//! written with conditional requests so that every projector is exactly-once in effect without
//! a cross-table transaction: a duplicate is skipped, a gap stops the batch, and a concurrent
//! or stale writer can never roll a row back. Queries live in `queries`; the only Scan is
//! `dump`, for operators' verification.

mod allocation_status;
mod attributes;
mod current_inventory;
mod generations;
mod inventory_history;
mod queries;
mod stock_movements;

pub use generations::DynamoGenerations;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeSet, HashMap};
use uuid::Uuid;

use super::layout::ProjectionName;
use super::{
    AllocationView, Applied, Gap, ItemView, ProjectionDump, ProjectionError, ProjectionStore,
    WarehouseView,
};
use crate::domain::DomainEvent;
use crate::dynamodb::Tables;
use crate::store::EventEnvelope;
use attributes::{s, Record};

pub struct DynamoProjections {
    client: Client,
    tables: Tables,
    /// The projections these tables hold (the others' tables are not touched).
    serves: Vec<ProjectionName>,
    /// Rows this process wrote, as hints for the next batch (see `Cache`).
    remembered: std::sync::Mutex<Cache>,
}

impl DynamoProjections {
    /// Uses tables that already exist (`crate::dynamodb::migrate` creates them).
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            client,
            tables,
            serves: ProjectionName::ALL.to_vec(),
            remembered: std::sync::Mutex::default(),
        }
    }

    /// Applies and dumps only these projections.
    pub fn serving(mut self, projections: &[ProjectionName]) -> Self {
        self.serves = projections.to_vec();
        self
    }

    /// Scans the table of `projection` if these tables hold it (an empty list otherwise).
    async fn scan_served<T>(
        &self,
        projection: ProjectionName,
        table: String,
        decode: fn(&Record) -> Result<T, ProjectionError>,
    ) -> Result<Vec<T>, ProjectionError> {
        if !self.serves.contains(&projection) {
            return Ok(Vec::new());
        }
        self.scan(&table).await?.iter().map(decode).collect()
    }
}

/// What one projector made of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Applied,
    Duplicate,
    /// The projector's checkpoint is `after`, more than one behind the event.
    Gap {
        after: u64,
    },
}

/// Where an event with `sequence` stands against a checkpoint `last`: `None` when it is the
/// next one and must be applied.
fn position(last: u64, sequence: u64) -> Option<Outcome> {
    if sequence <= last {
        Some(Outcome::Duplicate)
    } else if sequence > last + 1 {
        Some(Outcome::Gap { after: last })
    } else {
        None
    }
}

/// How many times one event's conditional write may lose a race before the batch fails as
/// unavailable. Each loss means another writer made progress, so this bounds only contention.
const MAX_RACES: usize = 8;

/// Rows and checkpoints as read or written earlier in this batch, so a batch of N events on
/// one aggregate costs one read and N writes; and, remembered from earlier batches, hints that
/// spare the read altogether in the steady state (one writer per row). Only hints: every write
/// is still conditioned on the version it expects, a failed condition drops the entry and
/// re-reads, and a remembered row never decides on its own that an event is a duplicate or a
/// gap (a row that vanished with its table must not make us skip an event): that takes a read.
#[derive(Default)]
struct Cache {
    warehouses: Rows<WarehouseView>,
    items: Rows<ItemView>,
    allocations: Rows<AllocationView>,
    movements: Rows<stock_movements::Checkpoint>,
}

impl Cache {
    /// What this batch learned, as hints for the next one.
    fn remember(self) -> Cache {
        Cache {
            warehouses: self.warehouses.remember(),
            items: self.items.remember(),
            allocations: self.allocations.remember(),
            movements: self.movements.remember(),
        }
    }

    fn len(&self) -> usize {
        self.warehouses.len() + self.items.len() + self.allocations.len() + self.movements.len()
    }
}

/// At most this many rows are remembered between batches; past it the hints start afresh.
const MAX_REMEMBERED: usize = 50_000;

/// One projector's rows by aggregate id.
struct Rows<V> {
    /// Read or written in this batch: `None` is a row known to be absent.
    known: HashMap<Uuid, Option<V>>,
    /// Written by an earlier batch of this process.
    remembered: HashMap<Uuid, V>,
}

impl<V> Default for Rows<V> {
    fn default() -> Self {
        Self {
            known: HashMap::new(),
            remembered: HashMap::new(),
        }
    }
}

/// A row as the cache has it.
enum Cached<V> {
    /// Known in this batch: trusted.
    Known(Option<V>),
    /// Remembered from an earlier batch: good to write against, not to skip on.
    Remembered(V),
}

impl<V: Clone> Rows<V> {
    fn get(&mut self, id: &Uuid) -> Option<Cached<V>> {
        if let Some(row) = self.known.get(id) {
            return Some(Cached::Known(row.clone()));
        }
        self.remembered.remove(id).map(Cached::Remembered)
    }

    fn insert(&mut self, id: Uuid, row: Option<V>) {
        self.known.insert(id, row);
    }

    fn remove(&mut self, id: &Uuid) {
        self.known.remove(id);
        self.remembered.remove(id);
    }

    fn remember(mut self) -> Rows<V> {
        for (id, row) in self.known {
            if let Some(row) = row {
                self.remembered.insert(id, row);
            }
        }
        Rows {
            known: HashMap::new(),
            remembered: self.remembered,
        }
    }

    fn len(&self) -> usize {
        self.known.len() + self.remembered.len()
    }
}

/// A single-row read model whose `version` attribute is its checkpoint.
trait VersionedRow: Clone + Send + Sync + Sized {
    fn version(&self) -> u64;
    fn to_record(&self) -> Record;
    fn from_record(record: &Record) -> Result<Self, ProjectionError>;
}

fn unavailable(error: impl std::error::Error) -> ProjectionError {
    ProjectionError::Unavailable(DisplayErrorContext(&error).to_string())
}

fn decode<E: DomainEvent>(envelope: &EventEnvelope) -> Result<E, ProjectionError> {
    envelope.decode().map_err(|e| ProjectionError::Poison {
        event_id: envelope.event_id,
        reason: e.to_string(),
    })
}

fn lost_races(envelope: &EventEnvelope) -> ProjectionError {
    ProjectionError::Unavailable(format!(
        "event {} lost {MAX_RACES} races for its projection row; retry later",
        envelope.event_id
    ))
}

impl DynamoProjections {
    async fn get_row<V: VersionedRow>(
        &self,
        table: &str,
        id: Uuid,
    ) -> Result<Option<V>, ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .key("id", s(id.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        output.item.as_ref().map(V::from_record).transpose()
    }

    /// Applies one event to the row keyed by its aggregate id: reads the row (an absent row is
    /// version 0), skips a duplicate, reports a gap, or writes `fold(row)` on condition that
    /// the row is still at `s - 1`, so a stale or concurrent writer cannot roll it back.
    async fn apply_row<V: VersionedRow>(
        &self,
        table: &str,
        envelope: &EventEnvelope,
        cache: &mut Rows<V>,
        fold: impl Fn(Option<&V>) -> V + Send + Sync,
    ) -> Result<Outcome, ProjectionError> {
        let id = envelope.aggregate_id;
        let sequence = envelope.sequence_number;
        // Cleared once a hint proved wrong: from then on only a read decides.
        let mut hints = true;
        for _ in 0..MAX_RACES {
            let (row, remembered) = match cache.get(&id) {
                Some(Cached::Known(row)) => (row, false),
                Some(Cached::Remembered(row)) => (Some(row), true),
                // An aggregate's first event: there is no row to read yet. Taken as a hint, so
                // a redelivery fails the write's condition and is then read.
                None if sequence == 1 && hints => (None, true),
                None => (self.get_row::<V>(table, id).await?, false),
            };
            let version = row.as_ref().map_or(0, V::version);
            if let Some(outcome) = position(version, sequence) {
                if remembered {
                    // Not the next event by the hint: let a read decide.
                    hints = false;
                    continue;
                }
                cache.insert(id, row);
                return Ok(outcome);
            }
            let next = fold(row.as_ref());
            let request = self
                .client
                .put_item()
                .table_name(table)
                .set_item(Some(next.to_record()));
            let request = if version == 0 {
                request
                    .condition_expression("attribute_not_exists(#id)")
                    .expression_attribute_names("#id", "id")
            } else {
                request
                    .condition_expression("#version = :previous")
                    .expression_attribute_names("#version", "version")
                    .expression_attribute_values(":previous", attributes::n(version))
            };
            match request.send().await {
                Ok(_) => {
                    cache.insert(id, Some(next));
                    return Ok(Outcome::Applied);
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Someone else moved the row: read it again and decide afresh.
                    cache.remove(&id);
                    hints = false;
                }
                Err(error) => return Err(unavailable(error)),
            }
        }
        Err(lost_races(envelope))
    }

    /// What each projector these tables serve made of one event. An item's current-inventory
    /// and movement projectors write different tables on their own conditions, so their
    /// requests go out together; history follows unless they found a gap (two round trips
    /// per item event, not three).
    async fn apply_event(
        &self,
        envelope: &EventEnvelope,
        cache: &mut Cache,
    ) -> Result<Vec<(ProjectionName, Outcome)>, ProjectionError> {
        let serves = |projector: ProjectionName| {
            self.serves.contains(&projector) && projector.handles() == envelope.aggregate_type
        };
        let mut results = Vec::new();
        if serves(ProjectionName::Warehouses) {
            let outcome =
                current_inventory::apply_warehouse(self, envelope, &mut cache.warehouses).await?;
            results.push((ProjectionName::Warehouses, outcome));
        }
        if serves(ProjectionName::AllocationStatus) {
            let outcome = allocation_status::apply(self, envelope, &mut cache.allocations).await?;
            results.push((ProjectionName::AllocationStatus, outcome));
        }
        let (item_rows, movement_rows) = (&mut cache.items, &mut cache.movements);
        let (current, movements) = tokio::join!(
            async {
                match serves(ProjectionName::CurrentInventory) {
                    true => Some(current_inventory::apply_item(self, envelope, item_rows).await),
                    false => None,
                }
            },
            async {
                match serves(ProjectionName::StockMovements) {
                    true => Some(stock_movements::apply(self, envelope, movement_rows).await),
                    false => None,
                }
            },
        );
        for (projector, outcome) in [
            (ProjectionName::CurrentInventory, current),
            (ProjectionName::StockMovements, movements),
        ] {
            if let Some(outcome) = outcome {
                results.push((projector, outcome?));
            }
        }
        // History keeps no checkpoint (its rows need none), so it must not run past a gap.
        let gap = results
            .iter()
            .any(|(_, outcome)| matches!(outcome, Outcome::Gap { .. }));
        if !gap && serves(ProjectionName::InventoryHistory) {
            let outcome = inventory_history::apply(self, envelope).await?;
            results.push((ProjectionName::InventoryHistory, outcome));
        }
        Ok(results)
    }

    /// Every record of a table. Only `dump` may do this: it reads the whole table.
    async fn scan(&self, table: &str) -> Result<Vec<Record>, ProjectionError> {
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            records.extend(page.items.unwrap_or_default());
            start = page.last_evaluated_key;
            if start.is_none() {
                return Ok(records);
            }
        }
    }
}

#[async_trait]
impl ProjectionStore for DynamoProjections {
    /// Events are applied one at a time, each projector with its own condition; there is no
    /// batch transaction (it would hit the 100-item limit and gain nothing). An error part-way
    /// leaves the earlier events applied, which a redelivery then skips as duplicates.
    async fn apply(&self, events: Vec<EventEnvelope>) -> Result<Applied, ProjectionError> {
        // Taken for the batch (another batch applied meanwhile starts without hints) and put
        // back only if the batch succeeds.
        let mut cache = self
            .remembered
            .lock()
            .map(|mut hints| std::mem::take(&mut *hints))
            .unwrap_or_default();
        let mut items = BTreeSet::new();
        let mut allocations = BTreeSet::new();
        let mut outcome = Applied::default();
        'events: for (index, envelope) in events.iter().enumerate() {
            let results = self.apply_event(envelope, &mut cache).await?;
            for (projector, result) in results {
                match (result, projector) {
                    (Outcome::Gap { after }, _) => {
                        outcome.gap = Some(Gap {
                            aggregate_id: envelope.aggregate_id,
                            after,
                        });
                        outcome.applied = index;
                        break 'events;
                    }
                    (Outcome::Applied, ProjectionName::CurrentInventory) => {
                        items.insert(envelope.aggregate_id);
                    }
                    (Outcome::Applied, ProjectionName::AllocationStatus) => {
                        allocations.insert(envelope.aggregate_id);
                    }
                    _ => {}
                }
            }
            outcome.applied = index + 1;
        }
        outcome.changed_items = items
            .iter()
            .filter_map(|id| cache.items.known.get(id).cloned().flatten())
            .collect();
        outcome.changed_allocations = allocations
            .iter()
            .filter_map(|id| cache.allocations.known.get(id).cloned().flatten())
            .collect();
        let hints = if cache.len() > MAX_REMEMBERED {
            Cache::default()
        } else {
            cache.remember()
        };
        if let Ok(mut remembered) = self.remembered.lock() {
            *remembered = hints;
        }
        Ok(outcome)
    }

    async fn dump(&self) -> Result<ProjectionDump, ProjectionError> {
        use ProjectionName as P;
        let mut dump = ProjectionDump {
            warehouses: self
                .scan_served(
                    P::Warehouses,
                    self.tables.warehouses(),
                    WarehouseView::from_record,
                )
                .await?,
            items: self
                .scan_served(
                    P::CurrentInventory,
                    self.tables.items(),
                    ItemView::from_record,
                )
                .await?,
            allocations: self
                .scan_served(
                    P::AllocationStatus,
                    self.tables.allocations(),
                    AllocationView::from_record,
                )
                .await?,
            history: self
                .scan_served(
                    P::InventoryHistory,
                    self.tables.history(),
                    inventory_history::from_record,
                )
                .await?,
            movements: self
                .scan_served(
                    P::StockMovements,
                    self.tables.movements(),
                    stock_movements::from_record,
                )
                .await?,
        };
        // The orders of the SQLite dump (UUID order is the order of their text).
        dump.warehouses.sort_by_key(|w| w.id);
        dump.items.sort_by_key(|i| i.id);
        dump.allocations.sort_by_key(|a| a.id);
        dump.history.sort_by_key(|h| (h.item_id, h.sequence_number));
        dump.movements
            .sort_by(|a, b| (a.item_id, &a.day).cmp(&(b.item_id, &b.day)));
        Ok(dump)
    }
}
