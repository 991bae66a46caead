//! The raw audit trail: an aggregate's stored events, straight from the event store.

use super::page::EventConnection;
use async_graphql::{Context, Object, ID};

use super::types::{Allocation, Event, InventoryItem, Warehouse};
use super::{bad_argument, infrastructure, page_size, query_id, AppContext};
use crate::application::{load_as_of, Entity};
use crate::domain::{allocation, item, warehouse};
use crate::projection::{AllocationView, ItemView, WarehouseView};
use chrono::{DateTime, Utc};

#[derive(Default)]
pub struct AuditQuery;

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
    /// from projections). Null if it did not exist then.
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
        Ok(entity.map(|e| InventoryItem(ItemView::from(&e))))
    }

    /// An allocation as it was at a moment and/or a version, rebuilt from its events.
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
        Ok(entity.map(|e| Allocation(AllocationView::from(&e))))
    }

    /// A warehouse as it was at a moment and/or a version, rebuilt from its events.
    async fn warehouse_as_of(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The warehouse.")] id: ID,
        #[graphql(desc = "Every event committed at or before this moment.")] at: Option<
            DateTime<Utc>,
        >,
        #[graphql(desc = "Every event up to this sequence number.")] version: Option<u64>,
    ) -> async_graphql::Result<Option<Warehouse>> {
        let entity = as_of::<warehouse::Warehouse>(ctx, &id, at, version).await?;
        Ok(entity.map(|e| Warehouse(WarehouseView::from(&e))))
    }

    /// An aggregate's events in order (the cursor is the sequence number). Read from the event
    /// store, so it is exact at once.
    async fn events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A warehouse, item or allocation id.")] aggregate_id: ID,
        #[graphql(desc = "Page size, 1 to 500 (default 50).")] first: Option<i32>,
        #[graphql(desc = "Cursor of the last edge of the previous page.")] after: Option<String>,
    ) -> async_graphql::Result<EventConnection> {
        let size = page_size(first)?;
        let aggregate_id = query_id("aggregateId", &aggregate_id)?;
        let after = after
            .map(|a| {
                a.parse::<u64>()
                    .map_err(|_| bad_argument("after is not a valid cursor"))
            })
            .transpose()?;
        let start = after.unwrap_or(0);
        let app = ctx.data::<AppContext>()?;
        let events = app
            .store
            .load(
                aggregate_id,
                start,
                Some(start.saturating_add(size as u64 + 1)),
            )
            .await
            .map_err(infrastructure)?;
        Ok(EventConnection::from_rows(
            events
                .into_iter()
                .map(|e| (e.sequence_number.to_string(), Event(e)))
                .collect(),
            size,
            after.is_some(),
        ))
    }
}
