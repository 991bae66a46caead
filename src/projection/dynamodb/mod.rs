//! DynamoDB projection store: one table per read model (created by `crate::dynamodb::migrate`),
//! written with conditional requests so that every projector is exactly-once in effect without
//! a cross-table transaction: a duplicate is skipped, a gap stops the batch, and a concurrent
//! or stale writer can never roll a row back. Queries live in `queries`; the only Scan is
//! `dump`, for operators' verification.

mod allocation_status;
mod attributes;
mod current_inventory;
mod generations;
mod hints;
mod inventory_history;
mod lookup;
mod phases;
mod queries;
mod stock_movements;
mod transfer_status;

pub use generations::DynamoGenerations;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use uuid::Uuid;

use super::batch::{earliest_gap, plan, Stream};
use super::fold::{fold, Row};
use super::layout::ProjectionName;
use super::{
    AllocationView, Applied, Changed, ItemView, ProjectionDump, ProjectionError, ProjectionStore,
    TransferView, WarehouseView,
};
use crate::dynamodb::Tables;
use crate::store::EventEnvelope;
use attributes::{s, Record};
use hints::{Cache, Cached, MAX_REMEMBERED};
use phases::{resolve_all, write_all, Progress};

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

    /// Applies and dumps only `projection` (the others' tables are not touched).
    pub fn only(mut self, projection: ProjectionName) -> Self {
        self.serves = vec![projection];
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

/// Items per page of a whole-table scan (`dump`). DynamoDB ends a page at 1 MB anyway; the
/// limit matters to an emulator that reads the rest of the table for every page it returns
/// (Dynoxide without `Limit`), which made scanning a table of a million history rows
/// quadratic: `verify` after a large import never finished.
const SCAN_PAGE: i32 = 1_000;

/// How many times one aggregate's conditional write may lose a race before the batch fails as
/// unavailable. Each loss means another writer made progress, so this bounds only contention.
const MAX_RACES: usize = 8;

/// A single-row read model (`fold::Row`, whose `version` is its checkpoint) as its record.
trait VersionedRow: Row {
    fn to_record(&self) -> Record;
    fn from_record(record: &Record) -> Result<Self, ProjectionError>;
}

/// A failed request to DynamoDB, with what it was for.
fn unavailable<E>(doing: &'static str) -> impl FnOnce(E) -> ProjectionError
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |error| ProjectionError::request(doing, error)
}

fn lost_races(id: Uuid) -> ProjectionError {
    ProjectionError::Unavailable(format!(
        "aggregate {id} lost {MAX_RACES} races for its projection row; retry later"
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
            .map_err(unavailable("reading a projection row"))?;
        output.item.as_ref().map(V::from_record).transpose()
    }

    /// Applies one aggregate's events to the row keyed by its id, with one write however many
    /// they are: reads the row (an absent row is version 0) unless this batch or a hint knows
    /// it, skips duplicates, stops at a gap, and writes the fold of the rest on condition that
    /// the row is still at the version it was folded from, so a stale or concurrent writer
    /// cannot roll it back. Returns the row as it now stands.
    async fn apply_stream<V: VersionedRow>(
        &self,
        table: &str,
        id: Uuid,
        stream: Stream<'_>,
        mut start: Option<Cached<V>>,
    ) -> Result<(Uuid, Option<V>, Progress), ProjectionError> {
        let first = stream.first().map_or(0, |(_, e)| e.sequence_number);
        // Cleared once a hint proved wrong: from then on only a read decides.
        let mut hints = true;
        for _ in 0..MAX_RACES {
            let (row, hinted) = match start.take() {
                Some(Cached::Known(row)) => (row, false),
                Some(Cached::Remembered(row)) if hints => (Some(row), true),
                // An aggregate's first event: there is no row to read yet. Taken as a hint, so
                // a redelivery fails the write's condition and is then read.
                None if first == 1 && hints => (None, true),
                _ => (self.get_row::<V>(table, id).await?, false),
            };
            let version = row.as_ref().map_or(0, V::version);
            let plan = plan(version, &stream);
            if hinted && plan.needs_read() {
                hints = false;
                continue;
            }
            if plan.next.is_empty() {
                return Ok((
                    id,
                    row,
                    Progress {
                        changed: false,
                        gap: plan.gap,
                    },
                ));
            }
            let Some(next) = fold(row, plan.next.iter().map(|(_, e)| *e))? else {
                return Err(ProjectionError::Unavailable(format!(
                    "a run of events on {id} folded into no row"
                )));
            };
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
                    return Ok((
                        id,
                        Some(next),
                        Progress {
                            changed: true,
                            gap: plan.gap,
                        },
                    ))
                }
                Err(error)
                    if error
                        .as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    // Someone else moved the row: read it again and decide afresh (what it
                    // applied is then a duplicate; a lost race never opens a gap).
                    hints = false;
                }
                Err(error) => return Err(unavailable("writing a projection row")(error)),
            }
        }
        Err(lost_races(id))
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
                .limit(SCAN_PAGE)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable("scanning a projection table"))?;
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
    /// Each projector folds a batch's events on one aggregate into one conditional write (a
    /// row, or a movement record per day) and writes several aggregates at once; history then
    /// goes in BatchWriteItems of 25. There is no batch transaction (it would hit the 100-item
    /// limit and double every unit). First every projector finds where its rows stand (reading
    /// only what it neither knows nor may take from a hint), so that a gap anywhere stops the
    /// whole batch there: only the events before the earliest gap are written. An error
    /// part-way leaves some aggregates applied, which a redelivery then skips as duplicates.
    async fn apply(&self, events: Vec<EventEnvelope>) -> Result<Applied, ProjectionError> {
        use ProjectionName as P;
        // Taken for the batch (another batch applied meanwhile starts without hints) and put
        // back only if the batch succeeds.
        let mut cache = self
            .remembered
            .lock()
            .map(|mut hints| std::mem::take(&mut *hints))
            .unwrap_or_default();
        let none = |projector: P| !self.serves.contains(&projector);
        let served = |projector: P| {
            if none(projector) {
                &events[..0]
            } else {
                &events[..]
            }
        };
        let (warehouses_table, allocations_table, items_table, transfers_table) = (
            self.tables.warehouses(),
            self.tables.allocations(),
            self.tables.items(),
            self.tables.transfers(),
        );
        let (warehouses, allocations, items, movements, transfers) = tokio::join!(
            resolve_all(
                served(P::Warehouses),
                P::Warehouses,
                &mut cache.warehouses,
                WarehouseView::version,
                |id| self.get_row(&warehouses_table, id),
            ),
            resolve_all(
                served(P::AllocationStatus),
                P::AllocationStatus,
                &mut cache.allocations,
                AllocationView::version,
                |id| self.get_row(&allocations_table, id),
            ),
            resolve_all(
                served(P::CurrentInventory),
                P::CurrentInventory,
                &mut cache.items,
                ItemView::version,
                |id| self.get_row(&items_table, id),
            ),
            resolve_all(
                served(P::StockMovements),
                P::StockMovements,
                &mut cache.movements,
                stock_movements::Checkpoint::last_sequence,
                |id| stock_movements::read_checkpoint(self, id),
            ),
            resolve_all(
                served(P::TransferStatus),
                P::TransferStatus,
                &mut cache.transfers,
                TransferView::version,
                |id| self.get_row(&transfers_table, id),
            ),
        );
        let (warehouses, allocations, items, movements, transfers) =
            (warehouses?, allocations?, items?, movements?, transfers?);
        let earliest = earliest_gap(
            warehouses
                .iter()
                .map(|p| (p.id, p.gap))
                .chain(allocations.iter().map(|p| (p.id, p.gap)))
                .chain(items.iter().map(|p| (p.id, p.gap)))
                .chain(movements.iter().map(|p| (p.id, p.gap)))
                .chain(transfers.iter().map(|p| (p.id, p.gap))),
        );
        let cutoff = earliest.map_or(events.len(), |(index, _, _)| index);
        let (
            warehouses_written,
            changed_allocations,
            changed_items,
            movements_written,
            transfers_written,
        ) = tokio::join!(
            write_all(
                &mut cache.warehouses,
                warehouses,
                cutoff,
                |id, stream, start| { self.apply_stream(&warehouses_table, id, stream, start) }
            ),
            write_all(
                &mut cache.allocations,
                allocations,
                cutoff,
                |id, stream, start| { self.apply_stream(&allocations_table, id, stream, start) }
            ),
            write_all(&mut cache.items, items, cutoff, |id, stream, start| {
                self.apply_stream(&items_table, id, stream, start)
            }),
            write_all(
                &mut cache.movements,
                movements,
                cutoff,
                |id, stream, start| { stock_movements::apply_stream(self, id, stream, start) }
            ),
            write_all(
                &mut cache.transfers,
                transfers,
                cutoff,
                |id, stream, start| { self.apply_stream(&transfers_table, id, stream, start) }
            ),
        );
        // Every projector's writes must have landed before the batch counts as applied: an
        // error dropped here (a throttled warehouse or movement write) would acknowledge events
        // whose rows were never written, and nothing would ever write them.
        let (_, changed_allocations, changed_items, _, _) = (
            warehouses_written?,
            changed_allocations?,
            changed_items?,
            movements_written?,
            transfers_written?,
        );
        // History keeps no checkpoint (its rows need none); it stops at the gap too.
        if !none(P::InventoryHistory) {
            let entries = events[..cutoff]
                .iter()
                .filter(|e| e.aggregate_type == P::InventoryHistory.handles());
            inventory_history::write(self, entries).await?;
        }
        let mut changed = Changed::default();
        for id in &changed_items {
            if let Some(Some(row)) = cache.items.known.get(id) {
                row.announce(&mut changed);
            }
        }
        for id in &changed_allocations {
            if let Some(Some(row)) = cache.allocations.known.get(id) {
                row.announce(&mut changed);
            }
        }
        let outcome = Applied::up_to(events.len(), earliest, changed);
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
            transfers: self
                .scan_served(
                    P::TransferStatus,
                    self.tables.transfers(),
                    TransferView::from_record,
                )
                .await?,
        };
        // The orders of the SQLite dump (UUID order is the order of their text).
        dump.warehouses.sort_by_key(|w| w.id);
        dump.items.sort_by_key(|i| i.id);
        dump.allocations.sort_by_key(|a| a.id);
        dump.transfers.sort_by_key(|t| t.id);
        dump.history.sort_by_key(|h| (h.item_id, h.sequence_number));
        dump.movements
            .sort_by(|a, b| (a.item_id, &a.day).cmp(&(b.item_id, &b.day)));
        Ok(dump)
    }
}
