//! The read models: what queries return and what change notifications carry. Plain data,
//! built by projectors from events, or from a command's outcome for mutation payloads.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::application::Entity;
use crate::domain::allocation::{Allocation, AllocationEvent, AllocationStatus};
use crate::domain::item::{InventoryItem, ItemEvent, StockChangeReason};
use crate::domain::warehouse::{Warehouse, WarehouseDetails, WarehouseEvent};
use crate::domain::Aggregate;
use crate::store::EventEnvelope;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarehouseView {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub address: Option<String>,
    pub active: bool,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemView {
    pub id: Uuid,
    pub warehouse_id: Uuid,
    pub sku: String,
    pub product_id: String,
    pub on_hand: i64,
    pub allocated: i64,
    pub reorder_threshold: i64,
    pub reorder_quantity: i64,
    pub active: bool,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ItemView {
    pub fn available(&self) -> i64 {
        self.on_hand - self.allocated
    }

    pub fn low_stock(&self) -> bool {
        self.available() <= self.reorder_threshold
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllocationView {
    pub id: Uuid,
    pub order_id: String,
    pub item_id: Uuid,
    pub warehouse_id: Uuid,
    pub quantity: i64,
    pub status: AllocationStatus,
    pub cancel_reason: Option<String>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One change of an item's on-hand stock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub item_id: Uuid,
    pub sequence_number: u64,
    pub reason: String,
    pub delta: i64,
    pub quantity_after: i64,
    pub reference: Option<String>,
    pub actor: String,
    pub correlation_id: String,
    pub occurred_at: i64,
}

/// Stock movements of one item on one UTC day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MovementRow {
    pub item_id: Uuid,
    pub warehouse_id: Uuid,
    pub sku: String,
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    pub received: i64,
    pub removed: i64,
    pub allocated: i64,
    pub released: i64,
    pub fulfilled: i64,
    pub net: i64,
}

impl From<&Entity<Warehouse>> for WarehouseView {
    fn from(entity: &Entity<Warehouse>) -> Self {
        let state = &entity.current.state;
        Self {
            id: entity.id,
            code: state.code.clone(),
            name: state.details.name.clone(),
            address: state.details.address.clone(),
            active: state.active,
            version: entity.current.version,
            created_at: entity.current.created_at,
            updated_at: entity.current.updated_at,
        }
    }
}

impl From<&Entity<InventoryItem>> for ItemView {
    fn from(entity: &Entity<InventoryItem>) -> Self {
        let state = &entity.current.state;
        Self {
            id: entity.id,
            warehouse_id: state.warehouse_id,
            sku: state.sku.clone(),
            product_id: state.product_id.clone(),
            on_hand: state.on_hand,
            allocated: state.allocated,
            reorder_threshold: state.reorder_threshold,
            reorder_quantity: state.reorder_quantity,
            active: state.active,
            version: entity.current.version,
            created_at: entity.current.created_at,
            updated_at: entity.current.updated_at,
        }
    }
}

impl From<&Entity<Allocation>> for AllocationView {
    fn from(entity: &Entity<Allocation>) -> Self {
        let state = &entity.current.state;
        Self {
            id: entity.id,
            order_id: state.order_id.clone(),
            item_id: state.item_id,
            warehouse_id: state.warehouse_id,
            quantity: state.quantity,
            status: state.status,
            cancel_reason: state.cancel_reason.clone(),
            version: entity.current.version,
            created_at: entity.current.created_at,
            updated_at: entity.current.updated_at,
        }
    }
}

// The pure half of the projectors, shared by every adapter: the next row given the current
// one and an event, folded with the domain's own `evolve`, so no adapter can disagree with the
// aggregate (or with another adapter) about what an event means. Adapters only persist.

impl WarehouseView {
    pub fn next(
        row: Option<&WarehouseView>,
        envelope: &EventEnvelope,
        event: &WarehouseEvent,
    ) -> WarehouseView {
        let mut state = match row {
            Some(view) => Warehouse {
                exists: true,
                code: view.code.clone(),
                details: WarehouseDetails {
                    name: view.name.clone(),
                    address: view.address.clone(),
                },
                active: view.active,
            },
            None => Warehouse::default(),
        };
        state.evolve(event);
        WarehouseView {
            id: envelope.aggregate_id,
            code: state.code,
            name: state.details.name,
            address: state.details.address,
            active: state.active,
            version: envelope.sequence_number,
            created_at: row.map_or(envelope.timestamp, |r| r.created_at),
            updated_at: envelope.timestamp,
        }
    }
}

impl ItemView {
    pub fn next(row: Option<&ItemView>, envelope: &EventEnvelope, event: &ItemEvent) -> ItemView {
        let mut state = match row {
            Some(view) => InventoryItem {
                exists: true,
                warehouse_id: view.warehouse_id,
                sku: view.sku.clone(),
                product_id: view.product_id.clone(),
                on_hand: view.on_hand,
                allocated: view.allocated,
                reorder_threshold: view.reorder_threshold,
                reorder_quantity: view.reorder_quantity,
                active: view.active,
            },
            None => InventoryItem::default(),
        };
        state.evolve(event);
        ItemView {
            id: envelope.aggregate_id,
            warehouse_id: state.warehouse_id,
            sku: state.sku,
            product_id: state.product_id,
            on_hand: state.on_hand,
            allocated: state.allocated,
            reorder_threshold: state.reorder_threshold,
            reorder_quantity: state.reorder_quantity,
            active: state.active,
            version: envelope.sequence_number,
            created_at: row.map_or(envelope.timestamp, |r| r.created_at),
            updated_at: envelope.timestamp,
        }
    }
}

impl AllocationView {
    pub fn next(
        row: Option<&AllocationView>,
        envelope: &EventEnvelope,
        event: &AllocationEvent,
    ) -> AllocationView {
        let mut state = match row {
            Some(view) => Allocation {
                exists: true,
                order_id: view.order_id.clone(),
                item_id: view.item_id,
                warehouse_id: view.warehouse_id,
                quantity: view.quantity,
                status: view.status,
                cancel_reason: view.cancel_reason.clone(),
            },
            None => Allocation::default(),
        };
        state.evolve(event);
        AllocationView {
            id: envelope.aggregate_id,
            order_id: state.order_id,
            item_id: state.item_id,
            warehouse_id: state.warehouse_id,
            quantity: state.quantity,
            status: state.status,
            cancel_reason: state.cancel_reason,
            version: envelope.sequence_number,
            created_at: row.map_or(envelope.timestamp, |r| r.created_at),
            updated_at: envelope.timestamp,
        }
    }
}

impl HistoryEntry {
    /// The history entry an item event makes: its creation and every on-hand change; none for
    /// the others.
    pub fn from_event(envelope: &EventEnvelope, event: &ItemEvent) -> Option<HistoryEntry> {
        let (reason, delta, quantity_after, reference) = match event {
            ItemEvent::InventoryItemCreated {
                initial_quantity, ..
            } => (
                "initial".to_owned(),
                *initial_quantity,
                *initial_quantity,
                None,
            ),
            ItemEvent::StockLevelChanged {
                new_quantity,
                delta,
                reason,
                reference,
                ..
            } => (
                reason.as_str().to_owned(),
                *delta,
                *new_quantity,
                reference.clone(),
            ),
            _ => return None,
        };
        Some(HistoryEntry {
            item_id: envelope.aggregate_id,
            sequence_number: envelope.sequence_number,
            reason,
            delta,
            quantity_after,
            reference,
            actor: envelope.metadata.actor.clone(),
            correlation_id: envelope.metadata.correlation_id.clone(),
            occurred_at: envelope.timestamp,
        })
    }
}

/// The UTC day of a timestamp in ms, as `YYYY-MM-DD`.
pub fn day_of(timestamp_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(timestamp_ms)
        .map(|t| t.date_naive().to_string())
        .unwrap_or_else(|| "1970-01-01".to_owned())
}

/// One event's contribution to its day's counters, or several events' summed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Movement {
    pub received: i64,
    pub removed: i64,
    pub allocated: i64,
    pub released: i64,
    pub fulfilled: i64,
    pub net: i64,
}

impl Movement {
    pub fn add(&mut self, other: &Movement) {
        self.received += other.received;
        self.removed += other.removed;
        self.allocated += other.allocated;
        self.released += other.released;
        self.fulfilled += other.fulfilled;
        self.net += other.net;
    }
}

/// What an event adds to its item's day in the stock movement report (both stores): on-hand
/// changes split by sign into received and removed, except a fulfilment, which counts as
/// fulfilled; reservations and releases count apart; other events count nothing.
pub fn movement_of(event: &ItemEvent) -> Option<Movement> {
    let zero = Movement::default();
    Some(match *event {
        ItemEvent::InventoryItemCreated {
            initial_quantity, ..
        } => Movement {
            received: initial_quantity,
            net: initial_quantity,
            ..zero
        },
        ItemEvent::StockLevelChanged { delta, reason, .. } => match reason {
            StockChangeReason::AllocationFulfilled => Movement {
                fulfilled: -delta,
                net: delta,
                ..zero
            },
            _ if delta > 0 => Movement {
                received: delta,
                net: delta,
                ..zero
            },
            _ => Movement {
                removed: -delta,
                net: delta,
                ..zero
            },
        },
        ItemEvent::StockAllocated { quantity, .. } => Movement {
            allocated: quantity,
            ..zero
        },
        ItemEvent::StockDeallocated { quantity, .. } => Movement {
            released: quantity,
            ..zero
        },
        _ => return None,
    })
}
