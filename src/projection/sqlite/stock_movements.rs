//! Stock movement report: per item per UTC day, units received, removed (sold, damaged, …),
//! allocated, released from cancelled allocations, fulfilled, and the net on-hand change.
//! Rows carry the warehouse so a warehouse's report is a sum over its items.

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, sql, Changes};
use crate::domain::item::{ItemEvent, StockChangeReason};
use crate::projection::{day_of, MovementRow, ProjectionError};
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

pub fn apply(
    conn: &Connection,
    envelope: &EventEnvelope,
    _: &mut Changes,
) -> Result<(), ProjectionError> {
    let item_id = envelope.aggregate_id.to_string();
    // (received, removed, allocated, released, fulfilled, net)
    let movement = match decode(envelope)? {
        ItemEvent::InventoryItemCreated {
            warehouse_id,
            sku,
            initial_quantity,
            ..
        } => {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO movement_items (item_id, warehouse_id, sku) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| s.execute(params![item_id, warehouse_id.to_string(), sku]))
            .map_err(sql)?;
            (initial_quantity, 0, 0, 0, 0, initial_quantity)
        }
        ItemEvent::StockLevelChanged { delta, reason, .. } => match reason {
            StockChangeReason::AllocationFulfilled => (0, 0, 0, 0, -delta, delta),
            _ if delta > 0 => (delta, 0, 0, 0, 0, delta),
            _ => (0, -delta, 0, 0, 0, delta),
        },
        ItemEvent::StockAllocated { quantity, .. } => (0, 0, quantity, 0, 0, 0),
        ItemEvent::StockDeallocated { quantity, .. } => (0, 0, 0, quantity, 0, 0),
        _ => return Ok(()),
    };
    let owner: Option<(String, String)> = conn
        .prepare_cached("SELECT warehouse_id, sku FROM movement_items WHERE item_id = ?1")
        .and_then(|mut s| {
            s.query_row([&item_id], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql)?;
    let Some((warehouse_id, sku)) = owner else {
        return Err(ProjectionError::Poison {
            event_id: envelope.event_id,
            reason: "stock movement for an item whose creation was never applied".into(),
        });
    };
    let (received, removed, allocated, released, fulfilled, net) = movement;
    conn.prepare_cached(&format!(
        "INSERT INTO movements ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (item_id, day) DO UPDATE SET
            received = received + excluded.received, removed = removed + excluded.removed,
            allocated = allocated + excluded.allocated, released = released + excluded.released,
            fulfilled = fulfilled + excluded.fulfilled, net = net + excluded.net"
    ))
    .and_then(|mut s| {
        s.execute(params![
            item_id,
            warehouse_id,
            sku,
            day_of(envelope.timestamp),
            received,
            removed,
            allocated,
            released,
            fulfilled,
            net
        ])
    })
    .map_err(sql)?;
    Ok(())
}
