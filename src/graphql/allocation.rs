//! Allocations: stock reserved for order lines. Each mutation commits the allocation and its
//! item together, so the payload carries both as they are right after the commit.

use super::cursor::CursorKind;
use super::page::{paginate, AllocationConnection, Count, PageArgs};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::roles::RoleGuard;
use super::scope::{named_aggregate, visible, Within};
use super::types::{Allocation, AllocationStatus, InventoryItem, UserError};
use super::{
    bad_argument, infrastructure, mutate, parse_id, query_id, AppContext, MutationPayload,
};
use crate::application::{CreateAllocation, Outcome};
use crate::auth::Role;
use crate::domain::allocation::AllocationCommand;
use crate::domain::validate::ORDER_ID_MAX;
use crate::projection::{AllocationFilter, AllocationView, ItemView};

/// A page of allocations under a filter, of the warehouse named or all the caller may see;
/// `allocations` and `InventoryItem.allocations` share it.
pub async fn allocations_page(
    ctx: &Context<'_>,
    filter: AllocationFilter,
    warehouse_id: Option<uuid::Uuid>,
    args: PageArgs,
) -> async_graphql::Result<AllocationConnection> {
    let app = ctx.data::<AppContext>()?;
    let within = Within::for_request(ctx, warehouse_id)?;
    let page = paginate(
        args,
        CursorKind::Allocation,
        |a: &AllocationView| a.id,
        |keys| {
            within.page(
                keys,
                |a: &AllocationView| a.id,
                |warehouse_id, keys| {
                    let filter = AllocationFilter {
                        warehouse_id,
                        ..filter.clone()
                    };
                    app.read.allocations(filter, keys)
                },
            )
        },
    )
    .await?;
    Ok(AllocationConnection::from_page(
        page,
        Allocation,
        Count::Allocations { filter, within },
    ))
}

#[derive(Default)]
pub struct AllocationQuery;

#[Object]
impl AllocationQuery {
    /// An allocation by id, or null. For a principal scoped to warehouses, one outside them is
    /// FORBIDDEN. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn allocation(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The allocation's id.")] id: ID,
    ) -> async_graphql::Result<Option<Allocation>> {
        let id = query_id("id", &id)?;
        let app = ctx.data::<AppContext>()?;
        let allocation = app.read.allocation(id).await.map_err(infrastructure)?;
        if let Some(allocation) = &allocation {
            visible(ctx, allocation.warehouse_id)?;
        }
        Ok(allocation.map(Allocation))
    }

    /// Allocations in creation order, filtered by order, item, status and/or warehouse. A
    /// principal scoped to warehouses lists only theirs (a `warehouseId` or `itemId` outside
    /// them is FORBIDDEN). Needs the `viewer` role.
    #[allow(clippy::too_many_arguments)]
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn allocations(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only allocations of this order.")] order_id: Option<String>,
        #[graphql(desc = "Only allocations of this item.")] item_id: Option<ID>,
        #[graphql(desc = "Only allocations in this status.")] status: Option<AllocationStatus>,
        #[graphql(desc = "Only allocations of this warehouse.")] warehouse_id: Option<ID>,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<AllocationConnection> {
        if order_id
            .as_ref()
            .is_some_and(|o| o.chars().count() > ORDER_ID_MAX)
        {
            return Err(bad_argument(format!(
                "orderId is longer than {ORDER_ID_MAX} characters"
            )));
        }
        let item_id = item_id.map(|i| query_id("itemId", &i)).transpose()?;
        let mut warehouse_id = warehouse_id
            .map(|w| query_id("warehouseId", &w))
            .transpose()?;
        if let Some(item_id) = item_id {
            // A scoped caller's item must be one of its warehouses'; its allocations are there.
            let item_warehouse = named_aggregate(ctx, item_id).await?;
            warehouse_id = warehouse_id.or(item_warehouse);
        }
        let filter = AllocationFilter {
            order_id: order_id.map(|o| o.trim().to_owned()),
            item_id,
            status: status.map(Into::into),
            warehouse_id: None,
        };
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        allocations_page(ctx, filter, warehouse_id, args).await
    }
}

/// Reserve stock of an item for an order line.
#[derive(InputObject)]
pub struct AllocationCreateInput {
    /// The caller's order id, 1–100 characters.
    order_id: String,
    /// The item to reserve from; it and its warehouse must be active.
    item_id: ID,
    /// Units to reserve, at least 1 and at most the item's available stock.
    quantity: i64,
    /// When the reservation lapses unless confirmed first: in the future, at most 30 days
    /// ahead (else INVALID_INPUT on `expiresAt`). At that moment the service cancels a still
    /// CREATED allocation with reason `expired`, releasing its stock, within a few seconds;
    /// from then on it can no longer be confirmed. Omit it for a reservation that never lapses.
    expires_at: Option<DateTime<Utc>>,
    /// Send the same key again to retry safely: the mutation applies once and returns the
    /// first result.
    idempotency_key: Option<String>,
}

/// Confirm a created allocation.
#[derive(InputObject)]
pub struct AllocationConfirmInput {
    /// The allocation.
    id: ID,
    /// Retry key, as for `allocationCreate`.
    idempotency_key: Option<String>,
}

/// Cancel a created or confirmed allocation, releasing its stock.
#[derive(InputObject)]
pub struct AllocationCancelInput {
    /// The allocation.
    id: ID,
    /// Why, for the audit trail (1–500 characters).
    reason: String,
    /// Retry key, as for `allocationCreate`.
    idempotency_key: Option<String>,
}

/// Fulfil a confirmed allocation: its stock leaves the warehouse.
#[derive(InputObject)]
pub struct AllocationFulfillInput {
    /// The allocation.
    id: ID,
    /// Retry key, as for `allocationCreate`.
    idempotency_key: Option<String>,
}

/// The result of an allocation mutation.
#[derive(SimpleObject)]
pub struct AllocationPayload {
    /// The allocation right after this mutation; null if it failed.
    allocation: Option<Allocation>,
    /// Its item right after this mutation (stock reserved, released or removed); null if it
    /// failed.
    inventory_item: Option<InventoryItem>,
    /// Why the mutation changed nothing; empty on success.
    user_errors: Vec<UserError>,
}

impl MutationPayload for AllocationPayload {
    fn from_result(result: Result<Outcome, Vec<UserError>>) -> Self {
        match result {
            Ok(Outcome::Allocation { allocation, item }) => AllocationPayload {
                allocation: Some(Allocation(AllocationView::from(&allocation))),
                inventory_item: Some(InventoryItem(ItemView::from(&item))),
                user_errors: vec![],
            },
            Ok(_) => AllocationPayload {
                allocation: None,
                inventory_item: None,
                user_errors: vec![],
            },
            Err(user_errors) => AllocationPayload {
                allocation: None,
                inventory_item: None,
                user_errors,
            },
        }
    }
}

async fn change(
    ctx: &Context<'_>,
    id: &ID,
    idempotency_key: Option<String>,
    command: AllocationCommand,
) -> async_graphql::Result<AllocationPayload> {
    mutate(
        ctx,
        idempotency_key,
        parse_id("id", id),
        |commands, command_ctx, id| async move {
            commands.change_allocation(&command_ctx, id, command).await
        },
    )
    .await
}

#[derive(Default)]
pub struct AllocationMutation;

#[Object]
impl AllocationMutation {
    /// Reserve stock. Fails with INSUFFICIENT_STOCK when quantity exceeds available — under
    /// any concurrency, stock is never allocated twice.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn allocation_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: AllocationCreateInput,
    ) -> async_graphql::Result<AllocationPayload> {
        mutate(
            ctx,
            input.idempotency_key,
            parse_id("itemId", &input.item_id),
            |commands, command_ctx, item_id| async move {
                let command = CreateAllocation {
                    order_id: input.order_id,
                    item_id,
                    quantity: input.quantity,
                    expires_at: input.expires_at.map(|at| at.timestamp_millis()),
                };
                commands.create_allocation(&command_ctx, command).await
            },
        )
        .await
    }

    /// Confirm a created allocation, clearing its deadline; anything else, or an allocation
    /// past its `expiresAt`, is INVALID_STATE_TRANSITION. Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn allocation_confirm(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: AllocationConfirmInput,
    ) -> async_graphql::Result<AllocationPayload> {
        change(
            ctx,
            &input.id,
            input.idempotency_key,
            AllocationCommand::ConfirmAllocation,
        )
        .await
    }

    /// Cancel a created or confirmed allocation and release its stock.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn allocation_cancel(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: AllocationCancelInput,
    ) -> async_graphql::Result<AllocationPayload> {
        let command = AllocationCommand::CancelAllocation {
            reason: input.reason,
        };
        change(ctx, &input.id, input.idempotency_key, command).await
    }

    /// Fulfil a confirmed allocation: on hand and allocated both fall by its quantity.
    /// Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn allocation_fulfill(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: AllocationFulfillInput,
    ) -> async_graphql::Result<AllocationPayload> {
        change(
            ctx,
            &input.id,
            input.idempotency_key,
            AllocationCommand::FulfillAllocation,
        )
        .await
    }
}
