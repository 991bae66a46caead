//! Embedded projection store on its own SQLite file (`projections.db`), apart from the event
//! store so a rebuild can write fresh tables without touching the events. Each projector keeps
//! a checkpoint per aggregate in the same transaction as its rows: a duplicate is skipped, a
//! gap stops the batch so the runner can fetch the missing events first.

mod allocation_status;
mod current_inventory;
mod generations;
mod inventory_history;
mod queries;
pub use generations::SqliteGenerations;
mod stock_movements;
mod transfer_status;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use super::batch::{earliest_gap, plan, streams};
use super::fold::{fold, Row};
use super::layout::ProjectionName;
use super::{
    AllocationView, Applied, Changed, ItemView, ProjectionDump, ProjectionError, ProjectionStore,
    TransferView, WarehouseView,
};
use crate::sqlite_pool::{self, Durability, ReadPool};
use crate::store::EventEnvelope;

/// Applies a run of one aggregate's events, each the next after the one before it, inside the
/// batch's transaction: a row is read once and written once for the whole run.
type ApplyFn = fn(&Connection, &[&EventEnvelope], &mut Changed) -> Result<(), ProjectionError>;

/// A single-row read model as its table holds it.
pub(crate) trait Table: Row {
    /// The row of an id (`?1`).
    fn select() -> String;
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
    /// Replaces the row.
    fn write(&self, conn: &Connection) -> rusqlite::Result<()>;
}

/// The rule of `ItemView::low_stock` in SQL, for the items' partial index and the filter that
/// uses it.
pub(crate) const LOW_STOCK: &str = "on_hand - allocated <= reorder_threshold";

/// Reads the aggregate's row, folds the run into it (`fold::fold`) and writes it back.
fn apply_row<V: Table>(
    conn: &Connection,
    run: &[&EventEnvelope],
    changed: &mut Changed,
) -> Result<(), ProjectionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let row = conn
        .prepare_cached(&V::select())
        .and_then(|mut s| {
            s.query_row([first.aggregate_id.to_string()], V::from_row)
                .optional()
        })
        .map_err(sql)?;
    let Some(next) = fold(row, run.iter().copied())? else {
        return Ok(());
    };
    next.write(conn).map_err(sql)?;
    next.announce(changed);
    Ok(())
}

/// How each projection folds a run of events into its tables.
fn apply_fn(projection: ProjectionName) -> ApplyFn {
    match projection {
        ProjectionName::Warehouses => apply_row::<WarehouseView>,
        ProjectionName::CurrentInventory => apply_row::<ItemView>,
        ProjectionName::AllocationStatus => apply_row::<AllocationView>,
        ProjectionName::InventoryHistory => inventory_history::apply,
        ProjectionName::StockMovements => stock_movements::apply,
        ProjectionName::TransferStatus => apply_row::<TransferView>,
    }
}

/// The tables each projection owns (emptied when a rebuilt generation replaces it).
fn tables_of(projection: ProjectionName) -> &'static [&'static str] {
    match projection {
        ProjectionName::Warehouses => &["warehouses"],
        ProjectionName::CurrentInventory => &["items"],
        ProjectionName::AllocationStatus => &["allocations"],
        ProjectionName::InventoryHistory => &["history"],
        ProjectionName::StockMovements => &["movements", "movement_items"],
        ProjectionName::TransferStatus => &["transfers"],
    }
}

const CHECKPOINTS: &str = "
CREATE TABLE IF NOT EXISTS checkpoints (
    projector TEXT NOT NULL, aggregate_id TEXT NOT NULL, last_sequence INTEGER NOT NULL,
    PRIMARY KEY (projector, aggregate_id)
);";

pub(crate) fn sql(error: rusqlite::Error) -> ProjectionError {
    ProjectionError::request("using the SQLite projection file", error)
}

fn poisoned() -> ProjectionError {
    ProjectionError::Unavailable("the projection writer was poisoned by a panic".into())
}

fn joined(error: tokio::task::JoinError) -> ProjectionError {
    ProjectionError::request("running a projection write", error)
}

pub(crate) fn uuid_at(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    Uuid::parse_str(&text).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[derive(Clone)]
pub struct SqliteProjections {
    writer: Arc<Mutex<Connection>>,
    reads: ReadPool,
    /// The projections this store applies and dumps (the others' tables stay untouched).
    serves: Arc<[ProjectionName]>,
}

impl SqliteProjections {
    /// Opens (creating if needed) a projection database file.
    pub fn open(path: &Path) -> Result<Self, ProjectionError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ProjectionError::request("creating the projection directory", e))?;
        }
        // FULL: the in-process bus counts "projected" as delivered and the outbox row then goes
        // for good, so a projection write must be on disk before the apply returns.
        let conn = sqlite_pool::open(path, Durability::Full).map_err(sql)?;
        conn.execute_batch(CHECKPOINTS).map_err(sql)?;
        for schema in [
            &current_inventory::schema(),
            allocation_status::SCHEMA,
            inventory_history::SCHEMA,
            stock_movements::SCHEMA,
            transfer_status::SCHEMA,
        ] {
            conn.execute_batch(schema).map_err(sql)?;
        }
        allocation_status::migrate(&conn).map_err(sql)?;
        current_inventory::migrate(&conn).map_err(sql)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(conn)),
            reads: ReadPool::new(PathBuf::from(path)),
            serves: ProjectionName::ALL.into(),
        })
    }

    /// The same file, applying and dumping only `projections` (sharing this store's writer).
    pub fn serving(&self, projections: &[ProjectionName]) -> Self {
        Self {
            serves: projections.into(),
            ..self.clone()
        }
    }

    /// Deletes the rows and checkpoints of `projection`, which another generation now serves;
    /// true when no projection has rows left in this file.
    pub async fn clear(&self, projection: ProjectionName) -> Result<bool, ProjectionError> {
        let writer = self.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            let tx = conn.transaction().map_err(sql)?;
            for table in tables_of(projection) {
                tx.execute(&format!("DELETE FROM {table}"), [])
                    .map_err(sql)?;
            }
            tx.execute(
                "DELETE FROM checkpoints WHERE projector = ?1",
                [projection.as_str()],
            )
            .map_err(sql)?;
            // Every row a projector writes moves its checkpoint in the same transaction.
            let left: i64 = tx
                .query_row("SELECT COUNT(*) FROM checkpoints", [], |r| r.get(0))
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
            Ok(left == 0)
        })
        .await
        .map_err(joined)?
    }

    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, ProjectionError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.reads
            .read(f)
            .await
            .map_err(|e| ProjectionError::request("reading the SQLite projection file", e))
    }
}

fn checkpoint(
    conn: &Connection,
    projector: &str,
    aggregate_id: &str,
) -> Result<u64, ProjectionError> {
    let last: Option<i64> = conn
        .prepare_cached(
            "SELECT last_sequence FROM checkpoints WHERE projector = ?1 AND aggregate_id = ?2",
        )
        .and_then(|mut s| {
            s.query_row([projector, aggregate_id], |r| r.get(0))
                .optional()
        })
        .map_err(sql)?;
    Ok(last.unwrap_or(0) as u64)
}

/// Applies a batch in one transaction: first every projector's checkpoint on every aggregate
/// of the batch is read, so that the batch stops at its earliest gap; then each projector
/// folds each aggregate's run of events (those before the gap) into its rows, and moves its
/// checkpoint once per aggregate.
fn apply_batch(
    conn: &mut Connection,
    serves: &[ProjectionName],
    events: &[EventEnvelope],
) -> Result<Applied, ProjectionError> {
    // IMMEDIATE: take the write lock before reading checkpoints, so two processes sharing
    // this file cannot both read the same checkpoint and apply the same event.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let mut work = Vec::new();
    let mut gaps = Vec::new();
    for &projector in serves {
        for (id, stream) in streams(events, projector) {
            let last = checkpoint(&tx, projector.as_str(), &id.to_string())?;
            let plan = plan(last, &stream);
            gaps.push((id, plan.gap));
            work.push((projector, id, plan.next));
        }
    }
    let earliest = earliest_gap(gaps);
    let cutoff = earliest.map_or(events.len(), |(index, _, _)| index);
    let mut changed = Changed::default();
    for (projector, id, next) in work {
        let run: Vec<&EventEnvelope> = next
            .into_iter()
            .filter(|(index, _)| *index < cutoff)
            .map(|(_, envelope)| envelope)
            .collect();
        let Some(last) = run.last() else {
            continue;
        };
        apply_fn(projector)(&tx, &run, &mut changed)?;
        tx.prepare_cached(
            "INSERT OR REPLACE INTO checkpoints (projector, aggregate_id, last_sequence)
             VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| {
            s.execute(params![
                projector.as_str(),
                id.to_string(),
                last.sequence_number as i64
            ])
        })
        .map_err(sql)?;
    }
    tx.commit().map_err(sql)?;
    Ok(Applied::up_to(events.len(), earliest, changed))
}

#[async_trait]
impl ProjectionStore for SqliteProjections {
    async fn apply(&self, events: Vec<EventEnvelope>) -> Result<Applied, ProjectionError> {
        let writer = self.writer.clone();
        let serves = self.serves.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.lock().map_err(|_| poisoned())?;
            apply_batch(&mut conn, &serves, &events)
        })
        .await
        .map_err(joined)?
    }

    async fn dump(&self) -> Result<ProjectionDump, ProjectionError> {
        let serves = self.serves.clone();
        self.read(move |conn| {
            // Reads the table of `projection` if this file serves it (an empty list otherwise).
            fn all<T>(
                (conn, serves): (&Connection, &[ProjectionName]),
                projection: ProjectionName,
                sql: &str,
                map: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
            ) -> rusqlite::Result<Vec<T>> {
                if !serves.contains(&projection) {
                    return Ok(Vec::new());
                }
                let mut statement = conn.prepare(sql)?;
                let rows = statement.query_map([], map)?;
                rows.collect()
            }
            Ok(ProjectionDump {
                warehouses: all(
                    (conn, &serves),
                    ProjectionName::Warehouses,
                    &format!(
                        "SELECT {} FROM warehouses ORDER BY id",
                        current_inventory::WAREHOUSE_COLUMNS
                    ),
                    current_inventory::warehouse_from_row,
                )?,
                items: all(
                    (conn, &serves),
                    ProjectionName::CurrentInventory,
                    &format!(
                        "SELECT {} FROM items ORDER BY id",
                        current_inventory::ITEM_COLUMNS
                    ),
                    current_inventory::item_from_row,
                )?,
                allocations: all(
                    (conn, &serves),
                    ProjectionName::AllocationStatus,
                    &format!(
                        "SELECT {} FROM allocations ORDER BY id",
                        allocation_status::COLUMNS
                    ),
                    allocation_status::from_row,
                )?,
                history: all(
                    (conn, &serves),
                    ProjectionName::InventoryHistory,
                    &format!(
                        "SELECT {} FROM history ORDER BY item_id, sequence_number",
                        inventory_history::COLUMNS
                    ),
                    inventory_history::from_row,
                )?,
                movements: all(
                    (conn, &serves),
                    ProjectionName::StockMovements,
                    &format!(
                        "SELECT {} FROM movements ORDER BY item_id, day",
                        stock_movements::COLUMNS
                    ),
                    stock_movements::from_row,
                )?,
                transfers: all(
                    (conn, &serves),
                    ProjectionName::TransferStatus,
                    &format!(
                        "SELECT {} FROM transfers ORDER BY id",
                        transfer_status::COLUMNS
                    ),
                    transfer_status::from_row,
                )?,
            })
        })
        .await
    }
}
