//! The read side of the embedded projections: every query is a key lookup or an index range,
//! keyset-paginated so that page N costs the same as page 1.

use async_trait::async_trait;
use rusqlite::{params, types::Value, OptionalExtension};
use uuid::Uuid;

use super::{
    allocation_status, current_inventory, inventory_history, stock_movements, SqliteProjections,
};
use crate::projection::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, MovementRow, ProjectionError,
    ReadModel, WarehouseView,
};

/// A `WHERE` clause assembled from optional filters, with its positional parameters.
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    values: Vec<Value>,
}

impl Filter {
    fn add(&mut self, clause: &str, value: impl Into<Value>) {
        self.values.push(value.into());
        self.clauses
            .push(clause.replace('?', &format!("?{}", self.values.len())));
    }

    fn when(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }
}

fn limit(n: usize) -> i64 {
    n.min(10_000) as i64
}

#[async_trait]
impl ReadModel for SqliteProjections {
    async fn warehouse(&self, id: Uuid) -> Result<Option<WarehouseView>, ProjectionError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM warehouses WHERE id = ?1",
                current_inventory::WAREHOUSE_COLUMNS
            ))?
            .query_row([id.to_string()], current_inventory::warehouse_from_row)
            .optional()
        })
        .await
    }

    async fn warehouses(
        &self,
        include_inactive: bool,
        after: Option<Uuid>,
        n: usize,
    ) -> Result<Vec<WarehouseView>, ProjectionError> {
        let mut filter = Filter::default();
        if !include_inactive {
            filter.when("active = 1");
        }
        if let Some(after) = after {
            filter.add("id > ?", after.to_string());
        }
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM warehouses {} ORDER BY id LIMIT {}",
                current_inventory::WAREHOUSE_COLUMNS,
                filter.sql(),
                limit(n)
            ))?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(filter.values),
                current_inventory::warehouse_from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn item(&self, id: Uuid) -> Result<Option<ItemView>, ProjectionError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM items WHERE id = ?1",
                current_inventory::ITEM_COLUMNS
            ))?
            .query_row([id.to_string()], current_inventory::item_from_row)
            .optional()
        })
        .await
    }

    async fn item_by_sku(
        &self,
        warehouse_id: Uuid,
        sku: &str,
    ) -> Result<Option<ItemView>, ProjectionError> {
        let sku = sku.trim().to_owned();
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM items WHERE warehouse_id = ?1 AND sku = ?2",
                current_inventory::ITEM_COLUMNS
            ))?
            .query_row(
                params![warehouse_id.to_string(), sku],
                current_inventory::item_from_row,
            )
            .optional()
        })
        .await
    }

    async fn items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
        after: Option<Uuid>,
        n: usize,
    ) -> Result<Vec<ItemView>, ProjectionError> {
        let mut filter = Filter::default();
        if let Some(warehouse_id) = warehouse_id {
            filter.add("warehouse_id = ?", warehouse_id.to_string());
        }
        if low_stock_only {
            filter.when("on_hand - allocated <= reorder_threshold");
        }
        if let Some(after) = after {
            filter.add("id > ?", after.to_string());
        }
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM items {} ORDER BY id LIMIT {}",
                current_inventory::ITEM_COLUMNS,
                filter.sql(),
                limit(n)
            ))?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(filter.values),
                current_inventory::item_from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn allocation(&self, id: Uuid) -> Result<Option<AllocationView>, ProjectionError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {} FROM allocations WHERE id = ?1",
                allocation_status::COLUMNS
            ))?
            .query_row([id.to_string()], allocation_status::from_row)
            .optional()
        })
        .await
    }

    async fn allocations(
        &self,
        wanted: AllocationFilter,
        after: Option<Uuid>,
        n: usize,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        let mut filter = Filter::default();
        if let Some(order_id) = wanted.order_id {
            filter.add("order_id = ?", order_id);
        }
        if let Some(item_id) = wanted.item_id {
            filter.add("item_id = ?", item_id.to_string());
        }
        if let Some(status) = wanted.status {
            filter.add("status = ?", status.as_str().to_owned());
        }
        if let Some(after) = after {
            filter.add("id > ?", after.to_string());
        }
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM allocations {} ORDER BY id LIMIT {}",
                allocation_status::COLUMNS,
                filter.sql(),
                limit(n)
            ))?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(filter.values),
                allocation_status::from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        after: Option<u64>,
        n: usize,
    ) -> Result<Vec<HistoryEntry>, ProjectionError> {
        let mut filter = Filter::default();
        filter.add("item_id = ?", item_id.to_string());
        if let Some(from) = from {
            filter.add("occurred_at >= ?", from);
        }
        if let Some(to) = to {
            filter.add("occurred_at < ?", to);
        }
        if let Some(after) = after {
            filter.add("sequence_number > ?", after.min(i64::MAX as u64) as i64);
        }
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM history {} ORDER BY sequence_number LIMIT {}",
                inventory_history::COLUMNS,
                filter.sql(),
                limit(n)
            ))?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(filter.values),
                inventory_history::from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn movements(
        &self,
        warehouse_id: Option<Uuid>,
        item_id: Option<Uuid>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<MovementRow>, ProjectionError> {
        let mut filter = Filter::default();
        if let Some(warehouse_id) = warehouse_id {
            filter.add("warehouse_id = ?", warehouse_id.to_string());
        }
        if let Some(item_id) = item_id {
            filter.add("item_id = ?", item_id.to_string());
        }
        if let Some(from) = from {
            filter.add("day >= ?", from);
        }
        if let Some(to) = to {
            filter.add("day <= ?", to);
        }
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {} FROM movements {} ORDER BY day, sku, item_id LIMIT 10000",
                stock_movements::COLUMNS,
                filter.sql(),
            ))?;
            let rows = statement.query_map(
                rusqlite::params_from_iter(filter.values),
                stock_movements::from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), ProjectionError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}
