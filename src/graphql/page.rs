//! Relay connections for every list, declared here so each page type carries a description
//! (the library's generic connection type has none).

use async_graphql::connection::PageInfo;
use async_graphql::SimpleObject;

use super::types::{Allocation, Event, InventoryHistoryEntry, InventoryItem, Warehouse};

macro_rules! connection_type {
    ($connection:ident, $edge:ident, $node:ty, $page_doc:literal, $edge_doc:literal) => {
        #[doc = $page_doc]
        #[derive(SimpleObject)]
        pub struct $connection {
            /// The rows of this page, each with its cursor.
            pub edges: Vec<$edge>,
            /// Whether there are pages before and after, and the cursors to reach them.
            pub page_info: PageInfo,
        }

        #[doc = $edge_doc]
        #[derive(SimpleObject)]
        pub struct $edge {
            /// Pass as `after` to continue after this row.
            pub cursor: String,
            /// The row.
            pub node: $node,
        }

        impl $connection {
            /// Builds a page from up to `size + 1` fetched rows: the extra one only tells
            /// whether a next page exists.
            pub fn from_rows(
                mut rows: Vec<(String, $node)>,
                size: usize,
                has_previous: bool,
            ) -> Self {
                let has_next = rows.len() > size;
                rows.truncate(size);
                let page_info = PageInfo {
                    has_previous_page: has_previous,
                    has_next_page: has_next,
                    start_cursor: rows.first().map(|(cursor, _)| cursor.clone()),
                    end_cursor: rows.last().map(|(cursor, _)| cursor.clone()),
                };
                Self {
                    edges: rows
                        .into_iter()
                        .map(|(cursor, node)| $edge { cursor, node })
                        .collect(),
                    page_info,
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
    "A stock change with its cursor (its sequence number)."
);
connection_type!(
    EventConnection,
    EventEdge,
    Event,
    "A page of an aggregate's events, in sequence order.",
    "An event with its cursor (its sequence number)."
);
