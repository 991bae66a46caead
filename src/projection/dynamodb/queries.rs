//! The read side of the DynamoDB projections: every query is a GetItem or a Query on a key or
//! an index (never a Scan), keyset-paginated by id so that page N costs the same as page 1.
//! Table reads are strongly consistent; GSI reads cannot be, so a list may lag a write by the
//! index's propagation delay (typically well under a second).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::HashMap;
use uuid::Uuid;

use super::allocation_status::status_shards;
use super::attributes::{n, s, Record};
use super::current_inventory::{sku_key, ITEM_LIST, LOW_STOCK, WAREHOUSE_LIST};
use super::{inventory_history, stock_movements, unavailable, DynamoProjections, VersionedRow};
use crate::domain::allocation::AllocationStatus;
use crate::projection::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, MovementRow, ProjectionError,
    ReadModel, WarehouseView,
};

/// The key of the items table, which its keys-only indexes carry.
const ITEM_KEY: &[&str] = &["id"];
/// The key of the allocations table.
const ALLOCATION_KEY: &[&str] = &["id"];
/// The key of the movements table.
const MOVEMENT_KEY: &[&str] = &["itemId", "day"];

/// The most rows one call returns, as in the SQLite adapter.
const MAX_ROWS: usize = 10_000;

/// A Query under construction: key conditions, filters and their placeholders.
struct Lookup {
    index: Option<&'static str>,
    /// For an index that projects only keys: the table's key attributes, by which the rows
    /// are then read from the table.
    fetch: Option<&'static [&'static str]>,
    /// Equality filters checked on the fetched rows (a keys-only index cannot filter on the
    /// attributes it does not hold).
    fetched_filters: Vec<(String, AttributeValue)>,
    keys: Vec<String>,
    filters: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Lookup {
    /// A Query on the table itself (`None`) or on one of its indexes.
    fn on(index: Option<&'static str>) -> Self {
        Self {
            index,
            fetch: None,
            fetched_filters: Vec::new(),
            keys: Vec::new(),
            filters: Vec::new(),
            names: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// A Query on an index that holds only keys (`crate::dynamodb` creates them so, since a
    /// write that leaves an index's keys alone then costs that index nothing): the rows are
    /// read from the table by `table_key`, in the index's order.
    fn on_keys(index: &'static str, table_key: &'static [&'static str]) -> Self {
        Self {
            fetch: Some(table_key),
            ..Self::on(Some(index))
        }
    }

    /// `#attribute op :value`, with placeholders throughout (`status`, `day` and `name` are
    /// reserved words in expressions).
    fn condition(&mut self, attribute: &str, op: &str, values: &[AttributeValue]) -> String {
        self.names
            .insert(format!("#{attribute}"), attribute.to_owned());
        let placeholders: Vec<String> = values
            .iter()
            .map(|value| {
                let placeholder = format!(":v{}", self.values.len());
                self.values.insert(placeholder.clone(), value.clone());
                placeholder
            })
            .collect();
        format!("#{attribute} {op} {}", placeholders.join(" AND "))
    }

    fn key(mut self, attribute: &str, op: &str, value: AttributeValue) -> Self {
        let condition = self.condition(attribute, op, &[value]);
        self.keys.push(condition);
        self
    }

    fn key_between(mut self, attribute: &str, low: AttributeValue, high: AttributeValue) -> Self {
        let condition = self.condition(attribute, "BETWEEN", &[low, high]);
        self.keys.push(condition);
        self
    }

    fn filter(mut self, attribute: &str, op: &str, value: AttributeValue) -> Self {
        if self.fetch.is_some() && op == "=" {
            self.fetched_filters.push((attribute.to_owned(), value));
            return self;
        }
        let condition = self.condition(attribute, op, &[value]);
        self.filters.push(condition);
        self
    }

    /// Runs the Query page after page until `limit` rows came back or the key range is done.
    /// With a filter a page may hold fewer rows than asked for (Limit counts rows read, not
    /// rows returned), so filtered queries read somewhat larger pages.
    async fn run<T>(
        self,
        store: &DynamoProjections,
        table: String,
        limit: usize,
        decode: fn(&Record) -> Result<T, ProjectionError>,
    ) -> Result<Vec<T>, ProjectionError> {
        let limit = limit.min(MAX_ROWS);
        let fetch = self.fetch;
        let fetched_filters = self.fetched_filters;
        let filtered = !self.filters.is_empty() || !fetched_filters.is_empty();
        let query = store
            .client
            .query()
            .table_name(&table)
            .set_index_name(self.index.map(str::to_owned))
            // Global indexes cannot be read consistently; the table can.
            .consistent_read(self.index.is_none())
            .key_condition_expression(self.keys.join(" AND "))
            .set_filter_expression((!self.filters.is_empty()).then(|| self.filters.join(" AND ")))
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values));
        let mut rows = Vec::new();
        let mut start = None;
        while rows.len() < limit {
            let remaining = limit - rows.len();
            let page_size = if filtered {
                remaining.max(100)
            } else {
                remaining
            };
            let page = query
                .clone()
                .limit(page_size.min(1_000) as i32)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            match fetch {
                None => {
                    for record in page.items() {
                        rows.push(decode(record)?);
                    }
                }
                Some(key) => {
                    for record in fetch_rows(store, &table, key, page.items()).await? {
                        let wanted = fetched_filters
                            .iter()
                            .all(|(attribute, value)| record.get(attribute) == Some(value));
                        if wanted {
                            rows.push(decode(&record)?);
                        }
                    }
                }
            }
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        rows.truncate(limit);
        Ok(rows)
    }
}

/// The table rows of index entries, in the entries' order (strongly consistent). An entry
/// whose row is gone (it cannot be, rows are never deleted) is skipped.
async fn fetch_rows(
    store: &DynamoProjections,
    table: &str,
    key: &[&str],
    entries: &[Record],
) -> Result<Vec<Record>, ProjectionError> {
    let key_of = |record: &Record| -> Record {
        key.iter()
            .filter_map(|name| record.get(*name).map(|v| ((*name).to_owned(), v.clone())))
            .collect()
    };
    // AttributeValue is not Hash; its debug form of the key attributes is a faithful key.
    let identity = |record: &Record| -> String {
        format!(
            "{:?}",
            key.iter().map(|name| record.get(*name)).collect::<Vec<_>>()
        )
    };
    let keys = entries.iter().map(key_of).collect();
    let rows = crate::dynamodb::batch_get(&store.client, table, keys)
        .await
        .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
    let mut found: HashMap<String, Record> =
        rows.into_iter().map(|row| (identity(&row), row)).collect();
    Ok(entries
        .iter()
        .filter_map(|entry| found.remove(&identity(entry)))
        .collect())
}

impl DynamoProjections {
    /// Allocations under these status index keys, by id: a page of each key (in parallel),
    /// merged.
    async fn allocations_by_status(
        &self,
        keys: Vec<String>,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        let pages = keys.into_iter().map(|key| {
            let mut lookup = Lookup::on(Some("by_status_shard")).key("statusShard", "=", s(key));
            if let Some(after) = after {
                lookup = lookup.key("id", ">", s(after.to_string()));
            }
            lookup.run(
                self,
                self.tables.allocations(),
                limit,
                AllocationView::from_record,
            )
        });
        let mut rows: Vec<AllocationView> = futures::future::try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .collect();
        rows.sort_by_key(|row| row.id);
        rows.truncate(limit.min(MAX_ROWS));
        Ok(rows)
    }
}

#[async_trait]
impl ReadModel for DynamoProjections {
    async fn warehouse(&self, id: Uuid) -> Result<Option<WarehouseView>, ProjectionError> {
        self.get_row(&self.tables.warehouses(), id).await
    }

    async fn warehouses(
        &self,
        include_inactive: bool,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<WarehouseView>, ProjectionError> {
        let mut lookup = Lookup::on(Some("all")).key("listKey", "=", s(WAREHOUSE_LIST));
        if let Some(after) = after {
            lookup = lookup.key("id", ">", s(after.to_string()));
        }
        if !include_inactive {
            lookup = lookup.filter("active", "=", AttributeValue::Bool(true));
        }
        lookup
            .run(
                self,
                self.tables.warehouses(),
                limit,
                WarehouseView::from_record,
            )
            .await
    }

    async fn item(&self, id: Uuid) -> Result<Option<ItemView>, ProjectionError> {
        self.get_row(&self.tables.items(), id).await
    }

    async fn item_by_sku(
        &self,
        warehouse_id: Uuid,
        sku: &str,
    ) -> Result<Option<ItemView>, ProjectionError> {
        let key = sku_key(&warehouse_id.to_string(), sku.trim());
        let found = Lookup::on_keys("by_sku", ITEM_KEY)
            .key("skuKey", "=", s(key))
            .run(self, self.tables.items(), 1, ItemView::from_record)
            .await?;
        Ok(found.into_iter().next())
    }

    async fn items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<ItemView>, ProjectionError> {
        // The two low-stock indexes are sparse: they hold only the items low on stock.
        let mut lookup =
            match (warehouse_id, low_stock_only) {
                (Some(warehouse_id), true) => Lookup::on_keys("low_stock_by_warehouse", ITEM_KEY)
                    .key("lowStockWarehouse", "=", s(warehouse_id.to_string())),
                (Some(warehouse_id), false) => Lookup::on_keys("by_warehouse", ITEM_KEY).key(
                    "warehouseId",
                    "=",
                    s(warehouse_id.to_string()),
                ),
                (None, true) => {
                    Lookup::on_keys("low_stock", ITEM_KEY).key("lowStockKey", "=", s(LOW_STOCK))
                }
                (None, false) => Lookup::on_keys("all", ITEM_KEY).key("listKey", "=", s(ITEM_LIST)),
            };
        if let Some(after) = after {
            lookup = lookup.key("id", ">", s(after.to_string()));
        }
        lookup
            .run(self, self.tables.items(), limit, ItemView::from_record)
            .await
    }

    async fn allocation(&self, id: Uuid) -> Result<Option<AllocationView>, ProjectionError> {
        self.get_row(&self.tables.allocations(), id).await
    }

    async fn allocations(
        &self,
        filter: AllocationFilter,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        // The most selective index given keys the Query; the other conditions filter it.
        let AllocationFilter {
            order_id,
            mut item_id,
            status,
        } = filter;
        let mut lookup = if let Some(order_id) = order_id {
            Lookup::on_keys("by_order", ALLOCATION_KEY).key("orderId", "=", s(order_id))
        } else if let Some(item_id) = item_id.take() {
            Lookup::on_keys("by_item", ALLOCATION_KEY).key("itemId", "=", s(item_id.to_string()))
        } else if let Some(status) = status {
            let keys = status_shards(status).collect();
            return self.allocations_by_status(keys, after, limit).await;
        } else {
            let keys = AllocationStatus::ALL
                .into_iter()
                .flat_map(status_shards)
                .collect();
            return self.allocations_by_status(keys, after, limit).await;
        };
        if let Some(after) = after {
            lookup = lookup.key("id", ">", s(after.to_string()));
        }
        if let Some(item_id) = item_id {
            lookup = lookup.filter("itemId", "=", s(item_id.to_string()));
        }
        if let Some(status) = status {
            lookup = lookup.filter("status", "=", s(status.as_str()));
        }
        lookup
            .run(
                self,
                self.tables.allocations(),
                limit,
                AllocationView::from_record,
            )
            .await
    }

    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<HistoryEntry>, ProjectionError> {
        // On the table, not the by_time index: pages are ordered and keyed by sequence number.
        let mut lookup = Lookup::on(None).key("itemId", "=", s(item_id.to_string()));
        if let Some(after) = after {
            lookup = lookup.key("sequenceNumber", ">", n(after));
        }
        if let Some(from) = from {
            lookup = lookup.filter("occurredAt", ">=", n(from));
        }
        if let Some(to) = to {
            lookup = lookup.filter("occurredAt", "<", n(to));
        }
        lookup
            .run(
                self,
                self.tables.history(),
                limit,
                inventory_history::from_record,
            )
            .await
    }

    async fn movements(
        &self,
        warehouse_id: Option<Uuid>,
        item_id: Option<Uuid>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<MovementRow>, ProjectionError> {
        let mut lookup = match (item_id, warehouse_id) {
            (Some(item_id), warehouse_id) => {
                let lookup = Lookup::on(None);
                let lookup = lookup.key("itemId", "=", s(item_id.to_string()));
                match warehouse_id {
                    Some(warehouse_id) => {
                        lookup.filter("warehouseId", "=", s(warehouse_id.to_string()))
                    }
                    None => lookup,
                }
            }
            (None, Some(warehouse_id)) => Lookup::on_keys("by_warehouse", MOVEMENT_KEY).key(
                "warehouseId",
                "=",
                s(warehouse_id.to_string()),
            ),
            // No index holds every movement, and a Scan is not a query.
            (None, None) => {
                return Err(ProjectionError::Unavailable(
                    "a stock movement report needs a warehouse or an item".into(),
                ))
            }
        };
        lookup = match (from, to) {
            // BETWEEN rejects an empty range; SQLite answers it with no rows.
            (Some(from), Some(to)) if from > to => return Ok(Vec::new()),
            (Some(from), Some(to)) => lookup.key_between("day", s(from), s(to)),
            (Some(from), None) => lookup.key("day", ">=", s(from)),
            (None, Some(to)) => lookup.key("day", "<=", s(to)),
            (None, None) => lookup,
        };
        let mut rows = lookup
            .run(
                self,
                self.tables.movements(),
                MAX_ROWS,
                stock_movements::from_record,
            )
            .await?;
        rows.sort_by(|a, b| (&a.day, &a.sku, a.item_id).cmp(&(&b.day, &b.sku, b.item_id)));
        Ok(rows)
    }

    async fn ping(&self) -> Result<(), ProjectionError> {
        self.client
            .get_item()
            .table_name(self.tables.checkpoints())
            .key("checkpointKey", s("ping"))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}
