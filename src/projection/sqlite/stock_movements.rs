//! Stock movement report: per item per UTC day, units received, removed (sold, damaged, …),
//! allocated, released from cancelled allocations, fulfilled, and the net on-hand change.
//! Rows carry the warehouse so a warehouse's report is a sum over its items.

use rusqlite::{params, Connection, OptionalExtension};

use super::sql;
use crate::projection::movements::{created, movements_by_day, never_created};
use crate::projection::{Changed, MovementRow, ProjectionError};
use crate::store::EventEnvelope;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS movement_items (
    item_id TEXT PRIMARY KEY, warehouse_id TEXT NOT NULL, sku TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS movements (
    item_id TEXT NOT NULL, warehouse_id TEXT NOT NULL, sku TEXT NOT NULL, day TEXT NOT NULL,
    received INTEGER NOT NULL, removed INTEGER NOT NULL, allocated INTEGER NOT NULL,
    released INTEGER NOT NULL, fulfilled INTEGER NOT NULL, net INTEGER NOT NULL,
    PRIMARY KEY (item_id, day)
);
CREATE INDEX IF NOT EXISTS movements_by_warehouse ON movements (warehouse_id, day);
";

pub const COLUMNS: &str =
    "item_id, warehouse_id, sku, day, received, removed, allocated, released, fulfilled, net";

pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<MovementRow> {
    Ok(MovementRow {
        item_id: super::uuid_at(row, 0)?,
        warehouse_id: super::uuid_at(row, 1)?,
        sku: row.get(2)?,
        day: row.get(3)?,
        received: row.get(4)?,
        removed: row.get(5)?,
        allocated: row.get(6)?,
        released: row.get(7)?,
        fulfilled: row.get(8)?,
        net: row.get(9)?,
    })
}

/// Counts a run of an item's events: each day's movements summed (`movements::movements_by_day`, the
/// arithmetic every store shares) and added to that day's row with one upsert per day.
pub fn apply(
    conn: &Connection,
    run: &[&EventEnvelope],
    _: &mut Changed,
) -> Result<(), ProjectionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let item_id = first.aggregate_id.to_string();
    let created = created(run.iter().copied());
    if let Some((warehouse_id, sku)) = &created {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO movement_items (item_id, warehouse_id, sku) VALUES (?1, ?2, ?3)",
        )
        .and_then(|mut s| s.execute(params![item_id, warehouse_id, sku]))
        .map_err(sql)?;
    }
    let days = movements_by_day(run.iter().copied())?;
    if days.is_empty() {
        return Ok(());
    }
    let owner = match created {
        Some(owner) => Some(owner),
        None => conn
            .prepare_cached("SELECT warehouse_id, sku FROM movement_items WHERE item_id = ?1")
            .and_then(|mut s| {
                s.query_row([&item_id], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(sql)?,
    };
    let Some((warehouse_id, sku)) = owner else {
        return Err(never_created(first.event_id));
    };
    let mut upsert = conn
        .prepare_cached(&format!(
            "INSERT INTO movements ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (item_id, day) DO UPDATE SET
                received = received + excluded.received, removed = removed + excluded.removed,
                allocated = allocated + excluded.allocated, released = released + excluded.released,
                fulfilled = fulfilled + excluded.fulfilled, net = net + excluded.net"
        ))
        .map_err(sql)?;
    for (day, m) in days {
        upsert
            .execute(params![
                item_id,
                warehouse_id,
                sku,
                day,
                m.received,
                m.removed,
                m.allocated,
                m.released,
                m.fulfilled,
                m.net
            ])
            .map_err(sql)?;
    }
    Ok(())
}
