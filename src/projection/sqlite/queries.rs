//! The read side of the embedded projections: every query is a key lookup or an index range,
//! keyset-paginated so that page N costs the same as page 1.

use async_trait::async_trait;
use rusqlite::{params, types::Value, OptionalExtension};
use uuid::Uuid;

use super::{
    allocation_status, current_inventory, inventory_history, stock_movements, transfer_status,
    SqliteProjections,
};
use crate::projection::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, Keys, MovementRow, ProjectionError,
    ReadModel, TransferFilter, TransferView, WarehouseView,
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

impl Filter {
    /// Bounds `column` by the keyset and returns the `ORDER BY … LIMIT …` that takes the
    /// rows from the requested end (descending for a backward page; the caller reverses it).
    fn keyset<K>(&mut self, column: &str, keys: &Keys<K>, value: impl Fn(&K) -> Value) -> String {
        if let Some(after) = &keys.after {
            self.add(&format!("{column} > ?"), value(after));
        }
        if let Some(before) = &keys.before {
            self.add(&format!("{column} < ?"), value(before));
        }
        let order = if keys.backward { "DESC" } else { "ASC" };
        format!("ORDER BY {column} {order} LIMIT {}", limit(keys.limit))
    }
}

fn uuid_value(id: &Uuid) -> Value {
    Value::Text(id.to_string())
}

fn sequence_value(sequence: &u64) -> Value {
    Value::Integer((*sequence).min(i64::MAX as u64) as i64)
}

/// Rows of a keyset page in ascending key order, whichever end they were taken from.
fn in_order<T>(mut rows: Vec<T>, backward: bool) -> Vec<T> {
    if backward {
        rows.reverse();
    }
    rows
}

fn warehouse_filter(include_inactive: bool) -> Filter {
    let mut filter = Filter::default();
    if !include_inactive {
        filter.when("active = 1");
    }
    filter
}

fn item_filter(warehouse_id: Option<Uuid>, low_stock_only: bool) -> Filter {
    let mut filter = Filter::default();
    if let Some(warehouse_id) = warehouse_id {
        filter.add("warehouse_id = ?", warehouse_id.to_string());
    }
    if low_stock_only {
        filter.when(super::LOW_STOCK);
    }
    filter
}

fn allocation_filter(wanted: AllocationFilter) -> Filter {
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
    if let Some(warehouse_id) = wanted.warehouse_id {
        filter.add("warehouse_id = ?", warehouse_id.to_string());
    }
    filter
}

fn transfer_filter(wanted: TransferFilter) -> Filter {
    let mut filter = Filter::default();
    if let Some(warehouses) = wanted.warehouses {
        // One parameter per warehouse, named in both lists.
        let mut numbers = Vec::new();
        for warehouse in &warehouses {
            filter.values.push(Value::Text(warehouse.to_string()));
            numbers.push(format!("?{}", filter.values.len()));
        }
        let list = numbers.join(", ");
        filter.clauses.push(format!(
            "(from_warehouse_id IN ({list}) OR to_warehouse_id IN ({list}))"
        ));
    }
    if let Some(status) = wanted.status {
        filter.add("status = ?", status.as_str().to_owned());
    }
    if let Some(item_id) = wanted.item_id {
        filter.add("(from_item_id = ? OR to_item_id = ?)", item_id.to_string());
    }
    filter
}

fn history_filter(item_id: Uuid, from: Option<i64>, to: Option<i64>) -> Filter {
    let mut filter = Filter::default();
    filter.add("item_id = ?", item_id.to_string());
    if let Some(from) = from {
        filter.add("occurred_at >= ?", from);
    }
    if let Some(to) = to {
        filter.add("occurred_at < ?", to);
    }
    filter
}

impl SqliteProjections {
    /// A keyset page of `table`.
    async fn page<T: Send + 'static>(
        &self,
        table: &'static str,
        columns: &'static str,
        filter: Filter,
        order: String,
        backward: bool,
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, ProjectionError> {
        let rows = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {columns} FROM {table} {} {order}",
                    filter.sql(),
                ))?;
                let rows =
                    statement.query_map(rusqlite::params_from_iter(filter.values), from_row)?;
                rows.collect::<rusqlite::Result<Vec<T>>>()
            })
            .await?;
        Ok(in_order(rows, backward))
    }

    /// `SELECT COUNT(*)` of `table` under `filter`.
    async fn count(&self, table: &'static str, filter: Filter) -> Result<u64, ProjectionError> {
        self.read(move |conn| {
            conn.prepare_cached(&format!("SELECT COUNT(*) FROM {table} {}", filter.sql()))?
                .query_row(rusqlite::params_from_iter(filter.values), |row| {
                    row.get::<_, i64>(0)
                })
        })
        .await
        .map(|n| n.max(0) as u64)
    }

    /// The rows of `ids` in one `WHERE id IN (…)` query (a DataLoader's batch).
    async fn by_ids<T: Send + 'static>(
        &self,
        table: &'static str,
        columns: &'static str,
        ids: &[Uuid],
        from_row: fn(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, ProjectionError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        self.read(move |conn| {
            let placeholders = vec!["?"; ids.len()].join(", ");
            // Not cached: the statement differs with every batch size.
            let mut statement = conn.prepare(&format!(
                "SELECT {columns} FROM {table} WHERE id IN ({placeholders})"
            ))?;
            let rows = statement.query_map(rusqlite::params_from_iter(ids), from_row)?;
            rows.collect()
        })
        .await
    }
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
        keys: Keys<Uuid>,
    ) -> Result<Vec<WarehouseView>, ProjectionError> {
        let mut filter = warehouse_filter(include_inactive);
        let order = filter.keyset("id", &keys, uuid_value);
        self.page(
            "warehouses",
            current_inventory::WAREHOUSE_COLUMNS,
            filter,
            order,
            keys.backward,
            current_inventory::warehouse_from_row,
        )
        .await
    }

    async fn warehouses_by_ids(&self, ids: &[Uuid]) -> Result<Vec<WarehouseView>, ProjectionError> {
        self.by_ids(
            "warehouses",
            current_inventory::WAREHOUSE_COLUMNS,
            ids,
            current_inventory::warehouse_from_row,
        )
        .await
    }

    async fn count_warehouses(&self, include_inactive: bool) -> Result<u64, ProjectionError> {
        self.count("warehouses", warehouse_filter(include_inactive))
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
        keys: Keys<Uuid>,
    ) -> Result<Vec<ItemView>, ProjectionError> {
        let mut filter = item_filter(warehouse_id, low_stock_only);
        let order = filter.keyset("id", &keys, uuid_value);
        self.page(
            "items",
            current_inventory::ITEM_COLUMNS,
            filter,
            order,
            keys.backward,
            current_inventory::item_from_row,
        )
        .await
    }

    async fn items_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ItemView>, ProjectionError> {
        self.by_ids(
            "items",
            current_inventory::ITEM_COLUMNS,
            ids,
            current_inventory::item_from_row,
        )
        .await
    }

    async fn count_items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
    ) -> Result<u64, ProjectionError> {
        self.count("items", item_filter(warehouse_id, low_stock_only))
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
        keys: Keys<Uuid>,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        let mut filter = allocation_filter(wanted);
        let order = filter.keyset("id", &keys, uuid_value);
        self.page(
            "allocations",
            allocation_status::COLUMNS,
            filter,
            order,
            keys.backward,
            allocation_status::from_row,
        )
        .await
    }

    async fn allocations_by_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        self.by_ids(
            "allocations",
            allocation_status::COLUMNS,
            ids,
            allocation_status::from_row,
        )
        .await
    }

    async fn count_allocations(&self, wanted: AllocationFilter) -> Result<u64, ProjectionError> {
        self.count("allocations", allocation_filter(wanted)).await
    }

    async fn due_allocations(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, ProjectionError> {
        let limit = self::limit(limit);
        self.read(move |conn| {
            // On the partial index of open deadlines: only rows due are read.
            let mut statement = conn.prepare_cached(&format!(
                "SELECT id FROM allocations WHERE {} AND expires_at <= ?1 \
                 ORDER BY expires_at, id LIMIT ?2",
                allocation_status::AWAITS_EXPIRY
            ))?;
            let rows = statement.query_map(params![now, limit], |row| super::uuid_at(row, 0))?;
            rows.collect()
        })
        .await
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<TransferView>, ProjectionError> {
        self.by_ids(
            "transfers",
            transfer_status::COLUMNS,
            &[id],
            transfer_status::from_row,
        )
        .await
        .map(|rows| rows.into_iter().next())
    }

    async fn transfers(
        &self,
        wanted: TransferFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<TransferView>, ProjectionError> {
        let mut filter = transfer_filter(wanted);
        let order = filter.keyset("id", &keys, uuid_value);
        self.page(
            "transfers",
            transfer_status::COLUMNS,
            filter,
            order,
            keys.backward,
            transfer_status::from_row,
        )
        .await
    }

    async fn count_transfers(&self, wanted: TransferFilter) -> Result<u64, ProjectionError> {
        self.count("transfers", transfer_filter(wanted)).await
    }

    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        keys: Keys<u64>,
    ) -> Result<Vec<HistoryEntry>, ProjectionError> {
        let mut filter = history_filter(item_id, from, to);
        let order = filter.keyset("sequence_number", &keys, sequence_value);
        self.page(
            "history",
            inventory_history::COLUMNS,
            filter,
            order,
            keys.backward,
            inventory_history::from_row,
        )
        .await
    }

    async fn count_history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<u64, ProjectionError> {
        self.count("history", history_filter(item_id, from, to))
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
