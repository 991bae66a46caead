//! Inventory items: current stock, history and movement report queries, and the stock
//! commands (create, adjust, reorder settings, deactivate); counts and bulk adjustments are
//! `stocktake`'s.

use super::cursor::CursorKind;
use super::page::{
    paginate, Count, InventoryHistoryEntryConnection, InventoryItemConnection, PageArgs,
};
use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, NaiveDate, Utc};

use super::roles::RoleGuard;
use super::scope::{named_aggregate, visible, Within};
use super::types::{InventoryHistoryEntry, InventoryItem, StockMovementReport, UserError};
use super::{
    bad_argument, infrastructure, mutate, parse_id, query_id, AppContext, MutationPayload,
};
use crate::application::{AdjustStock, CreateItem, Outcome};
use crate::auth::Role;
use crate::domain::item::ItemCommand;
use crate::projection::{HistoryEntry, ItemView};

/// A page of items, of the warehouse named or all the caller may see; `inventoryItems` and
/// `Warehouse.items` share it.
pub async fn items_page(
    ctx: &Context<'_>,
    warehouse_id: Option<uuid::Uuid>,
    low_stock_only: bool,
    args: PageArgs,
) -> async_graphql::Result<InventoryItemConnection> {
    let app = ctx.data::<AppContext>()?;
    let within = Within::for_request(ctx, warehouse_id)?;
    let page = paginate(
        args,
        CursorKind::Item,
        |i: &ItemView| i.id,
        |keys| {
            within.page(
                keys,
                |i: &ItemView| i.id,
                |w, keys| app.read.items(w, low_stock_only, keys),
            )
        },
    )
    .await?;
    let count = Count::Items {
        within,
        low_stock_only,
    };
    Ok(InventoryItemConnection::from_page(
        page,
        InventoryItem,
        count,
    ))
}

#[derive(Default)]
pub struct InventoryQuery;

#[Object]
impl InventoryQuery {
    /// An item by id, or null. Reflects commits within milliseconds (under 100 ms under normal
    /// load); a mutation's own payload is exact at once. For a principal scoped to
    /// warehouses, an item outside them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn inventory_item(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item's id.")] id: ID,
    ) -> async_graphql::Result<Option<InventoryItem>> {
        let id = query_id("id", &id)?;
        let app = ctx.data::<AppContext>()?;
        let item = app.read.item(id).await.map_err(infrastructure)?;
        if let Some(item) = &item {
            visible(ctx, item.warehouse_id)?;
        }
        Ok(item.map(InventoryItem))
    }

    /// An item by its SKU in a warehouse, or null. For a principal scoped to warehouses, a
    /// warehouse outside them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn inventory_item_by_sku(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The warehouse.")] warehouse_id: ID,
        #[graphql(desc = "The SKU, as given when the item was created.")] sku: String,
    ) -> async_graphql::Result<Option<InventoryItem>> {
        let warehouse_id = query_id("warehouseId", &warehouse_id)?;
        visible(ctx, warehouse_id)?;
        if sku.len() > 256 {
            return Ok(None);
        }
        let app = ctx.data::<AppContext>()?;
        Ok(app
            .read
            .item_by_sku(warehouse_id, &sku)
            .await
            .map_err(infrastructure)?
            .map(InventoryItem))
    }

    /// Items in creation order, optionally of one warehouse and only those low on stock. A
    /// principal scoped to warehouses lists only theirs (a `warehouseId` outside them is
    /// FORBIDDEN). Needs the `viewer` role.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn inventory_items(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only items of this warehouse.")] warehouse_id: Option<ID>,
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
        let warehouse_id = warehouse_id
            .map(|w| query_id("warehouseId", &w))
            .transpose()?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        items_page(ctx, warehouse_id, low_stock_only, args).await
    }

    /// Every change of an item's on-hand stock, and every count of it, oldest first,
    /// optionally within [from, to).
    /// For a principal scoped to warehouses, an item outside them (or not known to lie in
    /// one of them) is FORBIDDEN. Needs the `viewer` role.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn inventory_history(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item.")] item_id: ID,
        #[graphql(desc = "Only changes at or after this time.")] from: Option<DateTime<Utc>>,
        #[graphql(desc = "Only changes before this time.")] to: Option<DateTime<Utc>>,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<InventoryHistoryEntryConnection> {
        let item_id = query_id("itemId", &item_id)?;
        named_aggregate(ctx, item_id).await?;
        let from = from.map(|t| t.timestamp_millis());
        let to = to.map(|t| t.timestamp_millis());
        let app = ctx.data::<AppContext>()?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = paginate(
            args,
            CursorKind::History,
            |h: &HistoryEntry| h.sequence_number,
            |keys| app.read.history(item_id, from, to, keys),
        )
        .await?;
        Ok(InventoryHistoryEntryConnection::from_page(
            page,
            InventoryHistoryEntry,
            Count::History { item_id, from, to },
        ))
    }

    /// Units received, removed, allocated, released, fulfilled and net per item per UTC day,
    /// for a warehouse and/or an item, over the days from..=to. For a principal scoped to
    /// warehouses, a warehouse or item outside them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::list(crate::graphql::limits::REPORT_ROWS, child_complexity)"
    )]
    async fn stock_movement_report(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only items of this warehouse.")] warehouse_id: Option<ID>,
        #[graphql(desc = "Only this item.")] item_id: Option<ID>,
        #[graphql(desc = "First day (UTC) included.")] from: Option<NaiveDate>,
        #[graphql(desc = "Last day (UTC) included.")] to: Option<NaiveDate>,
    ) -> async_graphql::Result<StockMovementReport> {
        let warehouse_id = warehouse_id
            .map(|w| query_id("warehouseId", &w))
            .transpose()?;
        let item_id = item_id.map(|i| query_id("itemId", &i)).transpose()?;
        if warehouse_id.is_none() && item_id.is_none() {
            return Err(bad_argument("give a warehouseId, an itemId or both"));
        }
        if let Some(warehouse_id) = warehouse_id {
            visible(ctx, warehouse_id)?;
        }
        if let Some(item_id) = item_id {
            named_aggregate(ctx, item_id).await?;
        }
        let app = ctx.data::<AppContext>()?;
        let mut rows = app
            .read
            .movements(
                warehouse_id,
                item_id,
                from.map(|d| d.to_string()),
                to.map(|d| d.to_string()),
            )
            .await
            .map_err(infrastructure)?;
        // Already within the scope by the checks above; kept to the scope row by row too.
        rows.retain(|row| super::scope::sees(ctx, row.warehouse_id));
        Ok(StockMovementReport { rows })
    }
}

/// Why stock is adjusted. RECEIVED and RETURNED need a positive delta, SOLD and DAMAGED a
/// negative one; CORRECTION and OTHER may go either way.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::item::AdjustmentReason")]
pub enum AdjustmentReason {
    /// Goods arrived.
    Received,
    /// Goods sold outside an allocation.
    Sold,
    /// Goods damaged or lost.
    Damaged,
    /// Goods returned by a customer.
    Returned,
    /// A stock count differed from the books.
    Correction,
    /// Anything else; say what in `reference`.
    Other,
}

/// Create an inventory item: one SKU in one active warehouse.
#[derive(InputObject)]
pub struct InventoryItemCreateInput {
    /// The warehouse; it must be active.
    warehouse_id: ID,
    /// Unique within the warehouse: 1–64 letters, digits, `-`, `_`, `.` or `/`.
    sku: String,
    /// The catalogue's product id, 1–100 characters.
    product_id: String,
    /// Units on hand to start with, 0 to 1,000,000,000.
    #[graphql(default = 0)]
    initial_quantity: i64,
    /// Low-stock alert threshold on available units (default 0).
    #[graphql(default = 0)]
    reorder_threshold: i64,
    /// Units to reorder when low (default 0).
    #[graphql(default = 0)]
    reorder_quantity: i64,
    /// Send the same key again to retry safely: the mutation applies once and returns the
    /// first result.
    idempotency_key: Option<String>,
}

/// Change an item's on-hand stock.
#[derive(InputObject)]
pub struct InventoryAdjustInput {
    /// The item.
    item_id: ID,
    /// Units to add (positive) or remove (negative); never zero.
    delta: i64,
    /// Why.
    reason: AdjustmentReason,
    /// Your reference (delivery note, ticket), up to 200 characters.
    reference: Option<String>,
    /// Apply only if the item is still at this version (its `version` field), else
    /// VERSION_CONFLICT.
    expected_version: Option<u64>,
    /// Retry key, as for `inventoryItemCreate`.
    idempotency_key: Option<String>,
}

/// Change an item's reorder threshold and/or quantity; omitted fields stay as they are.
#[derive(InputObject)]
pub struct InventoryItemUpdateReorderSettingsInput {
    /// The item.
    item_id: ID,
    /// New low-stock threshold on available units.
    reorder_threshold: Option<i64>,
    /// New reorder quantity.
    reorder_quantity: Option<i64>,
    /// Retry key, as for `inventoryItemCreate`.
    idempotency_key: Option<String>,
}

/// Deactivate an item: no more adjustments or new allocations; open allocations may still be
/// cancelled or fulfilled.
#[derive(InputObject)]
pub struct InventoryItemDeactivateInput {
    /// The item.
    item_id: ID,
    /// Why, for the audit trail (1–500 characters).
    reason: String,
    /// Retry key, as for `inventoryItemCreate`.
    idempotency_key: Option<String>,
}

/// The result of an inventory item mutation.
#[derive(SimpleObject)]
pub struct InventoryItemPayload {
    /// The item as it is right after this mutation; null if it failed.
    inventory_item: Option<InventoryItem>,
    /// Why the mutation changed nothing; empty on success.
    user_errors: Vec<UserError>,
}

impl MutationPayload for InventoryItemPayload {
    fn from_result(result: Result<Outcome, Vec<UserError>>) -> Self {
        match result {
            Ok(Outcome::Item(entity))
            | Ok(Outcome::Allocation { item: entity, .. })
            | Ok(Outcome::Transfer { source: entity, .. }) => InventoryItemPayload {
                inventory_item: Some(InventoryItem(ItemView::from(&entity))),
                user_errors: vec![],
            },
            Ok(Outcome::Warehouse(_) | Outcome::Bulk(_)) => InventoryItemPayload {
                inventory_item: None,
                user_errors: vec![],
            },
            Err(user_errors) => InventoryItemPayload {
                inventory_item: None,
                user_errors,
            },
        }
    }
}

/// Runs a command on an existing item (`itemId`); a malformed id is a user error.
/// `inventorySetOnHand` shares it.
pub(super) async fn change(
    ctx: &Context<'_>,
    item_id: &ID,
    idempotency_key: Option<String>,
    command: ItemCommand,
) -> async_graphql::Result<InventoryItemPayload> {
    mutate(
        ctx,
        idempotency_key,
        parse_id("itemId", item_id),
        |commands, command_ctx, item_id| async move {
            commands
                .change_item(&command_ctx, item_id, None, command)
                .await
        },
    )
    .await
}

#[derive(Default)]
pub struct InventoryMutation;

#[Object]
impl InventoryMutation {
    /// Create an item. Fails with DUPLICATE_SKU if the warehouse has the SKU already, INACTIVE
    /// or NOT_FOUND for the warehouse.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn inventory_item_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: InventoryItemCreateInput,
    ) -> async_graphql::Result<InventoryItemPayload> {
        mutate(
            ctx,
            input.idempotency_key,
            parse_id("warehouseId", &input.warehouse_id),
            |commands, command_ctx, warehouse_id| async move {
                let command = CreateItem {
                    warehouse_id,
                    sku: input.sku,
                    product_id: input.product_id,
                    initial_quantity: input.initial_quantity,
                    reorder_threshold: input.reorder_threshold,
                    reorder_quantity: input.reorder_quantity,
                };
                commands.create_item(&command_ctx, command).await
            },
        )
        .await
    }

    /// Add or remove stock. Fails with INSUFFICIENT_STOCK if it would take on-hand below what
    /// is allocated, VERSION_CONFLICT if `expectedVersion` is stale.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn inventory_adjust(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: InventoryAdjustInput,
    ) -> async_graphql::Result<InventoryItemPayload> {
        mutate(
            ctx,
            input.idempotency_key,
            parse_id("itemId", &input.item_id),
            |commands, command_ctx, item_id| async move {
                let command = AdjustStock {
                    item_id,
                    delta: input.delta,
                    reason: input.reason.into(),
                    reference: input.reference,
                    expected_version: input.expected_version,
                };
                commands.adjust_stock(&command_ctx, command).await
            },
        )
        .await
    }

    /// Change the reorder threshold or quantity. Lowering available to or below a new
    /// threshold raises a low-stock alert.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn inventory_item_update_reorder_settings(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")]
        input: InventoryItemUpdateReorderSettingsInput,
    ) -> async_graphql::Result<InventoryItemPayload> {
        let command = ItemCommand::UpdateReorderSettings {
            reorder_threshold: input.reorder_threshold,
            reorder_quantity: input.reorder_quantity,
        };
        change(ctx, &input.item_id, input.idempotency_key, command).await
    }

    /// Deactivate an item. Needs the `admin` role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn inventory_item_deactivate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: InventoryItemDeactivateInput,
    ) -> async_graphql::Result<InventoryItemPayload> {
        let command = ItemCommand::DeactivateItem {
            reason: input.reason,
        };
        change(ctx, &input.item_id, input.idempotency_key, command).await
    }
}
