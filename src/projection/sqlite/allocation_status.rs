//! Allocation status: one row per allocation, indexed by order, item, status and warehouse, folded with
//! the domain's `evolve`. A partial index holds only the created allocations with a deadline,
//! by deadline, so the expiry sweeper's query reads just the due rows.

use rusqlite::{params, Connection};

use super::Table;
use crate::domain::allocation::AllocationStatus;
use crate::projection::AllocationView;

pub const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS allocations (
    id TEXT PRIMARY KEY, order_id TEXT NOT NULL, item_id TEXT NOT NULL,
    warehouse_id TEXT NOT NULL, quantity INTEGER NOT NULL, status TEXT NOT NULL,
    cancel_reason TEXT, version INTEGER NOT NULL,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS allocations_by_order ON allocations (order_id, id);
CREATE INDEX IF NOT EXISTS allocations_by_item ON allocations (item_id, id);
CREATE INDEX IF NOT EXISTS allocations_by_status ON allocations (status, id);
CREATE INDEX IF NOT EXISTS allocations_by_warehouse ON allocations (warehouse_id, id);
";

/// The rule of `AllocationView::awaits_expiry` in SQL, for the partial index of open deadlines
/// and the sweeper's query that uses it (the same text, so the planner sees one implies the
/// other).
pub const AWAITS_EXPIRY: &str = "status = 'CREATED' AND expires_at IS NOT NULL";

/// Brings a file of an older release up to this schema, then indexes open deadlines. Its
/// rows get no deadline, which they had none of: only this release sets one.
pub fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let has_deadlines: bool = conn.query_row(
        "SELECT COUNT(*) > 0 FROM pragma_table_info('allocations') WHERE name = 'expires_at'",
        [],
        |row| row.get(0),
    )?;
    if !has_deadlines {
        conn.execute_batch("ALTER TABLE allocations ADD COLUMN expires_at INTEGER")?;
    }
    conn.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS allocations_awaiting_expiry ON allocations (expires_at, id) \
         WHERE {AWAITS_EXPIRY}"
    ))
}

pub const COLUMNS: &str = "id, order_id, item_id, warehouse_id, quantity, status, cancel_reason, \
     version, created_at, updated_at, expires_at";

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
        expires_at: row.get(10)?,
    })
}

impl Table for AllocationView {
    fn select() -> String {
        format!("SELECT {COLUMNS} FROM allocations WHERE id = ?1")
    }

    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        from_row(row)
    }

    fn write(&self, conn: &Connection) -> rusqlite::Result<()> {
        conn.prepare_cached(&format!(
            "INSERT OR REPLACE INTO allocations ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
        ))?
        .execute(params![
            self.id.to_string(),
            self.order_id,
            self.item_id.to_string(),
            self.warehouse_id.to_string(),
            self.quantity,
            self.status.as_str(),
            self.cancel_reason,
            self.version as i64,
            self.created_at,
            self.updated_at,
            self.expires_at
        ])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_an_older_release_gains_the_deadline_column_and_index() {
        let conn = Connection::open_in_memory().expect("open");
        let older = SCHEMA.replace(", expires_at INTEGER", "");
        conn.execute_batch(&older).expect("older schema");
        conn.execute_batch(
            "INSERT INTO allocations VALUES ('00000000-0000-0000-0000-000000000001', 'o',
             '00000000-0000-0000-0000-000000000002', '00000000-0000-0000-0000-000000000003',
             1, 'CREATED', NULL, 1, 10, 10)",
        )
        .expect("older row");
        migrate(&conn).expect("migrate");
        migrate(&conn).expect("migrate again changes nothing");
        let row = conn
            .query_row(
                &AllocationView::select(),
                ["00000000-0000-0000-0000-000000000001"],
                from_row,
            )
            .expect("read");
        assert_eq!(row.expires_at, None);
        let indexed: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'allocations_awaiting_expiry'",
                [],
                |r| r.get(0),
            )
            .expect("index");
        assert_eq!(indexed, 1);
    }
}
