//! Transfer status: one row per transfer, folded with the domain's `evolve`, indexed by the
//! warehouse it leaves, the warehouse it enters and its items, so a warehouse's transfers
//! (either way) are two index ranges.

use rusqlite::{params, Connection};

use super::Table;
use crate::domain::transfer::TransferStatus;
use crate::projection::TransferView;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY, from_item_id TEXT NOT NULL, to_item_id TEXT NOT NULL,
    from_warehouse_id TEXT NOT NULL, to_warehouse_id TEXT NOT NULL, sku TEXT NOT NULL,
    quantity INTEGER NOT NULL, quantity_received INTEGER, status TEXT NOT NULL,
    reference TEXT, cancel_reason TEXT, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS transfers_from ON transfers (from_warehouse_id, id);
CREATE INDEX IF NOT EXISTS transfers_to ON transfers (to_warehouse_id, id);
CREATE INDEX IF NOT EXISTS transfers_from_item ON transfers (from_item_id, id);
CREATE INDEX IF NOT EXISTS transfers_to_item ON transfers (to_item_id, id);
";

pub const COLUMNS: &str = "id, from_item_id, to_item_id, from_warehouse_id, to_warehouse_id, \
     sku, quantity, quantity_received, status, reference, cancel_reason, version, created_at, \
     updated_at";

pub fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TransferView> {
    let status: String = row.get(8)?;
    Ok(TransferView {
        id: super::uuid_at(row, 0)?,
        from_item_id: super::uuid_at(row, 1)?,
        to_item_id: super::uuid_at(row, 2)?,
        from_warehouse_id: super::uuid_at(row, 3)?,
        to_warehouse_id: super::uuid_at(row, 4)?,
        sku: row.get(5)?,
        quantity: row.get(6)?,
        quantity_received: row.get(7)?,
        status: TransferStatus::parse(&status).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                8,
                rusqlite::types::Type::Text,
                format!("unknown status {status}").into(),
            )
        })?,
        reference: row.get(9)?,
        cancel_reason: row.get(10)?,
        version: row.get::<_, i64>(11)? as u64,
        created_at: row.get(12)?,
        updated_at: row.get(13)?,
    })
}

impl Table for TransferView {
    fn select() -> String {
        format!("SELECT {COLUMNS} FROM transfers WHERE id = ?1")
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        from_row(row)
    }

    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO transfers ({COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
        ))?
        .execute(params![
            self.id.to_string(),
            self.from_item_id.to_string(),
            self.to_item_id.to_string(),
            self.from_warehouse_id.to_string(),
            self.to_warehouse_id.to_string(),
            self.sku,
            self.quantity,
            self.quantity_received,
            self.status.as_str(),
            self.reference,
            self.cancel_reason,
            self.version as i64,
            self.created_at,
            self.updated_at
        ])?;
        Ok(())
    }
}
