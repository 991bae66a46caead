//! Current inventory: one row per item (and one per warehouse), folded with the domain's own
//! `evolve`, so the read model cannot disagree with the aggregate about what an event means.

use rusqlite::{params, Connection, OptionalExtension};

use super::{decode, sql, Changes};
use crate::domain::item::ItemEvent;
use crate::domain::warehouse::WarehouseEvent;
use crate::projection::{ItemView, ProjectionError, WarehouseView};
use crate::store::EventEnvelope;

pub const SCHEMA: &str = "
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
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_warehouse ON items (warehouse_id, id);
CREATE UNIQUE INDEX IF NOT EXISTS items_by_sku ON items (warehouse_id, sku);
CREATE INDEX IF NOT EXISTS items_low_stock ON items (warehouse_id, id)
    WHERE on_hand - allocated <= reorder_threshold;
";

pub const WAREHOUSE_COLUMNS: &str =
    "id, code, name, address, active, version, created_at, updated_at";
pub const ITEM_COLUMNS: &str = "id, warehouse_id, sku, product_id, on_hand, allocated, \
     reorder_threshold, reorder_quantity, active, version, created_at, updated_at";

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
    })
}

pub fn apply_warehouse(
    conn: &Connection,
    run: &[&EventEnvelope],
    _: &mut Changes,
) -> Result<(), ProjectionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let id = first.aggregate_id.to_string();
    let mut row = conn
        .prepare_cached(&format!(
            "SELECT {WAREHOUSE_COLUMNS} FROM warehouses WHERE id = ?1"
        ))
        .and_then(|mut s| s.query_row([&id], warehouse_from_row).optional())
        .map_err(sql)?;
    for envelope in run {
        let event: WarehouseEvent = decode(envelope)?;
        row = Some(WarehouseView::next(row.as_ref(), envelope, &event));
    }
    let Some(next) = row else {
        return Ok(());
    };
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO warehouses ({WAREHOUSE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            id,
            next.code,
            next.name,
            next.address,
            next.active,
            next.version as i64,
            next.created_at,
            next.updated_at
        ])
    })
    .map_err(sql)?;
    Ok(())
}

pub fn apply_item(
    conn: &Connection,
    run: &[&EventEnvelope],
    changes: &mut Changes,
) -> Result<(), ProjectionError> {
    let Some(first) = run.first() else {
        return Ok(());
    };
    let id = first.aggregate_id.to_string();
    let mut row = conn
        .prepare_cached(&format!("SELECT {ITEM_COLUMNS} FROM items WHERE id = ?1"))
        .and_then(|mut s| s.query_row([&id], item_from_row).optional())
        .map_err(sql)?;
    for envelope in run {
        let event: ItemEvent = decode(envelope)?;
        row = Some(ItemView::next(row.as_ref(), envelope, &event));
    }
    let Some(next) = row else {
        return Ok(());
    };
    conn.prepare_cached(&format!(
        "INSERT OR REPLACE INTO items ({ITEM_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            id,
            next.warehouse_id.to_string(),
            next.sku,
            next.product_id,
            next.on_hand,
            next.allocated,
            next.reorder_threshold,
            next.reorder_quantity,
            next.active,
            next.version as i64,
            next.created_at,
            next.updated_at
        ])
    })
    .map_err(sql)?;
    changes.items.insert(first.aggregate_id, next);
    Ok(())
}
