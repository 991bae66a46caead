//! The InventoryItem decider: one SKU at one warehouse. It keeps on hand and allocated stock,
//! with available = on hand − allocated never negative, and raises `LowStockThresholdReached`
//! only when available crosses from above the reorder threshold to at-or-below it, so a
//! subscriber hears once per dip rather than on every change.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use super::count::CountReason;
use super::validate::{self, PRODUCT_ID_MAX, REASON_MAX, REFERENCE_MAX, SKU_MAX};
use super::warehouse::Warehouse;
use super::{Aggregate, AggregateType, DomainError, DomainEvent, MAX_QUANTITY};

/// Why on-hand stock changed. The first six are what a client may send with an adjustment;
/// `CycleCount` is written by a count (`inventorySetOnHand`, which may also say `Correction`);
/// `AllocationFulfilled` only when an allocation's stock leaves the warehouse; `TransferShipped`
/// when a transfer's stock leaves its source, `TransferReceived` when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StockChangeReason {
    Received,
    Sold,
    Damaged,
    Returned,
    Correction,
    Other,
    CycleCount,
    AllocationFulfilled,
    TransferShipped,
    TransferReceived,
}

impl StockChangeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Received => "received",
            Self::Sold => "sold",
            Self::Damaged => "damaged",
            Self::Returned => "returned",
            Self::Correction => "correction",
            Self::Other => "other",
            Self::CycleCount => "cycle_count",
            Self::AllocationFulfilled => "allocation_fulfilled",
            Self::TransferShipped => "transfer_shipped",
            Self::TransferReceived => "transfer_received",
        }
    }

    /// Whether the change also consumes a reservation of the same size (allocated falls by
    /// the stock that left): a fulfilment, or a transfer shipped.
    pub fn consumes_reservation(self) -> bool {
        matches!(self, Self::AllocationFulfilled | Self::TransferShipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "eventData")]
pub enum ItemEvent {
    #[serde(rename_all = "camelCase")]
    InventoryItemCreated {
        warehouse_id: Uuid,
        sku: String,
        product_id: String,
        initial_quantity: i64,
        reorder_threshold: i64,
        reorder_quantity: i64,
    },
    /// On-hand stock changed. When `reason` is `allocation_fulfilled` (or `transfer_shipped`)
    /// the fulfilled allocation's (the shipped transfer's) reservation is consumed too:
    /// allocated falls by the same amount; `reference` then names the allocation or transfer. A count
    /// (`cycle_count`, or a counted `correction`) records the counted figure as `new_quantity`
    /// and the difference it found as `delta`, which may be 0: a count that found the books
    /// right is a fact of the audit trail too.
    #[serde(rename_all = "camelCase")]
    StockLevelChanged {
        previous_quantity: i64,
        new_quantity: i64,
        delta: i64,
        reason: StockChangeReason,
        reference: Option<String>,
        allocation_id: Option<Uuid>,
    },
    /// Stock reserved for an allocation: allocated rises, on hand is unchanged.
    #[serde(rename_all = "camelCase")]
    StockAllocated {
        allocation_id: Uuid,
        order_id: String,
        quantity: i64,
    },
    /// A reservation released because its allocation was cancelled.
    #[serde(rename_all = "camelCase")]
    StockDeallocated {
        allocation_id: Uuid,
        quantity: i64,
        reason: String,
    },
    /// Stock reserved at a transfer's source: allocated rises, on hand is unchanged.
    #[serde(rename_all = "camelCase")]
    TransferStockReserved { transfer_id: Uuid, quantity: i64 },
    /// A transfer's reservation released because it was cancelled before shipping.
    #[serde(rename_all = "camelCase")]
    TransferStockReleased {
        transfer_id: Uuid,
        quantity: i64,
        reason: String,
    },
    /// Stock on its way to this item (a transfer shipped to it: `delta` > 0) or no longer
    /// (the transfer received: `delta` < 0, what was shipped, whatever arrived).
    #[serde(rename_all = "camelCase")]
    IncomingStockChanged {
        transfer_id: Uuid,
        previous_incoming: i64,
        new_incoming: i64,
        delta: i64,
    },
    #[serde(rename_all = "camelCase")]
    LowStockThresholdReached {
        sku: String,
        warehouse_id: Uuid,
        /// Available stock at the moment the threshold was reached.
        current_quantity: i64,
        threshold: i64,
        suggested_reorder_quantity: i64,
    },
    #[serde(rename_all = "camelCase")]
    ReorderSettingsChanged {
        previous_threshold: i64,
        previous_quantity: i64,
        reorder_threshold: i64,
        reorder_quantity: i64,
    },
    #[serde(rename_all = "camelCase")]
    InventoryItemDeactivated { reason: String },
}

impl DomainEvent for ItemEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::InventoryItemCreated { .. } => "InventoryItemCreated",
            Self::StockLevelChanged { .. } => "StockLevelChanged",
            Self::StockAllocated { .. } => "StockAllocated",
            Self::StockDeallocated { .. } => "StockDeallocated",
            Self::TransferStockReserved { .. } => "TransferStockReserved",
            Self::TransferStockReleased { .. } => "TransferStockReleased",
            Self::IncomingStockChanged { .. } => "IncomingStockChanged",
            Self::LowStockThresholdReached { .. } => "LowStockThresholdReached",
            Self::ReorderSettingsChanged { .. } => "ReorderSettingsChanged",
            Self::InventoryItemDeactivated { .. } => "InventoryItemDeactivated",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InventoryItem {
    pub exists: bool,
    pub warehouse_id: Uuid,
    pub sku: String,
    pub product_id: String,
    pub on_hand: i64,
    pub allocated: i64,
    pub reorder_threshold: i64,
    pub reorder_quantity: i64,
    pub active: bool,
    /// Stock shipped to this item by transfers not yet received. A snapshot from before
    /// transfers existed reads as none, which it was: the state version stays 1.
    #[serde(default)]
    pub incoming: i64,
}

impl InventoryItem {
    pub fn available(&self) -> i64 {
        self.on_hand - self.allocated
    }

    pub fn low_stock(&self) -> bool {
        self.exists && self.available() <= self.reorder_threshold
    }

    /// Enough to lift available back above the threshold, and at least the configured
    /// reorder quantity.
    pub fn suggested_reorder_quantity(&self) -> i64 {
        let to_clear_threshold = self.reorder_threshold - self.available() + 1;
        self.reorder_quantity.max(to_clear_threshold).max(0)
    }

    pub fn ensure_exists(&self, id: Uuid, field: &'static str) -> Result<(), DomainError> {
        if self.exists {
            Ok(())
        } else {
            Err(DomainError::NotFound {
                entity: "inventory item",
                id: id.to_string(),
                field,
            })
        }
    }

    pub fn ensure_active(&self, id: Uuid, field: &'static str) -> Result<(), DomainError> {
        self.ensure_exists(id, field)?;
        if self.active {
            Ok(())
        } else {
            Err(DomainError::Inactive {
                entity: "inventory item",
                field,
            })
        }
    }

    /// Reserves stock for a new allocation (the item's half of `allocationCreate`).
    pub fn reserve(
        &self,
        allocation_id: Uuid,
        order_id: &str,
        quantity: i64,
    ) -> Result<Vec<ItemEvent>, DomainError> {
        if quantity > self.available() {
            return Err(DomainError::InsufficientStock {
                requested: quantity,
                available: self.available(),
            });
        }
        Ok(self.with_low_stock_alert(vec![ItemEvent::StockAllocated {
            allocation_id,
            order_id: order_id.to_owned(),
            quantity,
        }]))
    }

    /// Releases a cancelled allocation's reservation.
    pub fn release(&self, allocation_id: Uuid, quantity: i64, reason: &str) -> Vec<ItemEvent> {
        vec![ItemEvent::StockDeallocated {
            allocation_id,
            quantity,
            reason: reason.to_owned(),
        }]
    }

    /// Removes a fulfilled allocation's stock from the warehouse.
    pub fn consume(&self, allocation_id: Uuid, quantity: i64) -> Vec<ItemEvent> {
        vec![ItemEvent::StockLevelChanged {
            previous_quantity: self.on_hand,
            new_quantity: self.on_hand - quantity,
            delta: -quantity,
            reason: StockChangeReason::AllocationFulfilled,
            reference: Some(allocation_id.to_string()),
            allocation_id: Some(allocation_id),
        }]
    }

    /// Appends `LowStockThresholdReached` when these events take available from above the
    /// threshold to at-or-below it. A brand-new item counts as coming from above.
    pub(super) fn with_low_stock_alert(&self, mut events: Vec<ItemEvent>) -> Vec<ItemEvent> {
        let was_low = self.exists && self.low_stock();
        let mut after = self.clone();
        for event in &events {
            after.evolve(event);
        }
        if !was_low && after.low_stock() && after.active {
            events.push(ItemEvent::LowStockThresholdReached {
                sku: after.sku.clone(),
                warehouse_id: after.warehouse_id,
                current_quantity: after.available(),
                threshold: after.reorder_threshold,
                suggested_reorder_quantity: after.suggested_reorder_quantity(),
            });
        }
        events
    }
}

impl Aggregate for InventoryItem {
    const TYPE: AggregateType = AggregateType::InventoryItem;
    type Event = ItemEvent;

    fn evolve(&mut self, event: &ItemEvent) {
        match event {
            ItemEvent::InventoryItemCreated {
                warehouse_id,
                sku,
                product_id,
                initial_quantity,
                reorder_threshold,
                reorder_quantity,
            } => {
                *self = InventoryItem {
                    exists: true,
                    warehouse_id: *warehouse_id,
                    sku: sku.clone(),
                    product_id: product_id.clone(),
                    on_hand: *initial_quantity,
                    allocated: 0,
                    reorder_threshold: *reorder_threshold,
                    reorder_quantity: *reorder_quantity,
                    active: true,
                    incoming: 0,
                };
            }
            ItemEvent::StockLevelChanged {
                new_quantity,
                delta,
                reason,
                ..
            } => {
                self.on_hand = *new_quantity;
                if reason.consumes_reservation() {
                    self.allocated += delta;
                }
            }
            ItemEvent::StockAllocated { quantity, .. }
            | ItemEvent::TransferStockReserved { quantity, .. } => self.allocated += quantity,
            ItemEvent::StockDeallocated { quantity, .. }
            | ItemEvent::TransferStockReleased { quantity, .. } => self.allocated -= quantity,
            ItemEvent::IncomingStockChanged { new_incoming, .. } => self.incoming = *new_incoming,
            ItemEvent::LowStockThresholdReached { .. } => {}
            ItemEvent::ReorderSettingsChanged {
                reorder_threshold,
                reorder_quantity,
                ..
            } => {
                self.reorder_threshold = *reorder_threshold;
                self.reorder_quantity = *reorder_quantity;
            }
            ItemEvent::InventoryItemDeactivated { .. } => self.active = false,
        }
    }
}

/// The reasons a client may give for an adjustment, each with the sign it implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AdjustmentReason {
    Received,
    Sold,
    Damaged,
    Returned,
    Correction,
    Other,
}

impl From<AdjustmentReason> for StockChangeReason {
    fn from(reason: AdjustmentReason) -> Self {
        match reason {
            AdjustmentReason::Received => Self::Received,
            AdjustmentReason::Sold => Self::Sold,
            AdjustmentReason::Damaged => Self::Damaged,
            AdjustmentReason::Returned => Self::Returned,
            AdjustmentReason::Correction => Self::Correction,
            AdjustmentReason::Other => Self::Other,
        }
    }
}

/// Serializable so that an idempotency key's fingerprint is the command itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ItemCommand {
    CreateItem {
        warehouse_id: Uuid,
        sku: String,
        product_id: String,
        initial_quantity: i64,
        reorder_threshold: i64,
        reorder_quantity: i64,
    },
    AdjustStock {
        delta: i64,
        reason: AdjustmentReason,
        reference: Option<String>,
    },
    UpdateReorderSettings {
        reorder_threshold: Option<i64>,
        reorder_quantity: Option<i64>,
    },
    DeactivateItem {
        reason: String,
    },
    /// Sets on hand to a counted figure (see `count`).
    SetOnHand {
        quantity: i64,
        compare_quantity: Option<i64>,
        reason: CountReason,
        reference: Option<String>,
    },
}

/// Decides an item command. `warehouse` is the item's warehouse as currently stored; the
/// caller commits on condition that it has not changed since.
pub fn decide(
    id: Uuid,
    state: &InventoryItem,
    warehouse: &Warehouse,
    command: ItemCommand,
) -> Result<Vec<ItemEvent>, DomainError> {
    match command {
        ItemCommand::CreateItem {
            warehouse_id,
            sku,
            product_id,
            initial_quantity,
            reorder_threshold,
            reorder_quantity,
        } => {
            let sku = validate::code("sku", &sku, SKU_MAX)?;
            let product_id = validate::required_text("productId", &product_id, PRODUCT_ID_MAX)?;
            let initial_quantity = validate::quantity("initialQuantity", initial_quantity, 0)?;
            let reorder_threshold = validate::quantity("reorderThreshold", reorder_threshold, 0)?;
            let reorder_quantity = validate::quantity("reorderQuantity", reorder_quantity, 0)?;
            warehouse.ensure_active(warehouse_id, "warehouseId")?;
            if state.exists {
                return Err(DomainError::invalid("id", "inventory item already exists"));
            }
            Ok(
                state.with_low_stock_alert(vec![ItemEvent::InventoryItemCreated {
                    warehouse_id,
                    sku,
                    product_id,
                    initial_quantity,
                    reorder_threshold,
                    reorder_quantity,
                }]),
            )
        }
        ItemCommand::AdjustStock {
            delta,
            reason,
            reference,
        } => {
            if delta == 0 || delta.unsigned_abs() > MAX_QUANTITY.unsigned_abs() {
                return Err(DomainError::invalid(
                    "delta",
                    format!("delta must be non-zero and at most {MAX_QUANTITY} in size"),
                ));
            }
            match reason {
                AdjustmentReason::Received | AdjustmentReason::Returned if delta < 0 => {
                    return Err(DomainError::invalid(
                        "delta",
                        "received and returned stock must have a positive delta",
                    ));
                }
                AdjustmentReason::Sold | AdjustmentReason::Damaged if delta > 0 => {
                    return Err(DomainError::invalid(
                        "delta",
                        "sold and damaged stock must have a negative delta",
                    ));
                }
                _ => {}
            }
            let reference =
                validate::optional_text("reference", reference.as_deref(), REFERENCE_MAX)?;
            state.ensure_active(id, "itemId")?;
            let new_quantity = state.on_hand + delta;
            if new_quantity > MAX_QUANTITY {
                return Err(DomainError::invalid(
                    "delta",
                    format!("on hand would be {new_quantity}, above the maximum of {MAX_QUANTITY}"),
                ));
            }
            if new_quantity < state.allocated {
                return Err(DomainError::InsufficientStock {
                    requested: -delta,
                    available: state.available(),
                });
            }
            Ok(
                state.with_low_stock_alert(vec![ItemEvent::StockLevelChanged {
                    previous_quantity: state.on_hand,
                    new_quantity,
                    delta,
                    reason: reason.into(),
                    reference,
                    allocation_id: None,
                }]),
            )
        }
        ItemCommand::UpdateReorderSettings {
            reorder_threshold,
            reorder_quantity,
        } => {
            let threshold = match reorder_threshold {
                Some(value) => validate::quantity("reorderThreshold", value, 0)?,
                None => state.reorder_threshold,
            };
            let quantity = match reorder_quantity {
                Some(value) => validate::quantity("reorderQuantity", value, 0)?,
                None => state.reorder_quantity,
            };
            state.ensure_active(id, "itemId")?;
            if threshold == state.reorder_threshold && quantity == state.reorder_quantity {
                return Ok(vec![]);
            }
            Ok(
                state.with_low_stock_alert(vec![ItemEvent::ReorderSettingsChanged {
                    previous_threshold: state.reorder_threshold,
                    previous_quantity: state.reorder_quantity,
                    reorder_threshold: threshold,
                    reorder_quantity: quantity,
                }]),
            )
        }
        ItemCommand::DeactivateItem { reason } => {
            let reason = validate::required_text("reason", &reason, REASON_MAX)?;
            state.ensure_active(id, "itemId")?;
            Ok(vec![ItemEvent::InventoryItemDeactivated { reason }])
        }
        ItemCommand::SetOnHand {
            quantity,
            compare_quantity,
            reason,
            reference,
        } => state.count(id, quantity, compare_quantity, reason, reference),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::story::given;
    use crate::domain::warehouse::WarehouseEvent;

    const WAREHOUSE: Uuid = Uuid::from_u128(7);

    fn active_warehouse() -> Warehouse {
        given::<Warehouse>(&[WarehouseEvent::WarehouseCreated {
            code: "W".into(),
            name: "W".into(),
            address: None,
        }])
        .state
    }

    fn created(on_hand: i64, threshold: i64) -> ItemEvent {
        ItemEvent::InventoryItemCreated {
            warehouse_id: WAREHOUSE,
            sku: "SKU-1".into(),
            product_id: "P-1".into(),
            initial_quantity: on_hand,
            reorder_threshold: threshold,
            reorder_quantity: 50,
        }
    }

    fn when(history: &[ItemEvent], command: ItemCommand) -> Result<Vec<ItemEvent>, DomainError> {
        let state = given::<InventoryItem>(history);
        decide(Uuid::nil(), &state.state, &active_warehouse(), command)
    }

    fn adjust(delta: i64, reason: AdjustmentReason) -> ItemCommand {
        ItemCommand::AdjustStock {
            delta,
            reason,
            reference: None,
        }
    }

    fn create_command(initial: i64) -> ItemCommand {
        ItemCommand::CreateItem {
            warehouse_id: WAREHOUSE,
            sku: "SKU-1".into(),
            product_id: "P-1".into(),
            initial_quantity: initial,
            reorder_threshold: 5,
            reorder_quantity: 50,
        }
    }

    #[test]
    fn creating_an_item_above_threshold_raises_no_alert() {
        assert_eq!(when(&[], create_command(100)), Ok(vec![created(100, 5)]));
    }

    #[test]
    fn creating_an_item_at_or_below_threshold_raises_an_alert() {
        let events = when(&[], create_command(5)).unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(
            events[1],
            ItemEvent::LowStockThresholdReached {
                current_quantity: 5,
                threshold: 5,
                suggested_reorder_quantity: 50,
                ..
            }
        ));
    }

    #[test]
    fn an_item_cannot_be_created_in_an_inactive_warehouse() {
        let mut warehouse = active_warehouse();
        warehouse.active = false;
        let result = decide(
            Uuid::nil(),
            &InventoryItem::default(),
            &warehouse,
            create_command(1),
        );
        assert_eq!(result.unwrap_err().code(), "INACTIVE");
    }

    #[test]
    fn an_item_cannot_be_created_in_an_unknown_warehouse() {
        let result = decide(
            Uuid::nil(),
            &InventoryItem::default(),
            &Warehouse::default(),
            create_command(1),
        );
        assert_eq!(result.unwrap_err().field(), Some("warehouseId"));
    }

    #[test]
    fn negative_initial_quantity_is_invalid() {
        assert_eq!(
            when(&[], create_command(-1)).unwrap_err().code(),
            "INVALID_INPUT"
        );
    }

    #[test]
    fn receiving_stock_records_previous_and_new_quantity() {
        let events = when(&[created(10, 5)], adjust(7, AdjustmentReason::Received));
        assert_eq!(
            events,
            Ok(vec![ItemEvent::StockLevelChanged {
                previous_quantity: 10,
                new_quantity: 17,
                delta: 7,
                reason: StockChangeReason::Received,
                reference: None,
                allocation_id: None,
            }])
        );
    }

    #[test]
    fn crossing_the_threshold_from_above_raises_one_alert() {
        let events = when(&[created(10, 5)], adjust(-6, AdjustmentReason::Sold)).unwrap();
        assert_eq!(events.len(), 2);
        assert!(matches!(
            events[1],
            ItemEvent::LowStockThresholdReached {
                current_quantity: 4,
                threshold: 5,
                suggested_reorder_quantity: 50,
                ..
            }
        ));
    }

    #[test]
    fn staying_below_the_threshold_raises_no_further_alert() {
        let history = [
            created(10, 5),
            ItemEvent::StockLevelChanged {
                previous_quantity: 10,
                new_quantity: 4,
                delta: -6,
                reason: StockChangeReason::Sold,
                reference: None,
                allocation_id: None,
            },
        ];
        let events = when(&history, adjust(-1, AdjustmentReason::Sold)).unwrap();
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn rising_above_the_threshold_rearms_the_alert() {
        let history = [
            created(4, 5),
            ItemEvent::StockLevelChanged {
                previous_quantity: 4,
                new_quantity: 20,
                delta: 16,
                reason: StockChangeReason::Received,
                reference: None,
                allocation_id: None,
            },
        ];
        let events = when(&history, adjust(-15, AdjustmentReason::Sold)).unwrap();
        assert!(matches!(
            events.last(),
            Some(ItemEvent::LowStockThresholdReached {
                current_quantity: 5,
                ..
            })
        ));
    }

    #[test]
    fn lowering_the_threshold_below_available_then_raising_it_alerts() {
        let history = [created(10, 5)];
        let events = when(
            &history,
            ItemCommand::UpdateReorderSettings {
                reorder_threshold: Some(12),
                reorder_quantity: None,
            },
        )
        .unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
    }

    #[test]
    fn the_suggested_reorder_quantity_clears_the_threshold() {
        let item = InventoryItem {
            exists: true,
            on_hand: 0,
            reorder_threshold: 80,
            reorder_quantity: 10,
            active: true,
            ..InventoryItem::default()
        };
        assert_eq!(item.suggested_reorder_quantity(), 81);
    }

    #[test]
    fn available_stock_can_never_go_negative() {
        let history = [
            created(10, 0),
            ItemEvent::StockAllocated {
                allocation_id: Uuid::from_u128(1),
                order_id: "o".into(),
                quantity: 8,
            },
        ];
        let result = when(&history, adjust(-3, AdjustmentReason::Damaged));
        assert_eq!(result.unwrap_err().code(), "INSUFFICIENT_STOCK");
    }

    #[test]
    fn a_zero_delta_is_invalid() {
        let result = when(&[created(10, 0)], adjust(0, AdjustmentReason::Correction));
        assert_eq!(result.unwrap_err().field(), Some("delta"));
    }

    #[test]
    fn the_reason_must_match_the_sign_of_the_delta() {
        let sold_up = when(&[created(10, 0)], adjust(3, AdjustmentReason::Sold));
        assert_eq!(sold_up.unwrap_err().code(), "INVALID_INPUT");
        let received_down = when(&[created(10, 0)], adjust(-3, AdjustmentReason::Received));
        assert_eq!(received_down.unwrap_err().code(), "INVALID_INPUT");
    }

    #[test]
    fn on_hand_cannot_overflow_the_maximum() {
        let result = when(
            &[created(MAX_QUANTITY, 0)],
            adjust(1, AdjustmentReason::Received),
        );
        assert_eq!(result.unwrap_err().code(), "INVALID_INPUT");
        let huge = when(
            &[created(0, 0)],
            adjust(i64::MAX, AdjustmentReason::Received),
        );
        assert_eq!(huge.unwrap_err().code(), "INVALID_INPUT");
        let min = when(
            &[created(0, 0)],
            adjust(i64::MIN, AdjustmentReason::Correction),
        );
        assert_eq!(min.unwrap_err().code(), "INVALID_INPUT");
    }

    #[test]
    fn an_unknown_item_is_not_found() {
        let result = when(&[], adjust(1, AdjustmentReason::Received));
        assert_eq!(result.unwrap_err().code(), "NOT_FOUND");
    }

    #[test]
    fn an_inactive_item_takes_no_adjustments() {
        let history = [
            created(10, 0),
            ItemEvent::InventoryItemDeactivated {
                reason: "discontinued".into(),
            },
        ];
        let result = when(&history, adjust(1, AdjustmentReason::Received));
        assert_eq!(result.unwrap_err().code(), "INACTIVE");
    }

    #[test]
    fn unchanged_reorder_settings_record_nothing() {
        let result = when(
            &[created(10, 5)],
            ItemCommand::UpdateReorderSettings {
                reorder_threshold: Some(5),
                reorder_quantity: Some(50),
            },
        );
        assert_eq!(result, Ok(vec![]));
    }

    #[test]
    fn fulfilment_consumes_the_reservation_and_the_stock() {
        let mut item = given::<InventoryItem>(&[created(10, 0)]).state;
        let allocation = Uuid::from_u128(9);
        for event in item.reserve(allocation, "o-1", 4).unwrap() {
            item.evolve(&event);
        }
        for event in item.consume(allocation, 4) {
            item.evolve(&event);
        }
        assert_eq!((item.on_hand, item.allocated, item.available()), (6, 0, 6));
    }
}
