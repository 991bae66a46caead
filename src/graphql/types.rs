//! GraphQL object types over the read models. Each wraps a view from `projection::model`, so
//! a query (projection row) and a mutation payload (state right after the commit) show the
//! same shape.

use async_graphql::{ComplexObject, Context, Enum, Json, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::allocation::allocations_page;
use super::inventory::items_page;
use super::loaders::Loaders;
use super::page::{AllocationConnection, InventoryItemConnection, PageArgs};
use super::scope::sees;
use crate::projection::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, MovementRow, WarehouseView,
};
use crate::store::EventEnvelope;

// Links are followed from an entity the caller may see, and stay in its warehouse; should a
// link ever cross into a warehouse outside the caller's scope, it answers null, as `node` does.

/// The warehouse with this id, through the shared loader (batched with its neighbours).
async fn load_warehouse(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Warehouse>> {
    let loaders = ctx.data::<Loaders>()?;
    Ok(loaders
        .warehouses
        .load_one(id)
        .await
        .map_err(super::infrastructure)?
        .filter(|w| sees(ctx, w.id))
        .map(Warehouse))
}

/// The item with this id, through the shared loader.
async fn load_item(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<InventoryItem>> {
    let loaders = ctx.data::<Loaders>()?;
    Ok(loaders
        .items
        .load_one(id)
        .await
        .map_err(super::infrastructure)?
        .filter(|i| sees(ctx, i.warehouse_id))
        .map(InventoryItem))
}

pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// A place that holds stock. Items and allocations belong to exactly one warehouse.
pub struct Warehouse(pub WarehouseView);

/// A place that holds stock. Items and allocations belong to exactly one warehouse.
#[Object]
impl Warehouse {
    /// Globally unique id (UUID); `node(id:)` returns this object.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Short unique code, upper-cased (e.g. `AMS1`).
    async fn code(&self) -> &str {
        &self.0.code
    }
    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }
    /// Postal address, if given.
    async fn address(&self) -> Option<&str> {
        self.0.address.as_deref()
    }
    /// False once deactivated: no new items or allocations may be placed in it.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Sequence number of the warehouse's last event.
    async fn version(&self) -> u64 {
        self.0.version
    }
    /// When the warehouse was created.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// When the warehouse last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at)
    }
    /// The warehouse's items in creation order, optionally only those low on stock.
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "crate::graphql::limits::page(first, last, child_complexity)")]
    async fn items(
        &self,
        ctx: &Context<'_>,
        #[graphql(
            desc = "Only items whose available stock is at or below the reorder threshold.",
            default = false
        )]
        low_stock_only: bool,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<InventoryItemConnection> {
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        items_page(ctx, Some(self.0.id), low_stock_only, args).await
    }
}

/// One SKU at one warehouse, with its stock figures.
pub struct InventoryItem(pub ItemView);

/// One SKU at one warehouse, with its stock figures.
#[Object]
impl InventoryItem {
    /// Globally unique id (UUID); `node(id:)` returns this object.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Stock-keeping unit, unique within the warehouse.
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    /// The product this SKU stocks (the catalogue's id).
    async fn product_id(&self) -> &str {
        &self.0.product_id
    }
    /// Id of the warehouse holding the item.
    async fn warehouse_id(&self) -> ID {
        ID(self.0.warehouse_id.to_string())
    }
    /// The warehouse holding the item (batched: one read for all items of a page).
    async fn warehouse(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Warehouse>> {
        load_warehouse(ctx, self.0.warehouse_id).await
    }
    /// The item's allocations in creation order, optionally in one status.
    #[graphql(complexity = "crate::graphql::limits::page(first, last, child_complexity)")]
    async fn allocations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only allocations in this status.")] status: Option<AllocationStatus>,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<AllocationConnection> {
        let filter = AllocationFilter {
            item_id: Some(self.0.id),
            status: status.map(Into::into),
            ..AllocationFilter::default()
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        allocations_page(ctx, filter, Some(self.0.warehouse_id), args).await
    }
    /// Units physically in the warehouse.
    async fn on_hand(&self) -> i64 {
        self.0.on_hand
    }
    /// Units reserved by open allocations and by transfers not yet shipped.
    async fn allocated(&self) -> i64 {
        self.0.allocated
    }
    /// Units that can still be allocated: onHand − allocated, never negative.
    async fn available(&self) -> i64 {
        self.0.available()
    }
    /// Units shipped to this item by transfers not yet received.
    async fn incoming(&self) -> i64 {
        self.0.incoming
    }
    /// Transfers leaving or entering this item, in creation order, optionally in one status.
    #[graphql(complexity = "crate::graphql::limits::page(first, last, child_complexity)")]
    async fn transfers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only transfers in this status.")] status: Option<
            super::transfer::TransferStatus,
        >,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<super::page::TransferConnection> {
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        super::transfer::item_transfers(ctx, &self.0, status, args).await
    }
    /// A low-stock alert fires when available falls from above this to at or below it.
    async fn reorder_threshold(&self) -> i64 {
        self.0.reorder_threshold
    }
    /// How many units to reorder when stock runs low.
    async fn reorder_quantity(&self) -> i64 {
        self.0.reorder_quantity
    }
    /// True while available is at or below the reorder threshold.
    async fn low_stock(&self) -> bool {
        self.0.low_stock()
    }
    /// False once deactivated: no adjustments or new allocations.
    async fn active(&self) -> bool {
        self.0.active
    }
    /// Sequence number of the item's last event; pass it as `expectedVersion` to make an
    /// adjustment conditional on nobody else having changed the item.
    async fn version(&self) -> u64 {
        self.0.version
    }
    /// When the item was created.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// When the item last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at)
    }
}

/// Where an allocation is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::allocation::AllocationStatus")]
pub enum AllocationStatus {
    /// Stock is reserved for the order line.
    Created,
    /// The reservation is confirmed; it can now be fulfilled.
    Confirmed,
    /// Released; the stock is available again.
    Cancelled,
    /// The stock left the warehouse.
    Fulfilled,
}

/// Stock of one item reserved for one order line.
pub struct Allocation(pub AllocationView);

/// Stock of one item reserved for one order line.
#[Object]
impl Allocation {
    /// Globally unique id (UUID); `node(id:)` returns this object.
    pub async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// The order this allocation serves (the caller's id).
    async fn order_id(&self) -> &str {
        &self.0.order_id
    }
    /// Id of the item the stock is reserved from.
    async fn item_id(&self) -> ID {
        ID(self.0.item_id.to_string())
    }
    /// The item the stock is reserved from (batched: one read for all allocations of a page).
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<InventoryItem>> {
        load_item(ctx, self.0.item_id).await
    }
    /// Id of the warehouse of that item.
    async fn warehouse_id(&self) -> ID {
        ID(self.0.warehouse_id.to_string())
    }
    /// The warehouse of that item (batched like `item`).
    async fn warehouse(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Warehouse>> {
        load_warehouse(ctx, self.0.warehouse_id).await
    }
    /// Units reserved.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    /// Where the allocation is in its life.
    async fn status(&self) -> AllocationStatus {
        self.0.status.into()
    }
    /// Why it was cancelled, once cancelled: `expired` when the service cancelled it at its
    /// deadline.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    /// When the reservation lapses unless confirmed first; null when it has no deadline and
    /// once confirmed (confirming clears it). A cancelled allocation keeps the deadline it had.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at.map(time)
    }
    /// Sequence number of the allocation's last event.
    async fn version(&self) -> u64 {
        self.0.version
    }
    /// When the allocation was created.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// When the allocation last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at)
    }
}

/// A business-rule failure: the mutation changed nothing.
#[derive(SimpleObject, Clone, Debug)]
pub struct UserError {
    /// The input field at fault, when one is (e.g. `["input", "quantity"]`).
    pub field: Option<Vec<String>>,
    /// A sentence a person can act on.
    pub message: String,
    /// Stable machine-readable code: NOT_FOUND, INVALID_INPUT, INSUFFICIENT_STOCK,
    /// DUPLICATE_SKU, DUPLICATE_CODE, INACTIVE, INVALID_STATE_TRANSITION, VERSION_CONFLICT,
    /// STALE_QUANTITY.
    pub code: String,
}

/// One change of an item's on-hand stock, or a count of it (which may have found none).
pub struct InventoryHistoryEntry(pub HistoryEntry);

/// One change of an item's on-hand stock, or a count of it (which may have found none).
#[Object]
impl InventoryHistoryEntry {
    /// Stable id for client caches: `<itemId>:<sequenceNumber>`.
    async fn id(&self) -> ID {
        ID(format!("{}:{}", self.0.item_id, self.0.sequence_number))
    }
    /// The item whose stock changed.
    async fn item_id(&self) -> ID {
        ID(self.0.item_id.to_string())
    }
    /// The item's event sequence number of this change.
    async fn sequence_number(&self) -> u64 {
        self.0.sequence_number
    }
    /// Why: initial, received, sold, damaged, returned, correction, other, cycle_count,
    /// allocation_fulfilled. A count (`inventorySetOnHand`) is `cycle_count` or `correction`,
    /// with the difference it found as `delta` (0 when the books were right).
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    /// Change of on-hand units (negative for removals).
    async fn delta(&self) -> i64 {
        self.0.delta
    }
    /// On-hand units after the change.
    async fn quantity_after(&self) -> i64 {
        self.0.quantity_after
    }
    /// The caller's reference (delivery note, order, allocation id), if any.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    /// Who made the change.
    async fn actor(&self) -> &str {
        &self.0.actor
    }
    /// Correlation id of the request that made the change.
    async fn correlation_id(&self) -> &str {
        &self.0.correlation_id
    }
    /// When the change happened.
    async fn occurred_at(&self) -> DateTime<Utc> {
        time(self.0.occurred_at)
    }
}

/// Stock movements of one item on one UTC day.
pub struct StockMovementRow(pub MovementRow);

/// Stock movements of one item on one UTC day.
#[Object]
impl StockMovementRow {
    /// Stable id for client caches: `<itemId>:<day>`.
    async fn id(&self) -> ID {
        ID(format!("{}:{}", self.0.item_id, self.0.day))
    }
    /// The item.
    async fn item_id(&self) -> ID {
        ID(self.0.item_id.to_string())
    }
    /// The item's SKU.
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    /// The item's warehouse.
    async fn warehouse_id(&self) -> ID {
        ID(self.0.warehouse_id.to_string())
    }
    /// The UTC day, `YYYY-MM-DD`.
    async fn day(&self) -> &str {
        &self.0.day
    }
    /// Units added (received, returned, positive corrections and counts, initial stock).
    async fn received(&self) -> i64 {
        self.0.received
    }
    /// Units removed other than by fulfilment (sold, damaged, negative corrections and counts).
    async fn removed(&self) -> i64 {
        self.0.removed
    }
    /// Units reserved by new allocations.
    async fn allocated(&self) -> i64 {
        self.0.allocated
    }
    /// Units released by cancelled allocations.
    async fn released(&self) -> i64 {
        self.0.released
    }
    /// Units that left with fulfilled allocations.
    async fn fulfilled(&self) -> i64 {
        self.0.fulfilled
    }
    /// Net change of on-hand units: received − removed − fulfilled.
    async fn net(&self) -> i64 {
        self.0.net
    }
}

/// Totals over the rows of a stock movement report.
#[derive(SimpleObject, Default)]
pub struct StockMovementTotals {
    /// Sum of `received`.
    pub received: i64,
    /// Sum of `removed`.
    pub removed: i64,
    /// Sum of `allocated`.
    pub allocated: i64,
    /// Sum of `released`.
    pub released: i64,
    /// Sum of `fulfilled`.
    pub fulfilled: i64,
    /// Sum of `net`.
    pub net: i64,
}

/// Stock movements per item per day over a period, with totals.
pub struct StockMovementReport {
    pub rows: Vec<MovementRow>,
}

/// Stock movements per item per day over a period, with totals.
#[Object]
impl StockMovementReport {
    /// One row per item per day with any movement, by day then SKU.
    async fn rows(&self) -> Vec<StockMovementRow> {
        self.rows.iter().cloned().map(StockMovementRow).collect()
    }
    /// The rows summed (for a warehouse: the warehouse's movements).
    async fn totals(&self) -> StockMovementTotals {
        let mut totals = StockMovementTotals::default();
        for row in &self.rows {
            totals.received += row.received;
            totals.removed += row.removed;
            totals.allocated += row.allocated;
            totals.released += row.released;
            totals.fulfilled += row.fulfilled;
            totals.net += row.net;
        }
        totals
    }
}

/// The kinds of aggregate that have event streams.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::AggregateType")]
pub enum AggregateType {
    /// A warehouse's stream.
    Warehouse,
    /// An inventory item's stream.
    InventoryItem,
    /// An allocation's stream.
    Allocation,
    /// A transfer's stream.
    Transfer,
}

/// Who caused an event and in answer to what.
#[derive(SimpleObject)]
pub struct EventMetadata {
    /// Who issued the command.
    pub actor: String,
    /// Correlation id of the request (the `X-Correlation-Id` header, or one made up).
    pub correlation_id: String,
    /// The event or message that caused this one, if any.
    pub causation_id: Option<String>,
    /// The mutation's idempotency key, if one was sent.
    pub idempotency_key: Option<String>,
    /// The service instance that wrote the event.
    pub source: String,
}

/// A stored event: the immutable audit trail.
pub struct Event(pub EventEnvelope);

/// A stored event: the immutable audit trail.
#[Object]
impl Event {
    /// Unique event id (UUID v7).
    async fn event_id(&self) -> ID {
        ID(self.0.event_id.to_string())
    }
    /// The aggregate whose stream holds the event.
    async fn aggregate_id(&self) -> ID {
        ID(self.0.aggregate_id.to_string())
    }
    /// `Warehouse`, `InventoryItem` or `Allocation`.
    async fn aggregate_type(&self) -> &str {
        self.0.aggregate_type.as_str()
    }
    /// Position in the aggregate's stream: 1, 2, 3…
    async fn sequence_number(&self) -> u64 {
        self.0.sequence_number
    }
    /// Past-tense event name, e.g. `StockLevelChanged`.
    async fn event_type(&self) -> &str {
        &self.0.event_type
    }
    /// Version of the event's data shape.
    async fn schema_version(&self) -> u32 {
        self.0.schema_version
    }
    /// The event's data.
    async fn data(&self) -> Json<serde_json::Value> {
        Json(self.0.event_data.clone())
    }
    /// Who caused it and in answer to what.
    async fn metadata(&self) -> EventMetadata {
        let m = &self.0.metadata;
        EventMetadata {
            actor: m.actor.clone(),
            correlation_id: m.correlation_id.clone(),
            causation_id: m.causation_id.clone(),
            idempotency_key: m.idempotency_key.clone(),
            source: m.source.clone(),
        }
    }
    /// When it was committed.
    async fn occurred_at(&self) -> DateTime<Utc> {
        time(self.0.timestamp)
    }
}

/// How long an alert's `item` waits for the read model to apply the alert.
const ALERT_ITEM_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Available stock of an item fell to or below its reorder threshold.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct LowStockAlert {
    /// Stable id for client caches: the id of the `LowStockThresholdReached` event.
    pub id: ID,
    /// Id of the item running low.
    pub item_id: ID,
    /// Its SKU.
    pub sku: String,
    /// Its warehouse.
    pub warehouse_id: ID,
    /// Units available when the threshold was reached.
    pub available: i64,
    /// The reorder threshold that was reached.
    pub threshold: i64,
    /// Units to reorder to get back above the threshold (at least the reorder quantity).
    pub suggested_reorder_quantity: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The item's event sequence number of the alert, for de-duplication.
    pub sequence_number: u64,
}

#[ComplexObject]
impl LowStockAlert {
    /// The item running low, as its read model shows it once the alert is applied there (or
    /// later), so a client cache the alert updates never goes back to the stock before it.
    async fn item(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<InventoryItem>> {
        let Ok(id) = Uuid::parse_str(self.item_id.as_str()) else {
            return Ok(None);
        };
        // An alert travels ahead of the projection (subscribers hear of it first), so the row
        // may not hold it yet: wait for it a little (batched through the item loader).
        let deadline = std::time::Instant::now() + ALERT_ITEM_WAIT;
        loop {
            let item = load_item(ctx, id).await?;
            let caught_up = item
                .as_ref()
                .is_some_and(|i| i.0.version >= self.sequence_number);
            if caught_up || std::time::Instant::now() >= deadline {
                return Ok(item);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
