//! Warehouses: queries and the admin mutations that create, update and deactivate them.

use super::cursor::CursorKind;
use super::page::{paginate, Count, PageArgs, WarehouseConnection};
use async_graphql::{Context, InputObject, Object, SimpleObject, ID};

use super::roles::RoleGuard;
use super::scope::{keyset_slice, visible, Within};
use super::types::{UserError, Warehouse};
use super::{infrastructure, mutate, parse_id, query_id, AppContext, MutationPayload};
use crate::application::CreateWarehouse;
use crate::application::Outcome;
use crate::auth::Role;
use crate::domain::warehouse::WarehouseCommand;
use crate::projection::WarehouseView;

#[derive(Default)]
pub struct WarehouseQuery;

#[Object]
impl WarehouseQuery {
    /// A warehouse by id, or null if there is none. For a principal scoped to warehouses, one
    /// outside them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn warehouse(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The warehouse's id.")] id: ID,
    ) -> async_graphql::Result<Option<Warehouse>> {
        let id = query_id("id", &id)?;
        visible(ctx, id)?;
        let app = ctx.data::<AppContext>()?;
        Ok(app
            .read
            .warehouse(id)
            .await
            .map_err(infrastructure)?
            .map(Warehouse))
    }

    /// Warehouses in creation order; inactive ones only when asked for. A principal scoped to
    /// warehouses lists only those. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn warehouses(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only rows after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only rows before this cursor.")] before: Option<String>,
        #[graphql(desc = "Include deactivated warehouses.", default = false)]
        include_inactive: bool,
    ) -> async_graphql::Result<WarehouseConnection> {
        let app = ctx.data::<AppContext>()?;
        let within = Within::for_request(ctx, None)?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let scope = within.ids();
        let scope = scope.as_deref();
        let page = paginate(
            args,
            CursorKind::Warehouse,
            |w: &WarehouseView| w.id,
            |keys| async move {
                match scope {
                    None => app.read.warehouses(include_inactive, keys).await,
                    Some(ids) => {
                        let rows = scoped_warehouses(app, ids, include_inactive).await?;
                        Ok(keyset_slice(rows, &keys, |w| w.id))
                    }
                }
            },
        )
        .await?;
        Ok(WarehouseConnection::from_page(
            page,
            Warehouse,
            Count::Warehouses {
                include_inactive,
                within,
            },
        ))
    }
}

/// A scoped principal's warehouses (a handful, read by id), active ones unless asked for all.
pub async fn scoped_warehouses(
    app: &AppContext,
    ids: &[uuid::Uuid],
    include_inactive: bool,
) -> Result<Vec<WarehouseView>, crate::projection::ProjectionError> {
    let mut rows = app.read.warehouses_by_ids(ids).await?;
    rows.retain(|w| include_inactive || w.active);
    Ok(rows)
}

/// Create a warehouse.
#[derive(InputObject)]
pub struct WarehouseCreateInput {
    /// Display name, 1–200 characters.
    name: String,
    /// Short unique code, 1–32 letters, digits, `-`, `_`, `.` or `/`; stored upper-case.
    code: String,
    /// Postal address, up to 500 characters.
    address: Option<String>,
    /// Send the same key again to retry safely: the mutation applies once and returns the
    /// first result.
    idempotency_key: Option<String>,
}

/// Change a warehouse's name or address; omitted fields stay as they are.
#[derive(InputObject)]
pub struct WarehouseUpdateInput {
    /// The warehouse.
    id: ID,
    /// New display name.
    name: Option<String>,
    /// New address; an empty string clears it.
    address: Option<String>,
    /// Retry key, as for `warehouseCreate`.
    idempotency_key: Option<String>,
}

/// Deactivate a warehouse: it keeps its history but takes no new items or allocations.
#[derive(InputObject)]
pub struct WarehouseDeactivateInput {
    /// The warehouse.
    id: ID,
    /// Why, for the audit trail (1–500 characters).
    reason: String,
    /// Retry key, as for `warehouseCreate`.
    idempotency_key: Option<String>,
}

/// The result of a warehouse mutation.
#[derive(SimpleObject)]
pub struct WarehousePayload {
    /// The warehouse as it is right after this mutation; null if it failed.
    warehouse: Option<Warehouse>,
    /// Why the mutation changed nothing; empty on success.
    user_errors: Vec<UserError>,
}

impl MutationPayload for WarehousePayload {
    fn from_result(result: Result<Outcome, Vec<UserError>>) -> Self {
        match result {
            Ok(Outcome::Warehouse(entity)) => WarehousePayload {
                warehouse: Some(Warehouse(WarehouseView::from(&entity))),
                user_errors: vec![],
            },
            Ok(_) => WarehousePayload {
                warehouse: None,
                user_errors: vec![],
            },
            Err(user_errors) => WarehousePayload {
                warehouse: None,
                user_errors,
            },
        }
    }
}

#[derive(Default)]
pub struct WarehouseMutation;

#[Object]
impl WarehouseMutation {
    /// Create a warehouse. Fails with DUPLICATE_CODE if the code is taken.
    /// Needs the `admin` role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn warehouse_create(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: WarehouseCreateInput,
    ) -> async_graphql::Result<WarehousePayload> {
        // Nothing to parse: a new warehouse names no other entity.
        mutate(
            ctx,
            input.idempotency_key,
            Ok(()),
            |commands, command_ctx, ()| async move {
                let command = CreateWarehouse {
                    name: input.name,
                    code: input.code,
                    address: input.address,
                };
                commands.create_warehouse(&command_ctx, command).await
            },
        )
        .await
    }

    /// Change a warehouse's name or address. Needs the `admin` role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn warehouse_update(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: WarehouseUpdateInput,
    ) -> async_graphql::Result<WarehousePayload> {
        let command = WarehouseCommand::UpdateWarehouse {
            name: input.name,
            address: input.address,
        };
        change(ctx, &input.id, input.idempotency_key, command).await
    }

    /// Deactivate a warehouse. Fails with INACTIVE if it already is. Needs the `admin` role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn warehouse_deactivate(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: WarehouseDeactivateInput,
    ) -> async_graphql::Result<WarehousePayload> {
        let command = WarehouseCommand::DeactivateWarehouse {
            reason: input.reason,
        };
        change(ctx, &input.id, input.idempotency_key, command).await
    }
}

/// Runs a command on an existing warehouse; a malformed id is a user error.
async fn change(
    ctx: &Context<'_>,
    id: &ID,
    idempotency_key: Option<String>,
    command: WarehouseCommand,
) -> async_graphql::Result<WarehousePayload> {
    mutate(
        ctx,
        idempotency_key,
        parse_id("id", id),
        |commands, command_ctx, id| async move {
            commands.change_warehouse(&command_ctx, id, command).await
        },
    )
    .await
}
