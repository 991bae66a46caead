//! Current inventory: one row per item (and one per warehouse), folded with the domain's own
//! `evolve`, so the read model cannot disagree with the aggregate about what an event means.

use rusqlite::{params, Connection};

use super::{Table, LOW_STOCK};
use crate::projection::{ItemView, WarehouseView};

/// The tables, with the partial index of items low on stock (its condition is the filter's
/// text, so that SQLite's planner can see the filter implies it).
pub fn schema() -> String {
    format!("{SCHEMA}CREATE INDEX IF NOT EXISTS items_low_stock ON items (warehouse_id, id) WHERE {LOW_STOCK};")
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS warehouses (
    id TEXT PRIMARY KEY, code TEXT NOT NULL, name TEXT NOT NULL, address TEXT,
    active INTEGER NOT NULL, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY, warehouse_id TEXT NOT NULL, sku TEXT NOT NULL, product_id TEXT NOT NULL,
    on_hand INTEGER NOT NULL, allocated INTEGER NOT NULL,
    reorder_threshold INTEGER NOT NULL, reorder_quantity INTEGER NOT NULL,
    active INTEGER NOT NULL, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL,
    incoming INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS items_by_warehouse ON items (warehouse_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_sku ON items (warehouse_id, sku);
";

pub const WAREHOUSE_COLUMNS: &str =
    "id, code, name, address, active, version, created_at, updated_at";
pub const ITEM_COLUMNS: &str = "id, warehouse_id, sku, product_id, on_hand, allocated, \
     reorder_threshold, reorder_quantity, active, version, created_at, updated_at, incoming";

/// Brings a file of an older release up to this schema: its items gain `incoming`, 0, which
/// they had: only this release ships transfers.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_incoming: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('items') WHERE name = 'incoming'",
        [],
        |row| row.get(0),
    )?;
    if !has_incoming {
        conn.execute_batch("ALTER TABLE items ADD COLUMN incoming INTEGER NOT NULL DEFAULT 0")?;
    }
    Ok(())
}

pub fn warehouse_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WarehouseView> {
    Ok(WarehouseView {
        id: super::uuid_at(row, 0)?,
        code: row.get(1)?,
        name: row.get(2)?,
        address: row.get(3)?,
        active: row.get(4)?,
        version: row.get::<_, i64>(5)? as u64,
        created_at: row.get(6)?,
        updated_at: row.get(7)?,
    })
}

pub fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ItemView> {
    Ok(ItemView {
        id: super::uuid_at(row, 0)?,
        warehouse_id: super::uuid_at(row, 1)?,
        sku: row.get(2)?,
        product_id: row.get(3)?,
        on_hand: row.get(4)?,
        allocated: row.get(5)?,
        reorder_threshold: row.get(6)?,
        reorder_quantity: row.get(7)?,
        active: row.get(8)?,
        version: row.get::<_, i64>(9)? as u64,
        created_at: row.get(10)?,
        updated_at: row.get(11)?,
        incoming: row.get(12)?,
    })
}

impl Table for WarehouseView {
    fn select() -> String {
        format!("SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE id = ?1")
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        warehouse_from_row(row)
    }

    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO warehouses ({WAREHOUSE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))?
        .execute(params![
            self.id.to_string(),
            self.code,
            self.name,
            self.address,
            self.active,
            self.version as i64,
            self.created_at,
            self.updated_at
        ])?;
        Ok(())
    }
}

impl Table for ItemView {
    fn select() -> String {
        format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?1")
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        item_from_row(row)
    }

    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO items ({ITEM_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        ))?
        .execute(params![
            self.id.to_string(),
            self.warehouse_id.to_string(),
            self.sku,
            self.product_id,
            self.on_hand,
            self.allocated,
            self.reorder_threshold,
            self.reorder_quantity,
            self.active,
            self.version as i64,
            self.created_at,
            self.updated_at,
            self.incoming
        ])?;
        Ok(())
    }
}
