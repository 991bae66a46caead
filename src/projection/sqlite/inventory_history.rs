//! Inventory history: one entry per change of an item's on-hand stock (its creation with the
//! initial quantity, then every `StockLevelChanged`), with who did it and why.

use rusqlite::{params, Connection};

use super::sql;
use crate::projection::fold::history;
use crate::projection::{Changed, HistoryEntry, ProjectionError};
use crate::store::EventEnvelope;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS history (
    item_id TEXT NOT NULL, sequence_number INTEGER NOT NULL, reason TEXT NOT NULL,
    delta INTEGER NOT NULL, quantity_after INTEGER NOT NULL, reference TEXT,
    actor TEXT NOT NULL, correlation_id TEXT NOT NULL, occurred_at INTEGER NOT NULL,
    PRIMARY KEY (item_id, sequence_number)
);
CREATE INDEX IF NOT EXISTS history_by_time ON history (item_id, occurred_at);
";

pub const COLUMNS: &str = "item_id, sequence_number, reason, delta, quantity_after, reference, \
     actor, correlation_id, occurred_at";

pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<HistoryEntry> {
    Ok(HistoryEntry {
        item_id: super::uuid_at(row, 0)?,
        sequence_number: row.get::<_, i64>(1)? as u64,
        reason: row.get(2)?,
        delta: row.get(3)?,
        quantity_after: row.get(4)?,
        reference: row.get(5)?,
        actor: row.get(6)?,
        correlation_id: row.get(7)?,
        occurred_at: row.get(8)?,
    })
}

pub fn apply(
    conn: &Connection,
    run: &[&EventEnvelope],
    _: &mut Changed,
) -> Result<(), ProjectionError> {
    let mut insert = conn
        .prepare_cached(&format!(
            "INSERT OR REPLACE INTO history ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))
        .map_err(sql)?;
    for entry in history(run.iter().copied())? {
        insert
            .execute(params![
                entry.item_id.to_string(),
                entry.sequence_number as i64,
                entry.reason,
                entry.delta,
                entry.quantity_after,
                entry.reference,
                entry.actor,
                entry.correlation_id,
                entry.occurred_at
            ])
            .map_err(sql)?;
    }
    Ok(())
}
