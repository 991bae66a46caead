//! The raw audit trail: an aggregate's stored events, straight from the event store.

use super::page::EventConnection;
use async_graphql::{Context, Object, ID};

use super::types::Event;
use super::{bad_argument, infrastructure, page_size, query_id, AppContext};

#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
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
