//! Transfers: stock moving between warehouses. Each mutation commits the transfer and the
//! items it changes together, so the payload carries all three as they are right after the
//! commit. A transfer is listed under both its warehouses.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::cursor::CursorKind;
use super::page::{paginate, Count, PageArgs, TransferConnection};
use super::roles::RoleGuard;
use super::scope::{named_aggregate, Within};
use super::types::{time, InventoryItem, UserError};
use super::{infrastructure, mutate, parse_id, query_id, AppContext, MutationPayload};
use crate::application::{CreateTransfer, Outcome};
use crate::auth::Role;
use crate::domain::transfer::TransferCommand;
use crate::projection::{ItemView, TransferFilter, TransferView};

/// Where a transfer is in its life.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::transfer::TransferStatus")]
pub enum TransferStatus {
    /// The stock is reserved at the source.
    Created,
    /// The stock left the source; it is incoming at the destination.
    Shipped,
    /// The stock arrived (perhaps short: see `quantityReceived`).
    Received,
    /// Cancelled before shipping; the reservation was released.
    Cancelled,
}

/// Stock moving from an item at one warehouse to the same SKU at another.
pub struct Transfer(pub TransferView);

/// Stock moving from an item at one warehouse to the same SKU at another.
#[Object]
impl Transfer {
    /// Globally unique id (UUID).
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Where the transfer is in its life.
    async fn status(&self) -> TransferStatus {
        self.0.status.into()
    }
    /// The item the stock leaves.
    async fn from_item_id(&self) -> ID {
        ID(self.0.from_item_id.to_string())
    }
    /// The item the stock goes to: the same SKU at the destination.
    async fn to_item_id(&self) -> ID {
        ID(self.0.to_item_id.to_string())
    }
    /// The warehouse the stock leaves.
    async fn from_warehouse_id(&self) -> ID {
        ID(self.0.from_warehouse_id.to_string())
    }
    /// The warehouse the stock goes to.
    async fn to_warehouse_id(&self) -> ID {
        ID(self.0.to_warehouse_id.to_string())
    }
    /// The SKU moved.
    async fn sku(&self) -> &str {
        &self.0.sku
    }
    /// Units reserved, then shipped.
    async fn quantity(&self) -> i64 {
        self.0.quantity
    }
    /// Units that arrived, once received; null before.
    async fn quantity_received(&self) -> Option<i64> {
        self.0.quantity_received
    }
    /// Units shipped that did not arrive, once received; null before.
    async fn shortfall(&self) -> Option<i64> {
        self.0.quantity_received.map(|r| self.0.quantity - r)
    }
    /// The caller's reference (a transfer order's number), if given.
    async fn reference(&self) -> Option<&str> {
        self.0.reference.as_deref()
    }
    /// Why it was cancelled, once cancelled.
    async fn cancel_reason(&self) -> Option<&str> {
        self.0.cancel_reason.as_deref()
    }
    /// Sequence number of the transfer's last event.
    async fn version(&self) -> u64 {
        self.0.version
    }
    /// When the transfer was created.
    async fn created_at(&self) -> DateTime<Utc> {
        time(self.0.created_at)
    }
    /// When the transfer last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        time(self.0.updated_at)
    }
}

/// A page of transfers under a filter, in the warehouse named or all the caller may see;
/// `transfers` and `InventoryItem.transfers` share it.
pub async fn transfers_page(
    ctx: &Context<'_>,
    mut filter: TransferFilter,
    warehouse_id: Option<uuid::Uuid>,
    args: PageArgs,
) -> async_graphql::Result<TransferConnection> {
    let app = ctx.data::<AppContext>()?;
    filter.warehouses = Within::for_request(ctx, warehouse_id)?.ids();
    let page = paginate(
        args,
        CursorKind::Transfer,
        |t: &TransferView| t.id,
        |keys| app.read.transfers(filter.clone(), keys),
    )
    .await?;
    Ok(TransferConnection::from_page(
        page,
        Transfer,
        Count::Transfers { filter },
    ))
}

#[derive(Default)]
pub struct TransferQuery;

#[Object]
impl TransferQuery {
    /// A transfer by id, or null. For a principal scoped to warehouses, one touching none of
    /// them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn transfer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The transfer's id.")] id: ID,
    ) -> async_graphql::Result<Option<Transfer>> {
        let id = query_id("id", &id)?;
        let app = ctx.data::<AppContext>()?;
        let transfer = app.read.transfer(id).await.map_err(infrastructure)?;
        if let Some(transfer) = &transfer {
            let principal = crate::auth::principal(ctx);
            if !principal.sees(transfer.from_warehouse_id) {
                super::scope::visible(ctx, transfer.to_warehouse_id)?;
            }
        }
        Ok(transfer.map(Transfer))
    }

    /// Transfers in creation order, leaving or entering a warehouse, optionally in one
    /// status. A principal scoped to warehouses lists only those touching theirs.
    /// Needs the `viewer` role.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn transfers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only transfers leaving or entering this warehouse.")]
        warehouse_id: Option<ID>,
        #[graphql(desc = "Only transfers in this status.")] status: Option<TransferStatus>,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<TransferConnection> {
        let warehouse_id = warehouse_id
            .map(|w| query_id("warehouseId", &w))
            .transpose()?;
        let filter = TransferFilter {
            status: status.map(Into::into),
            ..TransferFilter::default()
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        transfers_page(ctx, filter, warehouse_id, args).await
    }
}

/// An item's transfers (leaving or entering it), for `InventoryItem.transfers`.
pub async fn item_transfers(
    ctx: &Context<'_>,
    item: &ItemView,
    status: Option<TransferStatus>,
    args: PageArgs,
) -> async_graphql::Result<TransferConnection> {
    named_aggregate(ctx, item.id).await?;
    let filter = TransferFilter {
        item_id: Some(item.id),
        status: status.map(Into::into),
        ..TransferFilter::default()
    };
    transfers_page(ctx, filter, Some(item.warehouse_id), args).await
}

/// Move stock of an item to another warehouse.
#[derive(InputObject)]
pub struct TransferCreateInput {
    /// The item the stock leaves; it and its warehouse must be active.
    from_item_id: ID,
    /// The warehouse the stock goes to (active, not the source's). Its item of the same SKU
    /// receives it, created (with the source's reorder settings) if there is none.
    to_warehouse_id: ID,
    /// Units to move, at least 1 and at most the source's available stock.
    quantity: i64,
    /// The caller's reference (a transfer order's number), at most 200 characters.
    reference: Option<String>,
    /// Send the same key again to retry safely: the mutation applies once and returns the
    /// first result.
    idempotency_key: Option<String>,
}

/// Ship a created transfer: the stock leaves the source and is incoming at the destination.
#[derive(InputObject)]
pub struct TransferShipInput {
    /// The transfer.
    id: ID,
    /// Retry key, as for `transferCreate`.
    idempotency_key: Option<String>,
}

/// Receive a shipped transfer.
#[derive(InputObject)]
pub struct TransferReceiveInput {
    /// The transfer.
    id: ID,
    /// Units that arrived: 0 to the quantity shipped; what is missing is recorded as the
    /// transfer's shortfall.
    quantity_received: i64,
    /// Retry key, as for `transferCreate`.
    idempotency_key: Option<String>,
}

/// Cancel a transfer before it ships, releasing its reservation.
#[derive(InputObject)]
pub struct TransferCancelInput {
    /// The transfer.
    id: ID,
    /// Why, for the audit trail (1–500 characters).
    reason: String,
    /// Retry key, as for `transferCreate`.
    idempotency_key: Option<String>,
}

/// The result of a transfer mutation.
#[derive(SimpleObject)]
pub struct TransferPayload {
    /// The transfer right after this mutation; null if it failed.
    transfer: Option<Transfer>,
    /// The source item right after this mutation; null if it failed.
    from_item: Option<InventoryItem>,
    /// The destination item right after this mutation; null if it failed.
    to_item: Option<InventoryItem>,
    /// Why the mutation changed nothing; empty on success.
    user_errors: Vec<UserError>,
}

impl MutationPayload for TransferPayload {
    fn from_result(result: Result<Outcome, Vec<UserError>>) -> Self {
        match result {
            Ok(Outcome::Transfer {
                transfer,
                source,
                destination,
            }) => TransferPayload {
                transfer: Some(Transfer(TransferView::from(&transfer))),
                from_item: Some(InventoryItem(ItemView::from(&source))),
                to_item: Some(InventoryItem(ItemView::from(&destination))),
                user_errors: vec![],
            },
            Ok(_) => TransferPayload {
                transfer: None,
                from_item: None,
                to_item: None,
                user_errors: vec![],
            },
            Err(user_errors) => TransferPayload {
                transfer: None,
                from_item: None,
                to_item: None,
                user_errors,
            },
        }
    }
}

async fn change(
    ctx: &Context<'_>,
    id: &ID,
    idempotency_key: Option<String>,
    command: TransferCommand,
) -> async_graphql::Result<TransferPayload> {
    mutate(
        ctx,
        idempotency_key,
        parse_id("id", id),
        |commands, command_ctx, id| async move {
            commands.change_transfer(&command_ctx, id, command).await
        },
    )
    .await
}

#[derive(Default)]
pub struct TransferMutation;

#[Object]
impl TransferMutation {
    /// Reserve stock at the source for a transfer to another warehouse. Fails with
    /// INSUFFICIENT_STOCK when quantity exceeds available — under any concurrency, with
    /// allocations too, stock is never reserved twice. Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn transfer_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: TransferCreateInput,
    ) -> async_graphql::Result<TransferPayload> {
        let ids = parse_id("fromItemId", &input.from_item_id).and_then(|from| {
            parse_id("toWarehouseId", &input.to_warehouse_id).map(|to| (from, to))
        });
        mutate(
            ctx,
            input.idempotency_key,
            ids,
            |commands, command_ctx, (from_item_id, to_warehouse_id)| async move {
                let command = CreateTransfer {
                    from_item_id,
                    to_warehouse_id,
                    quantity: input.quantity,
                    reference: input.reference,
                };
                commands.create_transfer(&command_ctx, command).await
            },
        )
        .await
    }

    /// Ship a created transfer: the source's on hand and allocated fall by its quantity, the
    /// destination's incoming rises by it. Anything but CREATED is INVALID_STATE_TRANSITION.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn transfer_ship(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: TransferShipInput,
    ) -> async_graphql::Result<TransferPayload> {
        change(
            ctx,
            &input.id,
            input.idempotency_key,
            TransferCommand::ShipTransfer,
        )
        .await
    }

    /// Receive a shipped transfer: the destination's on hand rises by what arrived, its
    /// incoming falls by what was shipped. Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn transfer_receive(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: TransferReceiveInput,
    ) -> async_graphql::Result<TransferPayload> {
        let command = TransferCommand::ReceiveTransfer {
            quantity_received: input.quantity_received,
        };
        change(ctx, &input.id, input.idempotency_key, command).await
    }

    /// Cancel a created transfer and release its reservation; once shipped it can only be
    /// received. Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn transfer_cancel(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: TransferCancelInput,
    ) -> async_graphql::Result<TransferPayload> {
        let command = TransferCommand::CancelTransfer {
            reason: input.reason,
        };
        change(ctx, &input.id, input.idempotency_key, command).await
    }
}
