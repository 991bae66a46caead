//! The Transfer decider: stock moving from an item at one warehouse to the item of the same
//! SKU at another. Created (the stock reserved at the source) → shipped (gone from the
//! source's on hand, incoming at the destination) → received (on hand at the destination by
//! what arrived, a shortfall recorded); or cancelled before shipping (the reservation
//! released). Like an allocation's, every decision yields the items' halves too, so that the
//! caller commits the transfer and both items in one conditional commit: a transfer can never
//! oversell its source, and incoming never disagrees with the transfers in flight.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::item::{InventoryItem, ItemEvent, StockChangeReason};
use super::validate::{self, REASON_MAX, REFERENCE_MAX};
use super::warehouse::Warehouse;
use super::{Aggregate, AggregateType, DomainError, DomainEvent};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TransferStatus {
    #[default]
    Created,
    Shipped,
    Received,
    Cancelled,
}

impl TransferStatus {
    pub const ALL: [Self; 4] = [
        Self::Created,
        Self::Shipped,
        Self::Received,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Shipped => "SHIPPED",
            Self::Received => "RECEIVED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Shipped => "shipped",
            Self::Received => "received",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether the transfer still holds stock: reserved at the source (created) or incoming
    /// at the destination (shipped).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Created | Self::Shipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "eventData")]
pub enum TransferEvent {
    #[serde(rename_all = "camelCase")]
    TransferCreated {
        from_item_id: Uuid,
        to_item_id: Uuid,
        from_warehouse_id: Uuid,
        to_warehouse_id: Uuid,
        sku: String,
        quantity: i64,
        reference: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    TransferShipped { quantity: i64 },
    /// What arrived; `shortfall` is what was shipped but did not.
    #[serde(rename_all = "camelCase")]
    TransferReceived {
        quantity_received: i64,
        shortfall: i64,
    },
    #[serde(rename_all = "camelCase")]
    TransferCancelled { reason: String },
}

impl DomainEvent for TransferEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::TransferCreated { .. } => "TransferCreated",
            Self::TransferShipped { .. } => "TransferShipped",
            Self::TransferReceived { .. } => "TransferReceived",
            Self::TransferCancelled { .. } => "TransferCancelled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    pub exists: bool,
    pub from_item_id: Uuid,
    pub to_item_id: Uuid,
    pub from_warehouse_id: Uuid,
    pub to_warehouse_id: Uuid,
    pub sku: String,
    pub quantity: i64,
    pub reference: Option<String>,
    pub status: TransferStatus,
    /// Set once received.
    pub quantity_received: Option<i64>,
    pub cancel_reason: Option<String>,
}

impl Aggregate for Transfer {
    const TYPE: AggregateType = AggregateType::Transfer;
    type Event = TransferEvent;

    fn evolve(&mut self, event: &TransferEvent) {
        match event {
            TransferEvent::TransferCreated {
                from_item_id,
                to_item_id,
                from_warehouse_id,
                to_warehouse_id,
                sku,
                quantity,
                reference,
            } => {
                *self = Transfer {
                    exists: true,
                    from_item_id: *from_item_id,
                    to_item_id: *to_item_id,
                    from_warehouse_id: *from_warehouse_id,
                    to_warehouse_id: *to_warehouse_id,
                    sku: sku.clone(),
                    quantity: *quantity,
                    reference: reference.clone(),
                    status: TransferStatus::Created,
                    quantity_received: None,
                    cancel_reason: None,
                }
            }
            TransferEvent::TransferShipped { .. } => self.status = TransferStatus::Shipped,
            TransferEvent::TransferReceived {
                quantity_received, ..
            } => {
                self.status = TransferStatus::Received;
                self.quantity_received = Some(*quantity_received);
            }
            TransferEvent::TransferCancelled { reason } => {
                self.status = TransferStatus::Cancelled;
                self.cancel_reason = Some(reason.clone());
            }
        }
    }
}

/// Serializable so that an idempotency key's fingerprint is the command itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum TransferCommand {
    /// `to_item_id` is the destination item: the source's SKU in `to_warehouse_id`, new (its
    /// state not existing) when that warehouse has no such item yet.
    CreateTransfer {
        from_item_id: Uuid,
        to_warehouse_id: Uuid,
        to_item_id: Uuid,
        quantity: i64,
        reference: Option<String>,
    },
    ShipTransfer,
    ReceiveTransfer {
        quantity_received: i64,
    },
    CancelTransfer {
        reason: String,
    },
}

/// The events of one transfer decision: the transfer's, the source item's, the destination
/// item's.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferDecision {
    pub transfer: Vec<TransferEvent>,
    pub source: Vec<ItemEvent>,
    pub destination: Vec<ItemEvent>,
}

/// The items and warehouses a transfer decision reads.
pub struct Sides<'a> {
    pub source: &'a InventoryItem,
    pub destination: &'a InventoryItem,
    /// The destination's warehouse (only creation reads it: it must be active).
    pub to_warehouse: &'a Warehouse,
    /// The source's warehouse (only creation reads it: it must be active).
    pub from_warehouse: &'a Warehouse,
}

/// Decides a transfer command. `sides` are the transfer's items as stored (for a new
/// transfer: the source named and the destination found or to be created).
pub fn decide(
    id: Uuid,
    state: &Transfer,
    sides: Sides<'_>,
    command: TransferCommand,
) -> Result<TransferDecision, DomainError> {
    if !matches!(command, TransferCommand::CreateTransfer { .. }) && !state.exists {
        return Err(DomainError::NotFound {
            entity: "transfer",
            id: id.to_string(),
            field: "id",
        });
    }
    let Sides {
        source,
        destination,
        to_warehouse,
        from_warehouse,
    } = sides;
    match command {
        TransferCommand::CreateTransfer {
            from_item_id,
            to_warehouse_id,
            to_item_id,
            quantity,
            reference,
        } => {
            let quantity = validate::quantity("quantity", quantity, 1)?;
            let reference =
                validate::optional_text("reference", reference.as_deref(), REFERENCE_MAX)?;
            if state.exists {
                return Err(DomainError::invalid("id", "transfer already exists"));
            }
            source.ensure_active(from_item_id, "fromItemId")?;
            from_warehouse.ensure_active(source.warehouse_id, "fromItemId")?;
            if to_warehouse_id == source.warehouse_id {
                return Err(DomainError::invalid(
                    "toWarehouseId",
                    "a transfer must go to another warehouse than its source's",
                ));
            }
            to_warehouse.ensure_active(to_warehouse_id, "toWarehouseId")?;
            let mut destination_events = Vec::new();
            if destination.exists {
                destination.ensure_active(to_item_id, "toWarehouseId")?;
            } else {
                // The same SKU, new at the destination, with the source's reorder settings.
                destination_events =
                    destination.with_low_stock_alert(vec![ItemEvent::InventoryItemCreated {
                        warehouse_id: to_warehouse_id,
                        sku: source.sku.clone(),
                        product_id: source.product_id.clone(),
                        initial_quantity: 0,
                        reorder_threshold: source.reorder_threshold,
                        reorder_quantity: source.reorder_quantity,
                    }]);
            }
            if quantity > source.available() {
                return Err(DomainError::InsufficientStock {
                    requested: quantity,
                    available: source.available(),
                });
            }
            Ok(TransferDecision {
                transfer: vec![TransferEvent::TransferCreated {
                    from_item_id,
                    to_item_id,
                    from_warehouse_id: source.warehouse_id,
                    to_warehouse_id,
                    sku: source.sku.clone(),
                    quantity,
                    reference,
                }],
                source: source.with_low_stock_alert(vec![ItemEvent::TransferStockReserved {
                    transfer_id: id,
                    quantity,
                }]),
                destination: destination_events,
            })
        }
        TransferCommand::ShipTransfer => {
            transition(state, "ship", TransferStatus::Created)?;
            let quantity = state.quantity;
            Ok(TransferDecision {
                transfer: vec![TransferEvent::TransferShipped { quantity }],
                source: vec![ItemEvent::StockLevelChanged {
                    previous_quantity: source.on_hand,
                    new_quantity: source.on_hand - quantity,
                    delta: -quantity,
                    reason: StockChangeReason::TransferShipped,
                    reference: Some(id.to_string()),
                    allocation_id: None,
                }],
                destination: vec![incoming(destination, id, quantity)],
            })
        }
        TransferCommand::ReceiveTransfer { quantity_received } => {
            let received = validate::quantity("quantityReceived", quantity_received, 0)?;
            transition(state, "receive", TransferStatus::Shipped)?;
            if received > state.quantity {
                return Err(DomainError::invalid(
                    "quantityReceived",
                    format!(
                        "quantityReceived ({received}) is more than was shipped ({})",
                        state.quantity
                    ),
                ));
            }
            let mut events = Vec::new();
            if received > 0 {
                events.push(ItemEvent::StockLevelChanged {
                    previous_quantity: destination.on_hand,
                    new_quantity: destination.on_hand + received,
                    delta: received,
                    reason: StockChangeReason::TransferReceived,
                    reference: Some(id.to_string()),
                    allocation_id: None,
                });
            }
            events.push(incoming(destination, id, -state.quantity));
            Ok(TransferDecision {
                transfer: vec![TransferEvent::TransferReceived {
                    quantity_received: received,
                    shortfall: state.quantity - received,
                }],
                source: vec![],
                destination: events,
            })
        }
        TransferCommand::CancelTransfer { reason } => {
            let reason = validate::required_text("reason", &reason, REASON_MAX)?;
            transition(state, "cancel", TransferStatus::Created)?;
            Ok(TransferDecision {
                source: vec![ItemEvent::TransferStockReleased {
                    transfer_id: id,
                    quantity: state.quantity,
                    reason: reason.clone(),
                }],
                transfer: vec![TransferEvent::TransferCancelled { reason }],
                destination: vec![],
            })
        }
    }
}

fn incoming(item: &InventoryItem, transfer_id: Uuid, delta: i64) -> ItemEvent {
    ItemEvent::IncomingStockChanged {
        transfer_id,
        previous_incoming: item.incoming,
        new_incoming: item.incoming + delta,
        delta,
    }
}

fn transition(
    state: &Transfer,
    action: &'static str,
    allowed_from: TransferStatus,
) -> Result<(), DomainError> {
    if state.status == allowed_from {
        Ok(())
    } else {
        Err(DomainError::InvalidStateTransition {
            from: state.status.describe(),
            action,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::story::given;
    use crate::domain::warehouse::WarehouseEvent;

    const TRANSFER: Uuid = Uuid::from_u128(1);
    const SOURCE: Uuid = Uuid::from_u128(2);
    const DESTINATION: Uuid = Uuid::from_u128(3);
    const FROM: Uuid = Uuid::from_u128(4);
    const TO: Uuid = Uuid::from_u128(5);

    fn warehouse() -> Warehouse {
        given::<Warehouse>(&[WarehouseEvent::WarehouseCreated {
            code: "W".into(),
            name: "W".into(),
            address: None,
        }])
        .state
    }

    fn item(warehouse_id: Uuid, on_hand: i64) -> InventoryItem {
        given::<InventoryItem>(&[ItemEvent::InventoryItemCreated {
            warehouse_id,
            sku: "S".into(),
            product_id: "P".into(),
            initial_quantity: on_hand,
            reorder_threshold: 2,
            reorder_quantity: 10,
        }])
        .state
    }

    fn create(quantity: i64) -> TransferCommand {
        TransferCommand::CreateTransfer {
            from_item_id: SOURCE,
            to_warehouse_id: TO,
            to_item_id: DESTINATION,
            quantity,
            reference: Some("T-1".into()),
        }
    }

    /// Decides `command` on a transfer with `history`, source and destination folded with
    /// their histories' decisions applied.
    fn when(
        history: &[TransferEvent],
        source: &InventoryItem,
        destination: &InventoryItem,
        command: TransferCommand,
    ) -> Result<TransferDecision, DomainError> {
        let (w1, w2) = (warehouse(), warehouse());
        decide(
            TRANSFER,
            &given::<Transfer>(history).state,
            Sides {
                source,
                destination,
                to_warehouse: &w2,
                from_warehouse: &w1,
            },
            command,
        )
    }

    fn applied(mut item: InventoryItem, events: &[ItemEvent]) -> InventoryItem {
        for event in events {
            item.evolve(event);
        }
        item
    }

    #[test]
    fn a_transfer_reserves_ships_and_receives_with_a_shortfall() {
        let source = item(FROM, 10);
        let destination = item(TO, 1);
        let created = when(&[], &source, &destination, create(6)).unwrap();
        let source = applied(source, &created.source);
        assert_eq!((source.on_hand, source.allocated), (10, 6));
        assert!(created.destination.is_empty());

        let history = created.transfer.clone();
        let shipped = when(
            &history,
            &source,
            &destination,
            TransferCommand::ShipTransfer,
        )
        .unwrap();
        let source = applied(source, &shipped.source);
        let destination = applied(destination, &shipped.destination);
        assert_eq!((source.on_hand, source.allocated), (4, 0));
        assert_eq!((destination.on_hand, destination.incoming), (1, 6));

        let history = [history, shipped.transfer].concat();
        let received = when(
            &history,
            &source,
            &destination,
            TransferCommand::ReceiveTransfer {
                quantity_received: 5,
            },
        )
        .unwrap();
        assert_eq!(
            received.transfer,
            vec![TransferEvent::TransferReceived {
                quantity_received: 5,
                shortfall: 1
            }]
        );
        let destination = applied(destination, &received.destination);
        assert_eq!((destination.on_hand, destination.incoming), (6, 0));
        let after = given::<Transfer>(&[history, received.transfer].concat()).state;
        assert_eq!(after.status, TransferStatus::Received);
        assert_eq!(after.quantity_received, Some(5));
    }

    #[test]
    fn a_transfer_cannot_take_more_than_is_available() {
        let source = applied(
            item(FROM, 10),
            &[ItemEvent::StockAllocated {
                allocation_id: Uuid::from_u128(9),
                order_id: "o".into(),
                quantity: 7,
            }],
        );
        let refused = when(&[], &source, &item(TO, 0), create(4)).unwrap_err();
        assert_eq!(
            refused,
            DomainError::InsufficientStock {
                requested: 4,
                available: 3
            }
        );
    }

    #[test]
    fn a_missing_destination_item_is_created_with_the_source_sku() {
        let decision = when(&[], &item(FROM, 10), &InventoryItem::default(), create(3)).unwrap();
        assert!(matches!(
            decision.destination.first(),
            Some(ItemEvent::InventoryItemCreated { warehouse_id: TO, sku, initial_quantity: 0, .. })
                if sku == "S"
        ));
    }

    #[test]
    fn the_reservation_that_lowers_available_to_the_threshold_raises_the_alert() {
        let decision = when(&[], &item(FROM, 10), &item(TO, 5), create(8)).unwrap();
        assert!(matches!(
            decision.source.last(),
            Some(ItemEvent::LowStockThresholdReached {
                current_quantity: 2,
                ..
            })
        ));
    }

    #[test]
    fn cancel_releases_only_before_shipping() {
        let source = item(FROM, 10);
        let created = when(&[], &source, &item(TO, 0), create(4)).unwrap();
        let source = applied(source, &created.source);
        let cancel = || TransferCommand::CancelTransfer {
            reason: "changed plan".into(),
        };
        let cancelled = when(&created.transfer, &source, &item(TO, 0), cancel()).unwrap();
        assert_eq!(applied(source.clone(), &cancelled.source).allocated, 0);

        let history = [
            created.transfer,
            vec![TransferEvent::TransferShipped { quantity: 4 }],
        ]
        .concat();
        let refused = when(&history, &source, &item(TO, 0), cancel()).unwrap_err();
        assert_eq!(refused.code(), "INVALID_STATE_TRANSITION");
    }

    #[test]
    fn bad_inputs_are_refused() {
        let (source, destination) = (item(FROM, 10), item(TO, 0));
        assert_eq!(
            when(&[], &source, &destination, create(0))
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
        let same_warehouse = TransferCommand::CreateTransfer {
            from_item_id: SOURCE,
            to_warehouse_id: FROM,
            to_item_id: DESTINATION,
            quantity: 1,
            reference: None,
        };
        assert_eq!(
            when(&[], &source, &destination, same_warehouse)
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
        let created = when(&[], &source, &destination, create(4))
            .unwrap()
            .transfer;
        let shipped = [
            created.clone(),
            vec![TransferEvent::TransferShipped { quantity: 4 }],
        ]
        .concat();
        let too_many = TransferCommand::ReceiveTransfer {
            quantity_received: 5,
        };
        assert_eq!(
            when(&shipped, &source, &destination, too_many)
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
        let early = TransferCommand::ReceiveTransfer {
            quantity_received: 4,
        };
        assert_eq!(
            when(&created, &source, &destination, early)
                .unwrap_err()
                .code(),
            "INVALID_STATE_TRANSITION"
        );
        assert_eq!(
            when(&[], &source, &destination, TransferCommand::ShipTransfer)
                .unwrap_err()
                .code(),
            "NOT_FOUND"
        );
    }
}
