//! Relay connections for every list, declared here so each page type carries a description
//! (the library's generic connection type has none). Pages go both ways (`first`/`after`,
//! `last`/`before`) over keyset reads, and `totalCount` is a resolver: it costs a count query
//! only when a client selects it.

use async_graphql::connection::PageInfo;
use async_graphql::{ComplexObject, Context, SimpleObject};
use std::future::Future;
use uuid::Uuid;

use super::cursor::{CursorKey, CursorKind};
use super::scope::Within;
use super::transfer::Transfer;
use super::types::{Allocation, Event, InventoryHistoryEntry, InventoryItem, Warehouse};
use super::{bad_argument, infrastructure, AppContext, DEFAULT_PAGE, MAX_PAGE};
use crate::projection::{AllocationFilter, Keys, ProjectionError, TransferFilter};

/// What `totalCount` counts: the list a connection pages through, under the same filters
/// and in the same warehouses.
pub enum Count {
    Warehouses {
        include_inactive: bool,
        within: Within,
    },
    Items {
        within: Within,
        low_stock_only: bool,
    },
    Allocations {
        filter: AllocationFilter,
        within: Within,
    },
    History {
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
    },
    /// Transfers: the filter names the caller's warehouses already.
    Transfers { filter: TransferFilter },
    /// An aggregate's events: its last sequence number, as streams have no holes.
    Events { aggregate_id: Uuid },
}

impl Count {
    async fn run(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let app = ctx.data::<AppContext>()?;
        let read = &app.read;
        let count = match self {
            Count::Warehouses {
                include_inactive,
                within,
            } => match within.ids() {
                None => read.count_warehouses(*include_inactive).await,
                Some(ids) => super::warehouse::scoped_warehouses(app, &ids, *include_inactive)
                    .await
                    .map(|rows| rows.len() as u64),
            },
            Count::Items {
                within,
                low_stock_only,
            } => within.count(|w| read.count_items(w, *low_stock_only)).await,
            Count::Allocations { filter, within } => {
                within
                    .count(|warehouse_id| {
                        read.count_allocations(AllocationFilter {
                            warehouse_id,
                            ..filter.clone()
                        })
                    })
                    .await
            }
            Count::History { item_id, from, to } => read.count_history(*item_id, *from, *to).await,
            Count::Transfers { filter } => read.count_transfers(filter.clone()).await,
            Count::Events { aggregate_id } => {
                let end = super::audit::stream_end(app, *aggregate_id)
                    .await
                    .map_err(infrastructure)?;
                return Ok(end.min(i32::MAX as u64) as i32);
            }
        }
        .map_err(infrastructure)?;
        Ok(count.min(i32::MAX as u64) as i32)
    }
}

/// The paging arguments every connection field takes.
#[derive(Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

/// A page of rows with their keys, and where it stands in the list.
pub struct Page<T> {
    pub rows: Vec<(String, T)>,
    pub page_info: PageInfo,
}

fn size(name: &str, n: i32) -> async_graphql::Result<usize> {
    if (1..=MAX_PAGE).contains(&n) {
        Ok(n as usize)
    } else {
        Err(bad_argument(format!(
            "{name} must be between 1 and {MAX_PAGE}, got {n}"
        )))
    }
}

/// Reads one page of a keyset list. `fetch` reads rows with `after < key < before` from the
/// requested end, in ascending order; `key_of` gives a row's key.
///
/// `first` takes `first + 1` rows from the front (the extra one tells `hasNextPage`), `last`
/// takes `last + 1` from the back (the extra one tells `hasPreviousPage`). The other flag is
/// false without a cursor on that side, and otherwise asks for one row beyond the page's
/// edge, so both flags are exact in both directions.
pub async fn paginate<K, T, F, Fut>(
    args: PageArgs,
    kind: CursorKind,
    key_of: fn(&T) -> K,
    fetch: F,
) -> async_graphql::Result<Page<T>>
where
    K: CursorKey + Send,
    F: Fn(Keys<K>) -> Fut,
    Fut: Future<Output = Result<Vec<T>, ProjectionError>>,
{
    let after = args
        .after
        .map(|c| kind.decode::<K>("after", &c))
        .transpose()?;
    let before = args
        .before
        .map(|c| kind.decode::<K>("before", &c))
        .transpose()?;
    let (backward, size) = match (args.first, args.last) {
        (Some(_), Some(_)) => {
            return Err(bad_argument(
                "give first or last, not both (Relay connections page one way at a time)",
            ))
        }
        (first, None) => (false, size("first", first.unwrap_or(DEFAULT_PAGE))?),
        (None, Some(last)) => (true, size("last", last)?),
    };
    let mut rows = fetch(Keys {
        after,
        before,
        backward,
        limit: size + 1,
    })
    .await
    .map_err(infrastructure)?;
    let more = rows.len() > size;
    if more {
        if backward {
            rows.drain(..rows.len() - size);
        } else {
            rows.truncate(size);
        }
    }
    // Is there a row beyond the page on the side the client came from? The page holds the
    // rows of (after, before) nearest its starting side, so any row past its far edge (or,
    // for an empty page, past the opposite bound) lies beyond that side's cursor.
    let beyond = match (backward, after, before) {
        (true, _, Some(_)) => {
            let probe = Keys::after(rows.last().map(key_of).or(after), 1);
            !fetch(probe).await.map_err(infrastructure)?.is_empty()
        }
        (false, Some(_), _) => {
            let probe = Keys::before(rows.first().map(key_of).or(before), 1);
            !fetch(probe).await.map_err(infrastructure)?.is_empty()
        }
        _ => false,
    };
    let (has_previous_page, has_next_page) = if backward {
        (more, beyond)
    } else {
        (beyond, more)
    };
    let rows: Vec<(String, T)> = rows
        .into_iter()
        .map(|row| (kind.encode(&key_of(&row)), row))
        .collect();
    let page_info = PageInfo {
        has_previous_page,
        has_next_page,
        start_cursor: rows.first().map(|(cursor, _)| cursor.clone()),
        end_cursor: rows.last().map(|(cursor, _)| cursor.clone()),
    };
    Ok(Page { rows, page_info })
}

macro_rules! connection_type {
    ($connection:ident, $edge:ident, $node:ty, $page_doc:literal, $edge_doc:literal) => {
        #[doc = $page_doc]
        #[derive(SimpleObject)]
        #[graphql(complex)]
        pub struct $connection {
            /// The rows of this page, each with its cursor.
            pub edges: Vec<$edge>,
            /// Whether there are pages before and after, and the cursors to reach them.
            pub page_info: PageInfo,
            #[graphql(skip)]
            pub count: Count,
        }

        #[ComplexObject]
        impl $connection {
            /// How many rows the whole list has under the same filters (not just this
            /// page). Costs a count query, made only when this field is selected.
            async fn total_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
                self.count.run(ctx).await
            }
        }

        #[doc = $edge_doc]
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Opaque: pass as `after` to continue after this row, or as `before` to page
            /// back from it.
            pub cursor: String,
            /// The row.
            pub node: $node,
        }

        impl $connection {
            /// A page of rows, each wrapped as its GraphQL type.
            pub fn from_page<T>(page: Page<T>, wrap: fn(T) -> $node, count: Count) -> Self {
                Self {
                    edges: page
                        .rows
                        .into_iter()
                        .map(|(cursor, row)| $edge {
                            cursor,
                            node: wrap(row),
                        })
                        .collect(),
                    page_info: page.page_info,
                    count,
                }
            }
        }
    };
}

connection_type!(
    WarehouseConnection,
    WarehouseEdge,
    Warehouse,
    "A page of warehouses, in creation order.",
    "A warehouse with its cursor."
);
connection_type!(
    InventoryItemConnection,
    InventoryItemEdge,
    InventoryItem,
    "A page of inventory items, in creation order.",
    "An inventory item with its cursor."
);
connection_type!(
    AllocationConnection,
    AllocationEdge,
    Allocation,
    "A page of allocations, in creation order.",
    "An allocation with its cursor."
);
connection_type!(
    InventoryHistoryEntryConnection,
    InventoryHistoryEntryEdge,
    InventoryHistoryEntry,
    "A page of an item's stock changes, oldest first.",
    "A stock change with its cursor."
);
connection_type!(
    TransferConnection,
    TransferEdge,
    Transfer,
    "A page of transfers, in creation order.",
    "A transfer with its cursor."
);
connection_type!(
    EventConnection,
    EventEdge,
    Event,
    "A page of an aggregate's events, in sequence order.",
    "An event with its cursor."
);
