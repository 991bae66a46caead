//! The raw audit trail: an aggregate's stored events, straight from the event store, and
//! entities rebuilt from them as of a moment. A principal scoped to warehouses reads only the
//! streams of what lies in its warehouses (`scope`).

use super::cursor::CursorKind;
use super::page::{paginate, Count, EventConnection, PageArgs};
use async_graphql::{Context, Object, ID};

use super::roles::RoleGuard;
use super::scope::{named_aggregate, visible};
use super::types::{Allocation, Event, InventoryItem, Warehouse};
use super::{bad_argument, infrastructure, query_id, AppContext};
use crate::application::{load_as_of, Entity};
use crate::auth::Role;
use crate::domain::{allocation, item, warehouse};
use crate::projection::{AllocationView, ItemView, Keys, ProjectionError, WarehouseView};
use crate::store::{EventEnvelope, StoreError};
use chrono::{DateTime, Utc};
use uuid::Uuid;

#[derive(Default)]
pub struct AuditQuery;

/// The last sequence number of a stream (0 if it has none): its latest snapshot's version
/// and the events after it. Streams have no holes, so it is also the stream's length.
pub async fn stream_end(app: &AppContext, aggregate_id: Uuid) -> Result<u64, StoreError> {
    let from = app
        .store
        .load_snapshot(aggregate_id)
        .await?
        .map_or(0, |snapshot| snapshot.version);
    let tail = app.store.load(aggregate_id, from, None).await?;
    Ok(tail.last().map_or(from, |e| e.sequence_number))
}

/// A keyset page of a stream: sequence numbers are dense (1, 2, 3…), so either end of
/// `after < n < before` is a range to load.
async fn stream_page(
    app: &AppContext,
    aggregate_id: Uuid,
    keys: Keys<u64>,
) -> Result<Vec<EventEnvelope>, StoreError> {
    let low = keys.after.unwrap_or(0);
    let limit = keys.limit as u64;
    let (from, up_to) = if keys.backward {
        let end = match keys.before {
            Some(before) => before.saturating_sub(1),
            None => stream_end(app, aggregate_id).await?,
        };
        (low.max(end.saturating_sub(limit)), end)
    } else {
        let end = low.saturating_add(limit);
        let end = keys.before.map_or(end, |b| end.min(b.saturating_sub(1)));
        (low, end)
    };
    if up_to <= from {
        return Ok(Vec::new());
    }
    app.store.load(aggregate_id, from, Some(up_to)).await
}

async fn as_of<A: crate::domain::Aggregate>(
    ctx: &Context<'_>,
    id: &ID,
    at: Option<DateTime<Utc>>,
    version: Option<u64>,
) -> async_graphql::Result<Option<Entity<A>>> {
    let id = query_id("id", id)?;
    if at.is_none() && version.is_none() {
        return Err(bad_argument("give `at`, `version` or both"));
    }
    let app = ctx.data::<AppContext>()?;
    let state = load_as_of::<A>(&*app.store, id, at.map(|t| t.timestamp_millis()), version)
        .await
        .map_err(infrastructure)?;
    Ok(state.map(|current| Entity { id, current }))
}

#[Object]
impl AuditQuery {
    /// An item as it was at a moment and/or a version, rebuilt from its events (exact, not
    /// from projections). Null if it did not exist then. A replay: costs 1,000 of a query's
    /// cost limit. For a principal scoped to warehouses, an item outside them is FORBIDDEN.
    /// Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::replay(child_complexity)"
    )]
    async fn inventory_item_as_of(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The item.")] id: ID,
        #[graphql(desc = "Every event committed at or before this moment.")] at: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Every event up to this sequence number.")] version: Option<u64>,
    ) -> async_graphql::Result<Option<InventoryItem>> {
        let entity = as_of::<item::InventoryItem>(ctx, &id, at, version).await?;
        let view = entity.map(|e| ItemView::from(&e));
        if let Some(view) = &view {
            visible(ctx, view.warehouse_id)?;
        }
        Ok(view.map(InventoryItem))
    }

    /// An allocation as it was at a moment and/or a version, rebuilt from its events. A replay:
    /// costs 1,000 of a query's cost limit. For a principal scoped to warehouses, one outside
    /// them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::replay(child_complexity)"
    )]
    async fn allocation_as_of(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The allocation.")] id: ID,
        #[graphql(desc = "Every event committed at or before this moment.")] at: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Every event up to this sequence number.")] version: Option<u64>,
    ) -> async_graphql::Result<Option<Allocation>> {
        let entity = as_of::<allocation::Allocation>(ctx, &id, at, version).await?;
        let view = entity.map(|e| AllocationView::from(&e));
        if let Some(view) = &view {
            visible(ctx, view.warehouse_id)?;
        }
        Ok(view.map(Allocation))
    }

    /// A warehouse as it was at a moment and/or a version, rebuilt from its events. A replay:
    /// costs 1,000 of a query's cost limit. For a principal scoped to warehouses, one outside
    /// them is FORBIDDEN. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::replay(child_complexity)"
    )]
    async fn warehouse_as_of(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The warehouse.")] id: ID,
        #[graphql(desc = "Every event committed at or before this moment.")] at: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Every event up to this sequence number.")] version: Option<u64>,
    ) -> async_graphql::Result<Option<Warehouse>> {
        // Its own id says where it lies: refused before any replay.
        visible(ctx, query_id("id", &id)?)?;
        let entity = as_of::<warehouse::Warehouse>(ctx, &id, at, version).await?;
        Ok(entity.map(|e| Warehouse(WarehouseView::from(&e))))
    }

    /// An aggregate's events in order. Read from the event store, so it is exact at once. For
    /// a principal scoped to warehouses, an aggregate outside them (or not known to lie in one
    /// of them) is FORBIDDEN. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::page(first, last, child_complexity)"
    )]
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A warehouse, item or allocation id.")] aggregate_id: ID,
        #[graphql(desc = "Page size from the front, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Only events after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page size from the back, 1 to 500.")] last: Option<i32>,
        #[graphql(desc = "Only events before this cursor.")] before: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let aggregate_id = query_id("aggregateId", &aggregate_id)?;
        named_aggregate(ctx, aggregate_id).await?;
        let app = ctx.data::<AppContext>()?;
        let args = PageArgs {
            first,
            after,
            last,
            before,
        };
        let page = paginate(
            args,
            CursorKind::Event,
            |e: &EventEnvelope| e.sequence_number,
            |keys| async move {
                stream_page(app, aggregate_id, keys)
                    .await
                    .map_err(|e| ProjectionError::request("reading an aggregate's events", e))
            },
        )
        .await?;
        Ok(EventConnection::from_page(
            page,
            Event,
            Count::Events { aggregate_id },
        ))
    }
}
