//! Allocation status: one row per allocation, indexed by order, item and status, folded with
//! the domain's `evolve`.

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, sql, Changes};
use crate::domain::allocation::{AllocationEvent, AllocationStatus};
use crate::projection::{AllocationView, ProjectionError};
use crate::store::EventEnvelope;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS allocations (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL, item_id TEXT NOT NULL,
    warehouse_id TEXT NOT NULL, quantity INTEGER NOT NULL, status TEXT NOT NULL,
    cancel_reason TEXT, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS allocations_by_order ON allocations (order_id, id);
CREATE INDEX IF NOT EXISTS allocations_by_item ON allocations (item_id, id);
CREATE INDEX IF NOT EXISTS allocations_by_status ON allocations (status, id);
";

pub const COLUMNS: &str = "id, order_id, item_id, warehouse_id, quantity, status, cancel_reason, \
     version, created_at, updated_at";

pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AllocationView> {
    let status: String = row.get(5)?;
    Ok(AllocationView {
        id: super::uuid_at(row, 0)?,
        order_id: row.get(1)?,
        item_id: super::uuid_at(row, 2)?,
        warehouse_id: super::uuid_at(row, 3)?,
        quantity: row.get(4)?,
        status: AllocationStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown status {status}").into(),
            )
        })?,
        cancel_reason: row.get(6)?,
        version: row.get::<_, i64>(7)? as u64,
        created_at: row.get(8)?,
        updated_at: row.get(9)?,
    })
}

pub fn apply(
    conn: &Connection,
    run: &[&EventEnvelope],
    changes: &mut Changes,
) -> Result<(), ProjectionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let id = first.aggregate_id.to_string();
    let mut row = conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM allocations WHERE id = ?1"))
        .and_then(|mut s| s.query_row([&id], from_row).optional())
        .map_err(sql)?;
    for envelope in run {
        let event: AllocationEvent = decode(envelope)?;
        row = Some(AllocationView::next(row.as_ref(), envelope, &event));
    }
    let Some(next) = row else {
        return Ok(());
    };
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO allocations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            id,
            next.order_id,
            next.item_id.to_string(),
            next.warehouse_id.to_string(),
            next.quantity,
            next.status.as_str(),
            next.cancel_reason,
            next.version as i64,
            next.created_at,
            next.updated_at
        ])
    })
    .map_err(sql)?;
    changes.allocations.insert(first.aggregate_id, next);
    Ok(())
}
