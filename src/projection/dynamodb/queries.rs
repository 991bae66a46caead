//! The read side of the DynamoDB projections: every query is a GetItem or a Query on a key or
//! an index (never a Scan), keyset-paginated by id so that page N costs the same as page 1.
//! Table reads are strongly consistent; GSI reads cannot be, so a list may lag a write by the
//! index's propagation delay (typically well under a second).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::allocation_status::{expiry_shards, status_shards};
use super::attributes::{n, s, Record, RecordReader};
use super::current_inventory::{sku_key, ITEM_LIST, LOW_STOCK, WAREHOUSE_LIST};
use super::lookup::{Lookup, MAX_ROWS};
use super::transfer_status::TRANSFER_LIST;
use super::{inventory_history, stock_movements, unavailable, DynamoProjections, VersionedRow};
use crate::domain::allocation::AllocationStatus;
use crate::projection::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, Keys, MovementRow, ProjectionError,
    ReadModel, TransferFilter, TransferView, WarehouseView,
};

/// The key of the items table, which its keys-only indexes carry.
const ITEM_KEY: &[&str] = &["id"];
/// The key of the allocations table.
const ALLOCATION_KEY: &[&str] = &["id"];
/// The key of the movements table.
const MOVEMENT_KEY: &[&str] = &["itemId", "day"];

fn uuid_key(id: &Uuid) -> AttributeValue {
    s(id.to_string())
}

fn sequence_key(sequence: &u64) -> AttributeValue {
    n(*sequence)
}

fn warehouse_lookup(include_inactive: bool) -> Lookup {
    let lookup = Lookup::on(Some("all")).key("listKey", "=", s(WAREHOUSE_LIST));
    if include_inactive {
        lookup
    } else {
        lookup.filter("active", "=", AttributeValue::Bool(true))
    }
}

fn item_lookup(warehouse_id: Option<Uuid>, low_stock_only: bool) -> Lookup {
    // The two low-stock indexes are sparse: they hold only the items low on stock.
    match (warehouse_id, low_stock_only) {
        (Some(warehouse_id), true) => Lookup::on_keys("low_stock_by_warehouse", ITEM_KEY).key(
            "lowStockWarehouse",
            "=",
            s(warehouse_id.to_string()),
        ),
        (Some(warehouse_id), false) => Lookup::on_keys("by_warehouse", ITEM_KEY).key(
            "warehouseId",
            "=",
            s(warehouse_id.to_string()),
        ),
        (None, true) => {
            Lookup::on_keys("low_stock", ITEM_KEY).key("lowStockKey", "=", s(LOW_STOCK))
        }
        (None, false) => Lookup::on_keys("all", ITEM_KEY).key("listKey", "=", s(ITEM_LIST)),
    }
}

/// How an allocation filter is read: one Query on the most selective index given (the other
/// conditions filter it), or the status index's shards, each a Query, merged.
enum AllocationLookup {
    One(Box<Lookup>),
    Shards(Vec<String>),
}

/// The conditions an allocation lookup's index does not key on.
#[derive(Clone, Copy, Default)]
struct AllocationConditions {
    item_id: Option<Uuid>,
    status: Option<AllocationStatus>,
    warehouse_id: Option<Uuid>,
}

/// Adds the conditions the chosen index does not key on.
fn allocation_filters(mut lookup: Lookup, conditions: AllocationConditions) -> Lookup {
    if let Some(item_id) = conditions.item_id {
        lookup = lookup.filter("itemId", "=", s(item_id.to_string()));
    }
    if let Some(status) = conditions.status {
        lookup = lookup.filter("status", "=", s(status.as_str()));
    }
    // No index keys allocations by warehouse: a filter, on whichever index the rest chose
    // (`run` reads on until the page is full).
    if let Some(warehouse_id) = conditions.warehouse_id {
        lookup = lookup.filter("warehouseId", "=", s(warehouse_id.to_string()));
    }
    lookup
}

/// The index and its key for an allocation filter, with the conditions left for
/// [`allocation_filters`].
fn allocation_lookup(filter: AllocationFilter) -> (AllocationLookup, AllocationConditions) {
    let AllocationFilter {
        order_id,
        mut item_id,
        status,
        warehouse_id,
    } = filter;
    let lookup = if let Some(order_id) = order_id {
        Lookup::on_keys("by_order", ALLOCATION_KEY).key("orderId", "=", s(order_id))
    } else if let Some(item_id) = item_id.take() {
        Lookup::on_keys("by_item", ALLOCATION_KEY).key("itemId", "=", s(item_id.to_string()))
    } else {
        // The status shards' keys hold the status: only the warehouse is left to filter on.
        let shards = match status {
            Some(status) => status_shards(status).collect(),
            None => AllocationStatus::ALL
                .into_iter()
                .flat_map(status_shards)
                .collect(),
        };
        let rest = AllocationConditions {
            warehouse_id,
            ..Default::default()
        };
        return (AllocationLookup::Shards(shards), rest);
    };
    let rest = AllocationConditions {
        item_id,
        status,
        warehouse_id,
    };
    (AllocationLookup::One(Box::new(lookup)), rest)
}

/// The Queries whose rows, taken together, are a transfer filter's answer, each row in one of
/// them only: an item's transfers leave it or enter it (never both); a warehouse set's leave one
/// of them, or enter one of them from outside the set; all transfers share one list key.
fn transfer_lookups(filter: &TransferFilter) -> Vec<Lookup> {
    let id = |id: &Uuid| s(id.to_string());
    let mut lookups = match (&filter.item_id, &filter.warehouses) {
        // An item lies in one warehouse: its transfers all touch it (the API checks the
        // caller may see that warehouse before asking).
        (Some(item), _) => vec![
            Lookup::on(Some("from_item")).key("fromItemId", "=", id(item)),
            Lookup::on(Some("to_item")).key("toItemId", "=", id(item)),
        ],
        (None, Some(warehouses)) => warehouses
            .iter()
            .flat_map(|warehouse| {
                let leaving =
                    Lookup::on(Some("from_warehouse")).key("fromWarehouseId", "=", id(warehouse));
                let entering = warehouses.iter().fold(
                    Lookup::on(Some("to_warehouse")).key("toWarehouseId", "=", id(warehouse)),
                    |lookup, other| lookup.filter("fromWarehouseId", "<>", id(other)),
                );
                [leaving, entering]
            })
            .collect(),
        (None, None) => vec![Lookup::on(Some("all")).key("listKey", "=", s(TRANSFER_LIST))],
    };
    if let Some(status) = filter.status {
        lookups = lookups
            .into_iter()
            .map(|lookup| lookup.filter("status", "=", s(status.as_str())))
            .collect();
    }
    lookups
}

fn history_lookup(item_id: Uuid) -> Lookup {
    // On the table, not the by_time index: pages are ordered and keyed by sequence number.
    Lookup::on(None).key("itemId", "=", s(item_id.to_string()))
}

fn history_filters(mut lookup: Lookup, from: Option<i64>, to: Option<i64>) -> Lookup {
    if let Some(from) = from {
        lookup = lookup.filter("occurredAt", ">=", n(from));
    }
    if let Some(to) = to {
        lookup = lookup.filter("occurredAt", "<", n(to));
    }
    lookup
}

fn status_shard_lookup(key: String) -> Lookup {
    Lookup::on(Some("by_status_shard")).key("statusShard", "=", s(key))
}

impl DynamoProjections {
    /// Allocations under these status index keys, by id: a page of each key (in parallel),
    /// merged, taken from the end the keyset asks for.
    async fn allocations_by_status(
        &self,
        shards: Vec<String>,
        rest: AllocationConditions,
        keys: Keys<Uuid>,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        let pages = shards.into_iter().map(|key| {
            allocation_filters(status_shard_lookup(key), rest)
                .range("id", &keys, uuid_key)
                .run(
                    self,
                    self.tables.allocations(),
                    keys.limit,
                    AllocationView::from_record,
                )
        });
        let rows: Vec<AllocationView> = futures::future::try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let keys = Keys {
            limit: keys.limit.min(MAX_ROWS),
            ..keys
        };
        Ok(crate::projection::keyset_slice(rows, &keys, |row| row.id))
    }

    /// The rows of `ids` (a DataLoader's batch) by BatchGetItem, 100 keys a request.
    async fn rows_by_ids<V: VersionedRow>(
        &self,
        table: String,
        ids: &[Uuid],
    ) -> Result<Vec<V>, ProjectionError> {
        let keys = ids
            .iter()
            .map(|id| Record::from([("id".to_owned(), s(id.to_string()))]))
            .collect();
        let rows = crate::dynamodb::batch_get(&self.client, &table, keys)
            .await
            .map_err(unavailable("reading projection rows by id"))?;
        rows.iter().map(V::from_record).collect()
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
        keys: Keys<Uuid>,
    ) -> Result<Vec<WarehouseView>, ProjectionError> {
        warehouse_lookup(include_inactive)
            .range("id", &keys, uuid_key)
            .run(
                self,
                self.tables.warehouses(),
                keys.limit,
                WarehouseView::from_record,
            )
            .await
    }

    async fn warehouses_by_ids(&self, ids: &[Uuid]) -> Result<Vec<WarehouseView>, ProjectionError> {
        self.rows_by_ids(self.tables.warehouses(), ids).await
    }

    async fn count_warehouses(&self, include_inactive: bool) -> Result<u64, ProjectionError> {
        warehouse_lookup(include_inactive)
            .count(self, self.tables.warehouses())
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
        keys: Keys<Uuid>,
    ) -> Result<Vec<ItemView>, ProjectionError> {
        item_lookup(warehouse_id, low_stock_only)
            .range("id", &keys, uuid_key)
            .run(self, self.tables.items(), keys.limit, ItemView::from_record)
            .await
    }

    async fn items_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ItemView>, ProjectionError> {
        self.rows_by_ids(self.tables.items(), ids).await
    }

    async fn count_items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
    ) -> Result<u64, ProjectionError> {
        item_lookup(warehouse_id, low_stock_only)
            .count(self, self.tables.items())
            .await
    }

    async fn allocation(&self, id: Uuid) -> Result<Option<AllocationView>, ProjectionError> {
        self.get_row(&self.tables.allocations(), id).await
    }

    async fn allocations(
        &self,
        filter: AllocationFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        match allocation_lookup(filter) {
            (AllocationLookup::Shards(shards), rest) => {
                self.allocations_by_status(shards, rest, keys).await
            }
            (AllocationLookup::One(lookup), rest) => {
                allocation_filters((*lookup).range("id", &keys, uuid_key), rest)
                    .run(
                        self,
                        self.tables.allocations(),
                        keys.limit,
                        AllocationView::from_record,
                    )
                    .await
            }
        }
    }

    async fn allocations_by_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        self.rows_by_ids(self.tables.allocations(), ids).await
    }

    async fn count_allocations(&self, filter: AllocationFilter) -> Result<u64, ProjectionError> {
        match allocation_lookup(filter) {
            (AllocationLookup::Shards(shards), rest) => {
                let counts = shards.into_iter().map(|key| {
                    allocation_filters(status_shard_lookup(key), rest)
                        .count(self, self.tables.allocations())
                });
                Ok(futures::future::try_join_all(counts)
                    .await?
                    .into_iter()
                    .sum())
            }
            (AllocationLookup::One(lookup), rest) => {
                allocation_filters(*lookup, rest)
                    .count(self, self.tables.allocations())
                    .await
            }
        }
    }

    /// One Query per key of the sparse index of open deadlines (`expiresAt <= now`), in
    /// parallel: an index entry carries the id, so no row is read. Merged by deadline.
    async fn due_allocations(&self, now: i64, limit: usize) -> Result<Vec<Uuid>, ProjectionError> {
        fn entry(record: &Record) -> Result<(i64, Uuid), ProjectionError> {
            let r = RecordReader::new("projection_allocations.awaiting_expiry", record);
            Ok((r.int("expiresAt")?, r.uuid("id")?))
        }
        let queries = expiry_shards().map(|key| {
            Lookup::on(Some("awaiting_expiry"))
                .key("expiryShard", "=", s(key))
                .key("expiresAt", "<=", n(now))
                .run(self, self.tables.allocations(), limit, entry)
        });
        let mut due: Vec<(i64, Uuid)> = futures::future::try_join_all(queries)
            .await?
            .into_iter()
            .flatten()
            .collect();
        due.sort_unstable();
        due.truncate(limit);
        Ok(due.into_iter().map(|(_, id)| id).collect())
    }

    async fn transfer(&self, id: Uuid) -> Result<Option<TransferView>, ProjectionError> {
        self.get_row(&self.tables.transfers(), id).await
    }

    async fn transfers(
        &self,
        filter: TransferFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<TransferView>, ProjectionError> {
        let pages = transfer_lookups(&filter).into_iter().map(|lookup| {
            lookup.range("id", &keys, uuid_key).run(
                self,
                self.tables.transfers(),
                keys.limit,
                TransferView::from_record,
            )
        });
        let rows = futures::future::try_join_all(pages)
            .await?
            .into_iter()
            .flatten()
            .collect();
        let keys = Keys {
            limit: keys.limit.min(MAX_ROWS),
            ..keys
        };
        Ok(crate::projection::keyset_slice(rows, &keys, |t| t.id))
    }

    async fn count_transfers(&self, filter: TransferFilter) -> Result<u64, ProjectionError> {
        let counts = transfer_lookups(&filter)
            .into_iter()
            .map(|lookup| lookup.count(self, self.tables.transfers()));
        Ok(futures::future::try_join_all(counts)
            .await?
            .into_iter()
            .sum())
    }

    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        keys: Keys<u64>,
    ) -> Result<Vec<HistoryEntry>, ProjectionError> {
        history_filters(
            history_lookup(item_id).range("sequenceNumber", &keys, sequence_key),
            from,
            to,
        )
        .run(
            self,
            self.tables.history(),
            keys.limit,
            inventory_history::from_record,
        )
        .await
    }

    async fn count_history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<u64, ProjectionError> {
        history_filters(history_lookup(item_id), from, to)
            .count(self, self.tables.history())
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

    /// Reads a key no row has from a table of the first projection these tables hold (a
    /// rebuilt generation of one projection has only that projection's tables).
    async fn ping(&self) -> Result<(), ProjectionError> {
        use crate::projection::layout::ProjectionName as P;
        let (table, key) = match self.serves.first() {
            Some(P::InventoryHistory) => (
                self.tables.history(),
                vec![("itemId", s("ping")), ("sequenceNumber", n(0))],
            ),
            Some(P::StockMovements) => (
                self.tables.movements(),
                vec![("itemId", s("ping")), ("day", s("ping"))],
            ),
            Some(P::CurrentInventory) => (self.tables.items(), vec![("id", s("ping"))]),
            Some(P::AllocationStatus) => (self.tables.allocations(), vec![("id", s("ping"))]),
            Some(P::TransferStatus) => (self.tables.transfers(), vec![("id", s("ping"))]),
            Some(P::Warehouses) | None => (self.tables.warehouses(), vec![("id", s("ping"))]),
        };
        let key: Record = key
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .collect();
        self.client
            .get_item()
            .table_name(table)
            .set_key(Some(key))
            .send()
            .await
            .map_err(unavailable("reading a projection table"))?;
        Ok(())
    }
}
