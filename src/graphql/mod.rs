//! The GraphQL API: queries read projections, mutations run commands, subscriptions follow
//! the bus. Split by concern (warehouses, inventory, stocktake, allocations, audit) and merged
//! here.
//! `viewer` and `serviceStatus` tell a client who it is and how the service is doing.
//! Business-rule failures are `userErrors`; infrastructure failures are GraphQL errors with
//! `extensions.code`. Every root field needs a role (`roles`); a principal scoped to
//! warehouses reads only theirs (`scope`).

mod allocation;
mod audit;
mod cursor;
mod errors;
pub mod executed;
mod introspection;
mod inventory;
pub mod limits;
pub mod loaders;
mod node;
mod page;
mod rebuild;
pub mod roles;
mod scope;
mod service_status;
mod stocktake;
mod subscription;
mod transfer;
pub mod types;
mod viewer;
mod warehouse;

use async_graphql::{ErrorExtensions, MergedObject, Schema, ID};
use std::sync::Arc;
use uuid::Uuid;

use crate::application::{CommandContext, CommandError, Commands, Outcome};
use crate::bus::EventBus;
use crate::domain::DomainError;
use crate::projection::replay::RebuildControl;
use crate::projection::switch::Switchboard;
use crate::projection::ReadModel;
use crate::store::EventStore;
use types::UserError;

pub use errors::{bad_argument, infrastructure, prepare_errors};

/// What resolvers reach: the application's ports.
#[derive(Clone)]
pub struct AppContext {
    pub commands: Arc<Commands>,
    pub read: Arc<dyn ReadModel>,
    pub store: Arc<dyn EventStore>,
    pub bus: Arc<dyn EventBus>,
    /// Which generation of tables serves each projection.
    pub projections: Arc<Switchboard>,
    pub rebuilds: Arc<RebuildControl>,
}

/// Per-request identity and tracing: who asks (authenticated at the edge), the actor its
/// events name, and the correlation id.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub principal: crate::auth::Principal,
    pub actor: String,
    pub correlation_id: String,
}

/// Read the projections (current inventory, allocations, history, movements) and the
/// audit trail.
#[derive(MergedObject, Default)]
pub struct Query(
    node::NodeQuery,
    warehouse::WarehouseQuery,
    inventory::InventoryQuery,
    allocation::AllocationQuery,
    transfer::TransferQuery,
    audit::AuditQuery,
    rebuild::RebuildQuery,
    viewer::ViewerQuery,
    service_status::ServiceStatusQuery,
);

/// Commands. Each takes one `input` with an optional `idempotencyKey` and returns a payload
/// with the entity as it is right after the commit and any `userErrors`.
#[derive(MergedObject, Default)]
pub struct Mutation(
    warehouse::WarehouseMutation,
    inventory::InventoryMutation,
    stocktake::StocktakeMutation,
    allocation::AllocationMutation,
    transfer::TransferMutation,
    rebuild::RebuildMutation,
);

pub type InventorySchema = Schema<Query, Mutation, subscription::Subscription>;

pub fn schema(app: Option<AppContext>) -> InventorySchema {
    schema_with(app, loaders::BATCH_WINDOW)
}

/// The schema, with the loaders' batch window (`--batch-window-ms`).
pub fn schema_with(app: Option<AppContext>, batch_window: std::time::Duration) -> InventorySchema {
    // Depth and cost limits live in `limits`, which counts introspection apart from the rest
    // (async-graphql's own `limit_depth` would refuse the standard introspection query).
    let builder = Schema::build(
        Query::default(),
        Mutation::default(),
        subscription::Subscription,
    )
    .extension(limits::QueryLimits)
    .extension(executed::MarkExecuted)
    .extension(introspection::SchemaDescription)
    // The library's own descriptions of these scalars speak of its Rust types.
    .override_output_type_description::<chrono::DateTime<chrono::Utc>>(
        "A point in time, as an RFC 3339 date-time string: UTC on output \
         (`2026-12-01T09:30:00.123Z`); any offset on input.",
    )
    .override_input_type_description::<chrono::NaiveDate>(
        "A calendar day, `YYYY-MM-DD` (e.g. `2026-12-01`). The service's days are UTC days.",
    )
    .override_output_type_description::<async_graphql::Json<serde_json::Value>>(
        "Any JSON value: an event's data exactly as stored.",
    );
    match app {
        // The loaders are shared by every request, without a cache: see `loaders`.
        Some(app) => builder
            .data(loaders::Loaders::new(app.read.clone(), batch_window))
            .data(app)
            .finish(),
        None => builder.finish(),
    }
}

/// The SDL the code serves; `schema.graphql` must equal it. It names the `@specifiedBy` URLs
/// introspection reports (async-graphql leaves them out by default), so a schema rebuilt from
/// introspection prints the same as the file.
pub fn sdl() -> String {
    let sdl = schema(None)
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by());
    // async-graphql prints no schema description; introspection gives ours (`introspection`).
    match sdl.rfind("\nschema {") {
        Some(at) => format!(
            "{}\n\"\"\"\n{SCHEMA_DESCRIPTION}\n\"\"\"{}",
            &sdl[..at],
            &sdl[at..]
        ),
        None => sdl,
    }
}

/// What the API is, as introspection (`__schema { description }`) and schema.graphql say.
pub const SCHEMA_DESCRIPTION: &str = "An event-sourced inventory service. Queries read the \
projections (current inventory, allocations, history, the stock movement report); mutations are \
commands on warehouses, items and allocations, each answered with the entity as committed and \
any `userErrors`; subscriptions stream events, changed rows and low-stock alerts live.";

pub fn parse_id(field: &'static str, id: &ID) -> Result<Uuid, DomainError> {
    Uuid::parse_str(id.as_str()).map_err(|_| {
        DomainError::invalid(
            field,
            format!("{field} is not a valid id: {:?}", truncate(id.as_str())),
        )
    })
}

/// For a query argument: a malformed id is a GraphQL error.
pub fn query_id(field: &'static str, id: &ID) -> async_graphql::Result<Uuid> {
    parse_id(field, id).map_err(|e| bad_argument(e.to_string()))
}

fn truncate(text: &str) -> String {
    text.chars().take(64).collect()
}

pub fn user_error(error: &DomainError) -> UserError {
    UserError {
        field: error
            .field()
            .map(|f| vec!["input".to_owned(), f.to_owned()]),
        message: error.to_string(),
        code: error.code().to_owned(),
    }
}

/// Splits a command result into the outcome or user errors; infrastructure failures become
/// GraphQL errors (see `errors`).
pub fn outcome(
    result: Result<Outcome, CommandError>,
) -> async_graphql::Result<Result<Outcome, Vec<UserError>>> {
    match result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(CommandError::Rejected(error)) => Ok(Err(vec![user_error(&error)])),
        Err(error) => Err(error.extend()),
    }
}

/// A mutation's payload: the entities of a command's outcome, or the user errors that refused
/// it. `mutate` builds every payload through it.
pub trait MutationPayload {
    fn from_result(result: Result<Outcome, Vec<UserError>>) -> Self;
}

/// The one path of a mutation resolver. `parsed` is what the resolver read from its input (ids
/// above all): an error there is the payload's user error, and nothing runs. Otherwise `run`
/// gets the commands, the request's command context (principal, actor, correlation id and
/// `idempotency_key`) and the parsed value, and its outcome becomes the payload; a refusal is a
/// user error, an infrastructure failure a GraphQL error (`outcome`).
pub async fn mutate<'a, P, T, F, Fut>(
    ctx: &async_graphql::Context<'a>,
    idempotency_key: Option<String>,
    parsed: Result<T, DomainError>,
    run: F,
) -> async_graphql::Result<P>
where
    P: MutationPayload,
    F: FnOnce(&'a Commands, CommandContext, T) -> Fut,
    Fut: std::future::Future<Output = Result<Outcome, CommandError>>,
{
    let parsed = match parsed {
        Ok(parsed) => parsed,
        Err(error) => return Ok(P::from_result(Err(vec![user_error(&error)]))),
    };
    let app = ctx.data::<AppContext>()?;
    let command_ctx = AppContext::command_context(ctx, idempotency_key);
    let result = run(&app.commands, command_ctx, parsed).await;
    Ok(P::from_result(outcome(result)?))
}

impl AppContext {
    pub fn command_context(
        ctx: &async_graphql::Context<'_>,
        idempotency_key: Option<String>,
    ) -> CommandContext {
        let meta = ctx.data_opt::<RequestMeta>();
        CommandContext {
            principal: meta.map_or_else(
                || crate::auth::ANONYMOUS.to_owned(),
                |m| m.principal.name.clone(),
            ),
            scope: meta.map(|m| m.principal.scope.clone()).unwrap_or_default(),
            actor: meta.map_or_else(|| crate::auth::ANONYMOUS.to_owned(), |m| m.actor.clone()),
            correlation_id: meta
                .map_or_else(|| Uuid::now_v7().to_string(), |m| m.correlation_id.clone()),
            idempotency_key,
            source: String::new(),
        }
    }
}

/// Default and largest page sizes for every connection.
pub const DEFAULT_PAGE: i32 = 50;
pub const MAX_PAGE: i32 = 500;
