//! Live subscriptions, fed by this instance's fan-out of the bus: raw events, low-stock
//! alerts, and read-model rows after their projection applied the change. A subscriber too slow
//! to keep up skips what it missed (logged) rather than slowing everyone else. A principal
//! scoped to warehouses hears only of what lies in them: a warehouse or aggregate named
//! outside them is refused when subscribing, and each feed is filtered to the scope.

use async_graphql::{Context, Subscription, ID};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use std::sync::Arc;
use tokio_stream::wrappers::{errors::BroadcastStreamRecvError, BroadcastStream};
use uuid::Uuid;

use super::roles::RoleGuard;
use super::scope::{named_aggregate, Within};
use super::types::{time, AggregateType, Allocation, Event, InventoryItem, LowStockAlert};
use super::{bad_argument, query_id, AppContext};
use crate::auth::{Denied, Role, Scope};
use crate::bus::LiveMessage;
use crate::domain::item::ItemEvent;
use crate::store::EventEnvelope;
use async_graphql::ErrorExtensions;

pub struct Subscription;

/// Counts open subscriptions: up when a stream starts, down when the client goes away.
struct Subscriber;

impl Subscriber {
    fn new() -> Self {
        metrics::gauge!(crate::metrics::SUBSCRIBERS).increment(1.0);
        Self
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        metrics::gauge!(crate::metrics::SUBSCRIBERS).decrement(1.0);
    }
}

fn live(ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = Arc<LiveMessage>>> {
    let app = ctx.data::<AppContext>()?;
    let subscriber = Subscriber::new();
    Ok(
        BroadcastStream::new(app.bus.live()).filter_map(move |message| {
            // Owned by the stream, so dropped (and counted down) with it.
            let _open = &subscriber;
            async move {
                match message {
                    Ok(message) => Some(message),
                    Err(BroadcastStreamRecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "a slow subscriber missed live messages");
                        None
                    }
                }
            }
        }),
    )
}

/// Events read from the store at a time by a catch-up subscription.
const CATCH_UP_PAGE: u64 = 64;

/// A catch-up's events from the store: `first` (a page already read), then one page after
/// another, each read only when the client has taken the one before (the stream is pulled by
/// the socket's bounded queue), so a reader that stalls holds one page, not the stream.
/// Sequence numbers have no gaps, so a page shorter than `CATCH_UP_PAGE` is the end for now
/// (the live tail takes over from `last`). A failed read ends the subscription with an error.
fn catch_up(
    store: Arc<dyn crate::store::EventStore>,
    aggregate: Uuid,
    first: Vec<EventEnvelope>,
    last: Arc<tokio::sync::Mutex<u64>>,
) -> impl Stream<Item = async_graphql::Result<EventEnvelope>> {
    enum Next {
        Page(Vec<EventEnvelope>),
        After(u64),
        End,
    }
    futures::stream::unfold(Next::Page(first), move |next| {
        let (store, last) = (store.clone(), last.clone());
        async move {
            let page = match next {
                Next::End => return None,
                Next::Page(page) => page,
                Next::After(after) => {
                    match store
                        .load(aggregate, after, Some(after.saturating_add(CATCH_UP_PAGE)))
                        .await
                    {
                        Ok(page) => page,
                        Err(error) => {
                            let failed = vec![Err(super::infrastructure(error))];
                            return Some((futures::stream::iter(failed), Next::End));
                        }
                    }
                }
            };
            let end = page.last()?.sequence_number;
            *last.lock().await = end;
            let next = if page.len() as u64 >= CATCH_UP_PAGE {
                Next::After(end)
            } else {
                Next::End
            };
            let items: Vec<_> = page.into_iter().map(Ok).collect();
            Some((futures::stream::iter(items), next))
        }
    })
    .flatten()
}

fn optional_id(field: &'static str, id: Option<ID>) -> async_graphql::Result<Option<Uuid>> {
    id.map(|id| query_id(field, &id)).transpose()
}

/// Live feeds over WebSocket (`/graphql/ws`, graphql-transport-ws or graphql-ws).
#[Subscription]
impl Subscription {
    /// Fires when an item's available stock falls from above its reorder threshold to at or
    /// below it (once per dip), optionally only for one warehouse. A principal scoped to
    /// warehouses hears only of theirs (a `warehouseId` outside them is FORBIDDEN).
    /// Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn low_stock_alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only alerts of this warehouse.")] warehouse_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = LowStockAlert>> {
        let within = Within::for_request(ctx, optional_id("warehouseId", warehouse_id)?)?;
        Ok(live(ctx)?.filter_map(move |message| {
            let within = within.clone();
            async move {
                let LiveMessage::Event(envelope) = &*message else {
                    return None;
                };
                if envelope.event_type != "LowStockThresholdReached" {
                    return None;
                }
                let Ok(ItemEvent::LowStockThresholdReached {
                    sku,
                    warehouse_id,
                    current_quantity,
                    threshold,
                    suggested_reorder_quantity,
                }) = envelope.decode::<ItemEvent>()
                else {
                    return None;
                };
                if !within.contains(warehouse_id) {
                    return None;
                }
                Some(LowStockAlert {
                    id: ID(envelope.event_id.to_string()),
                    item_id: ID(envelope.aggregate_id.to_string()),
                    sku,
                    warehouse_id: ID(warehouse_id.to_string()),
                    available: current_quantity,
                    threshold,
                    suggested_reorder_quantity,
                    occurred_at: time(envelope.timestamp),
                    sequence_number: envelope.sequence_number,
                })
            }
        }))
    }

    /// Every committed event, optionally of one aggregate type and/or one aggregate. With
    /// `aggregateId` and `afterSequence`, it first sends that aggregate's events after the
    /// given sequence number from the store (catch-up), then continues live: each event exactly
    /// once and in order, with no gap at the seam (a gap in the live feed is filled from the
    /// store). A principal scoped to warehouses must name an `aggregateId` in them (raw
    /// events do not all say their warehouse); FORBIDDEN otherwise. Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::catch_up(after_sequence, child_complexity)"
    )]
    async fn inventory_events(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only events of this kind of aggregate.")] aggregate_type: Option<
            AggregateType,
        >,
        #[graphql(desc = "Only events of this aggregate.")] aggregate_id: Option<ID>,
        #[graphql(
            desc = "Resume after this sequence number of `aggregateId` (0: from the start). \
                    The catch-up read costs 1,000 of the operation's cost limit."
        )]
        after_sequence: Option<u64>,
    ) -> async_graphql::Result<BoxStream<'static, async_graphql::Result<Event>>> {
        let aggregate = optional_id("aggregateId", aggregate_id)?;
        let principal = crate::auth::principal(ctx);
        if principal.scope != Scope::All {
            let Some(aggregate) = aggregate else {
                return Err(Denied::Forbidden(format!(
                    "{} may read only the events of its warehouses: name an aggregateId",
                    principal.name
                ))
                .extend());
            };
            named_aggregate(ctx, aggregate).await?;
        }
        let kind: Option<crate::domain::AggregateType> = aggregate_type.map(Into::into);
        // Subscribe before reading the store, so nothing committed meanwhile is missed.
        let live = live(ctx)?.filter_map(move |message| async move {
            let LiveMessage::Event(envelope) = &*message else {
                return None;
            };
            let wanted = kind.is_none_or(|k| k == envelope.aggregate_type)
                && aggregate.is_none_or(|a| a == envelope.aggregate_id);
            wanted.then(|| envelope.clone())
        });
        let Some(after) = after_sequence else {
            return Ok(live.map(|envelope| Ok(Event(envelope))).boxed());
        };
        let Some(aggregate) = aggregate else {
            return Err(bad_argument("afterSequence needs an aggregateId"));
        };
        let store = ctx.data::<AppContext>()?.store.clone();
        // The first page now, so a store that cannot be read fails the subscription at once;
        // the rest page by page as the client takes them (see `catch_up`).
        let first = store
            .load(aggregate, after, Some(after.saturating_add(CATCH_UP_PAGE)))
            .await
            .map_err(super::infrastructure)?;
        let last = Arc::new(tokio::sync::Mutex::new(after));
        let backlog = catch_up(store.clone(), aggregate, first, last.clone());
        let tail = live
            .then(move |envelope| {
                let (store, last) = (store.clone(), last.clone());
                async move {
                    let mut last = last.lock().await;
                    if envelope.sequence_number <= *last {
                        return vec![]; // already sent (from the store or a redelivery)
                    }
                    let mut out = vec![];
                    if envelope.sequence_number > *last + 1 {
                        // The live feed skipped some: read them from the store.
                        match store
                            .load(aggregate, *last, Some(envelope.sequence_number - 1))
                            .await
                        {
                            Ok(missing) => out.extend(missing.into_iter().map(Ok)),
                            Err(error) => tracing::warn!(%error, "cannot fill a subscription gap"),
                        }
                    }
                    *last = envelope.sequence_number;
                    out.push(Ok(envelope));
                    out
                }
            })
            .flat_map(futures::stream::iter);
        Ok(backlog
            .chain(tail)
            .map(|envelope| envelope.map(Event))
            .boxed())
    }

    /// An item's read model each time its projection changes, optionally for one warehouse
    /// and/or one item. A principal scoped to warehouses hears only of theirs (a `warehouseId`
    /// or `itemId` outside them is FORBIDDEN). Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn inventory_item_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only items of this warehouse.")] warehouse_id: Option<ID>,
        #[graphql(desc = "Only this item.")] item_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = InventoryItem>> {
        let within = Within::for_request(ctx, optional_id("warehouseId", warehouse_id)?)?;
        let item = optional_id("itemId", item_id)?;
        if let Some(item) = item {
            named_aggregate(ctx, item).await?;
        }
        Ok(live(ctx)?.filter_map(move |message| {
            let within = within.clone();
            async move {
                let LiveMessage::ItemChanged(view) = &*message else {
                    return None;
                };
                let wanted =
                    within.contains(view.warehouse_id) && item.is_none_or(|i| i == view.id);
                wanted.then(|| InventoryItem(view.clone()))
            }
        }))
    }

    /// An allocation's read model each time it changes, optionally for one order. A principal
    /// scoped to warehouses hears only of theirs. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn allocation_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only allocations of this order.")] order_id: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = Allocation>> {
        let within = Within::for_request(ctx, None)?;
        Ok(live(ctx)?.filter_map(move |message| {
            let order_id = order_id.clone();
            let within = within.clone();
            async move {
                let LiveMessage::AllocationChanged(view) = &*message else {
                    return None;
                };
                let wanted = within.contains(view.warehouse_id)
                    && order_id
                        .as_deref()
                        .is_none_or(|o| o.trim() == view.order_id);
                wanted.then(|| Allocation(view.clone()))
            }
        }))
    }
}
