//! The read models: what queries return and what change notifications carry. Plain data,
//! built by projectors from events (the pure fold is `fold`, shared by every adapter), or from
//! a command's outcome for mutation payloads.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::application::Entity;
use crate::domain::allocation::{Allocation, AllocationStatus};
use crate::domain::item::InventoryItem;
use crate::domain::transfer::{Transfer, TransferStatus};
use crate::domain::warehouse::Warehouse;

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
    /// Stock shipped to this item by transfers not yet received.
    #[serde(default)]
    pub incoming: i64,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ItemView {
    pub fn available(&self) -> i64 {
        self.on_hand - self.allocated
    }

    /// The domain's rule (`InventoryItem::low_stock`) on this row's counts; the SQLite
    /// projection's index and filter are its one rendering in SQL (`sqlite::LOW_STOCK`).
    pub fn low_stock(&self) -> bool {
        InventoryItem {
            exists: true,
            on_hand: self.on_hand,
            allocated: self.allocated,
            reorder_threshold: self.reorder_threshold,
            ..InventoryItem::default()
        }
        .low_stock()
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
    /// The deadline (ms), as on the aggregate: none once confirmed. A created row whose
    /// deadline has passed is due for expiry (`ReadModel::due_allocations`).
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl AllocationView {
    /// Whether the sweeper should find this row at `now`: still created, its deadline passed.
    pub fn is_due(&self, now: i64) -> bool {
        self.status == AllocationStatus::Created && self.expires_at.is_some_and(|d| d <= now)
    }

    /// Whether this row belongs in the index of open deadlines (created, with a deadline).
    pub fn awaits_expiry(&self) -> bool {
        self.status == AllocationStatus::Created && self.expires_at.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransferView {
    pub id: Uuid,
    pub from_item_id: Uuid,
    pub to_item_id: Uuid,
    pub from_warehouse_id: Uuid,
    pub to_warehouse_id: Uuid,
    pub sku: String,
    pub quantity: i64,
    pub quantity_received: Option<i64>,
    pub status: TransferStatus,
    pub reference: Option<String>,
    pub cancel_reason: Option<String>,
    pub version: u64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl TransferView {
    /// Whether the transfer concerns this warehouse (it leaves or enters it).
    pub fn touches(&self, warehouse_id: Uuid) -> bool {
        self.from_warehouse_id == warehouse_id || self.to_warehouse_id == warehouse_id
    }
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
            incoming: state.incoming,
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
            expires_at: state.expires_at,
            version: entity.current.version,
            created_at: entity.current.created_at,
            updated_at: entity.current.updated_at,
        }
    }
}

impl From<&Entity<Transfer>> for TransferView {
    fn from(entity: &Entity<Transfer>) -> Self {
        let at = &entity.current;
        TransferView::of(
            entity.id,
            &at.state,
            at.version,
            at.created_at,
            at.updated_at,
        )
    }
}

impl TransferView {
    /// The row of a transfer in `state` at stream position `version`, first written at
    /// `created_at` and last at `updated_at` (ms since epoch).
    pub fn of(id: Uuid, state: &Transfer, version: u64, created_at: i64, updated_at: i64) -> Self {
        Self {
            id,
            from_item_id: state.from_item_id,
            to_item_id: state.to_item_id,
            from_warehouse_id: state.from_warehouse_id,
            to_warehouse_id: state.to_warehouse_id,
            sku: state.sku.clone(),
            quantity: state.quantity,
            quantity_received: state.quantity_received,
            status: state.status,
            reference: state.reference.clone(),
            cancel_reason: state.cancel_reason.clone(),
            version,
            created_at,
            updated_at,
        }
    }
}
