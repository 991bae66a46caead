//! The Allocation decider: stock reserved for an order line, created → confirmed → fulfilled,
//! or cancelled from created or confirmed. Every decision also yields the item's half (reserve,
//! release, consume) so that the caller commits both streams atomically: that shared commit,
//! conditioned on the item's version, is what makes overselling impossible. A created
//! allocation may carry a deadline: past it, it can no longer be confirmed, and expiring it is
//! an ordinary cancel (reason `expired`) that only a still-created, due allocation accepts.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::item::{InventoryItem, ItemEvent};
use super::validate::{self, ORDER_ID_MAX, REASON_MAX};
use super::warehouse::Warehouse;
use super::{Aggregate, AggregateType, DomainError, DomainEvent};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AllocationStatus {
    #[default]
    Created,
    Confirmed,
    Cancelled,
    Fulfilled,
}

impl AllocationStatus {
    pub const ALL: [Self; 4] = [
        Self::Created,
        Self::Confirmed,
        Self::Cancelled,
        Self::Fulfilled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Confirmed => "CONFIRMED",
            Self::Cancelled => "CANCELLED",
            Self::Fulfilled => "FULFILLED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    fn describe(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Confirmed => "confirmed",
            Self::Cancelled => "cancelled",
            Self::Fulfilled => "fulfilled",
        }
    }
}

/// The reason an expired allocation is cancelled with.
pub const EXPIRED: &str = "expired";

/// What an expiry of an allocation whose deadline has not come is refused as
/// (`InvalidStateTransition.from`): the one refusal a later sweep may see otherwise.
pub const NOT_DUE: &str = "not due";

/// How far ahead a deadline may lie: a reservation is for hours or days, not for ever.
pub const MAX_EXPIRY_MS: i64 = 30 * 24 * 60 * 60 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "eventType", content = "eventData")]
pub enum AllocationEvent {
    #[serde(rename_all = "camelCase")]
    AllocationCreated {
        order_id: String,
        item_id: Uuid,
        warehouse_id: Uuid,
        quantity: i64,
        /// The deadline (ms since the epoch), if any. Optional and absent when `None`, so an
        /// event stored before deadlines existed reads as what it meant (no deadline) and one
        /// without a deadline is stored exactly as before: still schema version 1.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<i64>,
    },
    #[serde(rename_all = "camelCase")]
    AllocationConfirmed {},
    #[serde(rename_all = "camelCase")]
    AllocationFulfilled { quantity: i64 },
    #[serde(rename_all = "camelCase")]
    AllocationCancelled { reason: String },
}

impl DomainEvent for AllocationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::AllocationCreated { .. } => "AllocationCreated",
            Self::AllocationConfirmed { .. } => "AllocationConfirmed",
            Self::AllocationFulfilled { .. } => "AllocationFulfilled",
            Self::AllocationCancelled { .. } => "AllocationCancelled",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Allocation {
    pub exists: bool,
    pub order_id: String,
    pub item_id: Uuid,
    pub warehouse_id: Uuid,
    pub quantity: i64,
    pub status: AllocationStatus,
    pub cancel_reason: Option<String>,
    /// The deadline (ms since the epoch) while one applies: set at creation, cleared by the
    /// confirmation, kept on a cancelled allocation (when it was, or would have been, due).
    /// A snapshot from before deadlines existed reads as none, which it was: the state
    /// version stays 1.
    #[serde(default)]
    pub expires_at: Option<i64>,
}

impl Allocation {
    /// Whether the deadline has passed at `now` (ms): due for expiry, too late to confirm.
    pub fn is_due(&self, now: i64) -> bool {
        self.expires_at.is_some_and(|deadline| deadline <= now)
    }
}

impl Aggregate for Allocation {
    const TYPE: AggregateType = AggregateType::Allocation;
    type Event = AllocationEvent;

    fn evolve(&mut self, event: &AllocationEvent) {
        match event {
            AllocationEvent::AllocationCreated {
                order_id,
                item_id,
                warehouse_id,
                quantity,
                expires_at,
            } => {
                *self = Allocation {
                    exists: true,
                    order_id: order_id.clone(),
                    item_id: *item_id,
                    warehouse_id: *warehouse_id,
                    quantity: *quantity,
                    status: AllocationStatus::Created,
                    cancel_reason: None,
                    expires_at: *expires_at,
                };
            }
            AllocationEvent::AllocationConfirmed {} => {
                self.status = AllocationStatus::Confirmed;
                self.expires_at = None;
            }
            AllocationEvent::AllocationFulfilled { .. } => {
                self.status = AllocationStatus::Fulfilled
            }
            AllocationEvent::AllocationCancelled { reason } => {
                self.status = AllocationStatus::Cancelled;
                self.cancel_reason = Some(reason.clone());
            }
        }
    }
}

/// Serializable so that an idempotency key's fingerprint is the command itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum AllocationCommand {
    CreateAllocation {
        order_id: String,
        item_id: Uuid,
        quantity: i64,
        /// The deadline (ms since the epoch): after `now`, at most `MAX_EXPIRY_MS` ahead.
        expires_at: Option<i64>,
    },
    ConfirmAllocation,
    CancelAllocation {
        reason: String,
    },
    FulfillAllocation,
    /// The service's own cancel of an allocation whose deadline passed. Unlike a client's
    /// cancel it accepts only a created allocation that is due, so a sweeper acting on a stale
    /// read model can never cancel one confirmed meanwhile.
    ExpireAllocation,
}

/// The events of one allocation decision, for the allocation and for its item.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AllocationDecision {
    pub allocation: Vec<AllocationEvent>,
    pub item: Vec<ItemEvent>,
}

/// Decides an allocation command at `now` (ms since the epoch, the commit's timestamp).
/// `item` and `warehouse` are the allocation's item and that item's warehouse (for a new
/// allocation: the item named in the command).
pub fn decide(
    id: Uuid,
    state: &Allocation,
    item: &InventoryItem,
    warehouse: &Warehouse,
    command: AllocationCommand,
    now: i64,
) -> Result<AllocationDecision, DomainError> {
    if !matches!(command, AllocationCommand::CreateAllocation { .. }) && !state.exists {
        return Err(DomainError::NotFound {
            entity: "allocation",
            id: id.to_string(),
            field: "id",
        });
    }
    match command {
        AllocationCommand::CreateAllocation {
            order_id,
            item_id,
            quantity,
            expires_at,
        } => {
            let order_id = validate::required_text("orderId", &order_id, ORDER_ID_MAX)?;
            let quantity = validate::quantity("quantity", quantity, 1)?;
            if let Some(deadline) = expires_at {
                deadline_ahead(deadline, now)?;
            }
            if state.exists {
                return Err(DomainError::invalid("id", "allocation already exists"));
            }
            item.ensure_active(item_id, "itemId")?;
            warehouse.ensure_active(item.warehouse_id, "itemId")?;
            let item_events = item.reserve(id, &order_id, quantity)?;
            Ok(AllocationDecision {
                allocation: vec![AllocationEvent::AllocationCreated {
                    order_id,
                    item_id,
                    warehouse_id: item.warehouse_id,
                    quantity,
                    expires_at,
                }],
                item: item_events,
            })
        }
        AllocationCommand::ConfirmAllocation => {
            transition(state, "confirm", &[AllocationStatus::Created])?;
            if state.is_due(now) {
                // Expired, even if the sweeper has not cancelled it yet: the deadline is exact.
                return Err(DomainError::InvalidStateTransition {
                    from: "past its deadline",
                    action: "confirm",
                });
            }
            Ok(AllocationDecision {
                allocation: vec![AllocationEvent::AllocationConfirmed {}],
                item: vec![],
            })
        }
        AllocationCommand::CancelAllocation { reason } => {
            let reason = validate::required_text("reason", &reason, REASON_MAX)?;
            transition(
                state,
                "cancel",
                &[AllocationStatus::Created, AllocationStatus::Confirmed],
            )?;
            Ok(AllocationDecision {
                item: item.release(id, state.quantity, &reason),
                allocation: vec![AllocationEvent::AllocationCancelled { reason }],
            })
        }
        AllocationCommand::FulfillAllocation => {
            transition(state, "fulfill", &[AllocationStatus::Confirmed])?;
            Ok(AllocationDecision {
                allocation: vec![AllocationEvent::AllocationFulfilled {
                    quantity: state.quantity,
                }],
                item: item.consume(id, state.quantity),
            })
        }
        AllocationCommand::ExpireAllocation => {
            transition(state, "expire", &[AllocationStatus::Created])?;
            if !state.is_due(now) {
                return Err(DomainError::InvalidStateTransition {
                    from: NOT_DUE,
                    action: "expire",
                });
            }
            Ok(AllocationDecision {
                item: item.release(id, state.quantity, EXPIRED),
                allocation: vec![AllocationEvent::AllocationCancelled {
                    reason: EXPIRED.to_owned(),
                }],
            })
        }
    }
}

/// A deadline must lie ahead of `now`, and not too far.
fn deadline_ahead(deadline: i64, now: i64) -> Result<(), DomainError> {
    if deadline <= now {
        return Err(DomainError::invalid(
            "expiresAt",
            "expiresAt must be in the future",
        ));
    }
    if deadline - now > MAX_EXPIRY_MS {
        return Err(DomainError::invalid(
            "expiresAt",
            format!(
                "expiresAt may be at most {} days ahead",
                MAX_EXPIRY_MS / 86_400_000
            ),
        ));
    }
    Ok(())
}

fn transition(
    state: &Allocation,
    action: &'static str,
    allowed_from: &[AllocationStatus],
) -> Result<(), DomainError> {
    if allowed_from.contains(&state.status) {
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
    use crate::domain::item::StockChangeReason;
    use crate::domain::story::given;
    use crate::domain::warehouse::WarehouseEvent;

    const ITEM: Uuid = Uuid::from_u128(1);
    const WAREHOUSE: Uuid = Uuid::from_u128(2);
    const ALLOCATION: Uuid = Uuid::from_u128(3);
    /// The moment every command of these stories is decided at.
    const NOW: i64 = 1_000_000;

    fn warehouse(active: bool) -> Warehouse {
        let mut events = vec![WarehouseEvent::WarehouseCreated {
            code: "W".into(),
            name: "W".into(),
            address: None,
        }];
        if !active {
            events.push(WarehouseEvent::WarehouseDeactivated { reason: "x".into() });
        }
        given::<Warehouse>(&events).state
    }

    fn item(on_hand: i64, threshold: i64) -> InventoryItem {
        given::<InventoryItem>(&[ItemEvent::InventoryItemCreated {
            warehouse_id: WAREHOUSE,
            sku: "S".into(),
            product_id: "P".into(),
            initial_quantity: on_hand,
            reorder_threshold: threshold,
            reorder_quantity: 10,
        }])
        .state
    }

    fn created(quantity: i64) -> AllocationEvent {
        AllocationEvent::AllocationCreated {
            order_id: "order-1".into(),
            item_id: ITEM,
            warehouse_id: WAREHOUSE,
            quantity,
            expires_at: None,
        }
    }

    fn created_until(quantity: i64, deadline: i64) -> AllocationEvent {
        AllocationEvent::AllocationCreated {
            order_id: "order-1".into(),
            item_id: ITEM,
            warehouse_id: WAREHOUSE,
            quantity,
            expires_at: Some(deadline),
        }
    }

    fn when(
        history: &[AllocationEvent],
        command: AllocationCommand,
    ) -> Result<AllocationDecision, DomainError> {
        let state = given::<Allocation>(history).state;
        decide(
            ALLOCATION,
            &state,
            &item(10, 2),
            &warehouse(true),
            command,
            NOW,
        )
    }

    fn create(quantity: i64) -> AllocationCommand {
        create_until(quantity, None)
    }

    fn create_until(quantity: i64, expires_at: Option<i64>) -> AllocationCommand {
        AllocationCommand::CreateAllocation {
            order_id: "order-1".into(),
            item_id: ITEM,
            quantity,
            expires_at,
        }
    }

    #[test]
    fn creating_an_allocation_reserves_stock_on_the_item() {
        let decision = when(&[], create(4)).unwrap();
        assert_eq!(decision.allocation, vec![created(4)]);
        assert_eq!(
            decision.item,
            vec![ItemEvent::StockAllocated {
                allocation_id: ALLOCATION,
                order_id: "order-1".into(),
                quantity: 4
            }]
        );
    }

    #[test]
    fn allocating_more_than_available_is_insufficient_stock() {
        let result = when(&[], create(11));
        assert_eq!(
            result.unwrap_err(),
            DomainError::InsufficientStock {
                requested: 11,
                available: 10
            }
        );
    }

    #[test]
    fn allocating_down_to_the_threshold_raises_the_alert() {
        let decision = when(&[], create(8)).unwrap();
        assert!(matches!(
            decision.item.last(),
            Some(ItemEvent::LowStockThresholdReached {
                current_quantity: 2,
                ..
            })
        ));
    }

    #[test]
    fn zero_and_negative_quantities_are_invalid() {
        assert_eq!(when(&[], create(0)).unwrap_err().code(), "INVALID_INPUT");
        assert_eq!(when(&[], create(-5)).unwrap_err().code(), "INVALID_INPUT");
    }

    #[test]
    fn no_allocation_in_an_inactive_warehouse() {
        let result = decide(
            ALLOCATION,
            &Allocation::default(),
            &item(10, 0),
            &warehouse(false),
            create(1),
            NOW,
        );
        assert_eq!(result.unwrap_err().code(), "INACTIVE");
    }

    #[test]
    fn no_allocation_on_an_inactive_item() {
        let mut inactive = item(10, 0);
        inactive.evolve(&ItemEvent::InventoryItemDeactivated { reason: "x".into() });
        let result = decide(
            ALLOCATION,
            &Allocation::default(),
            &inactive,
            &warehouse(true),
            create(1),
            NOW,
        );
        assert_eq!(result.unwrap_err().code(), "INACTIVE");
    }

    #[test]
    fn no_allocation_on_an_unknown_item() {
        let result = decide(
            ALLOCATION,
            &Allocation::default(),
            &InventoryItem::default(),
            &Warehouse::default(),
            create(1),
            NOW,
        );
        assert_eq!(result.unwrap_err().code(), "NOT_FOUND");
    }

    #[test]
    fn a_created_allocation_can_be_confirmed() {
        let decision = when(&[created(4)], AllocationCommand::ConfirmAllocation).unwrap();
        assert_eq!(
            decision.allocation,
            vec![AllocationEvent::AllocationConfirmed {}]
        );
        assert!(decision.item.is_empty());
    }

    #[test]
    fn a_confirmed_allocation_is_fulfilled_by_removing_its_stock() {
        let history = [created(4), AllocationEvent::AllocationConfirmed {}];
        let decision = when(&history, AllocationCommand::FulfillAllocation).unwrap();
        assert_eq!(
            decision.allocation,
            vec![AllocationEvent::AllocationFulfilled { quantity: 4 }]
        );
        assert!(matches!(
            decision.item.as_slice(),
            [ItemEvent::StockLevelChanged {
                delta: -4,
                reason: StockChangeReason::AllocationFulfilled,
                ..
            }]
        ));
    }

    #[test]
    fn a_created_allocation_cannot_be_fulfilled_before_confirmation() {
        let result = when(&[created(4)], AllocationCommand::FulfillAllocation);
        assert_eq!(result.unwrap_err().code(), "INVALID_STATE_TRANSITION");
    }

    #[test]
    fn cancelling_releases_the_reservation() {
        for history in [
            vec![created(4)],
            vec![created(4), AllocationEvent::AllocationConfirmed {}],
        ] {
            let decision = when(
                &history,
                AllocationCommand::CancelAllocation {
                    reason: "customer changed mind".into(),
                },
            )
            .unwrap();
            assert!(matches!(
                decision.item.as_slice(),
                [ItemEvent::StockDeallocated { quantity: 4, .. }]
            ));
        }
    }

    #[test]
    fn finished_allocations_accept_no_transition() {
        let finished = [
            vec![
                created(4),
                AllocationEvent::AllocationCancelled { reason: "x".into() },
            ],
            vec![
                created(4),
                AllocationEvent::AllocationConfirmed {},
                AllocationEvent::AllocationFulfilled { quantity: 4 },
            ],
        ];
        for history in finished {
            for command in [
                AllocationCommand::ConfirmAllocation,
                AllocationCommand::FulfillAllocation,
                AllocationCommand::CancelAllocation { reason: "y".into() },
            ] {
                let result = when(&history, command);
                assert_eq!(result.unwrap_err().code(), "INVALID_STATE_TRANSITION");
            }
        }
    }

    #[test]
    fn a_confirmed_allocation_cannot_be_confirmed_again() {
        let history = [created(4), AllocationEvent::AllocationConfirmed {}];
        let result = when(&history, AllocationCommand::ConfirmAllocation);
        assert_eq!(result.unwrap_err().code(), "INVALID_STATE_TRANSITION");
    }

    #[test]
    fn an_unknown_allocation_is_not_found() {
        let result = when(&[], AllocationCommand::ConfirmAllocation);
        assert_eq!(result.unwrap_err().code(), "NOT_FOUND");
    }

    #[test]
    fn a_deadline_is_recorded_on_the_created_event() {
        let decision = when(&[], create_until(4, Some(NOW + 60_000))).unwrap();
        assert_eq!(decision.allocation, vec![created_until(4, NOW + 60_000)]);
        let state = given::<Allocation>(&decision.allocation).state;
        assert_eq!(state.expires_at, Some(NOW + 60_000));
    }

    #[test]
    fn a_deadline_must_lie_ahead_and_within_thirty_days() {
        for deadline in [NOW - 1, NOW, NOW + MAX_EXPIRY_MS + 1] {
            let error = when(&[], create_until(4, Some(deadline))).unwrap_err();
            assert_eq!(error.code(), "INVALID_INPUT", "{deadline}");
            assert_eq!(error.field(), Some("expiresAt"));
        }
        assert!(when(&[], create_until(4, Some(NOW + MAX_EXPIRY_MS))).is_ok());
    }

    #[test]
    fn confirming_clears_the_deadline() {
        let history = [
            created_until(4, NOW + 1),
            AllocationEvent::AllocationConfirmed {},
        ];
        assert_eq!(given::<Allocation>(&history).state.expires_at, None);
    }

    #[test]
    fn an_allocation_past_its_deadline_cannot_be_confirmed() {
        let result = when(
            &[created_until(4, NOW)],
            AllocationCommand::ConfirmAllocation,
        );
        assert_eq!(result.unwrap_err().code(), "INVALID_STATE_TRANSITION");
        let before = when(
            &[created_until(4, NOW + 1)],
            AllocationCommand::ConfirmAllocation,
        );
        assert!(before.is_ok());
    }

    #[test]
    fn a_due_allocation_expires_as_a_cancel_releasing_its_stock() {
        let decision = when(
            &[created_until(4, NOW)],
            AllocationCommand::ExpireAllocation,
        )
        .unwrap();
        assert_eq!(
            decision.allocation,
            vec![AllocationEvent::AllocationCancelled {
                reason: EXPIRED.into()
            }]
        );
        assert_eq!(
            decision.item,
            vec![ItemEvent::StockDeallocated {
                allocation_id: ALLOCATION,
                quantity: 4,
                reason: EXPIRED.into()
            }]
        );
    }

    #[test]
    fn only_a_created_due_allocation_expires() {
        let refused = [
            // Not due yet.
            vec![created_until(4, NOW + 1)],
            // No deadline at all.
            vec![created(4)],
            // Confirmed before its deadline (which confirming cleared).
            vec![
                created_until(4, NOW - 10),
                AllocationEvent::AllocationConfirmed {},
            ],
            // Already cancelled: an expiry retried, or raced by another instance.
            vec![
                created_until(4, NOW - 10),
                AllocationEvent::AllocationCancelled {
                    reason: EXPIRED.into(),
                },
            ],
        ];
        for history in refused {
            let result = when(&history, AllocationCommand::ExpireAllocation);
            assert_eq!(
                result.unwrap_err().code(),
                "INVALID_STATE_TRANSITION",
                "{history:?}"
            );
        }
    }

    #[test]
    fn an_event_stored_before_deadlines_existed_reads_as_having_none() {
        let data = serde_json::json!({
            "orderId": "o", "itemId": ITEM, "warehouseId": WAREHOUSE, "quantity": 2
        });
        let event = AllocationEvent::from_parts("AllocationCreated", &data).unwrap();
        assert_eq!(
            event,
            AllocationEvent::AllocationCreated {
                order_id: "o".into(),
                item_id: ITEM,
                warehouse_id: WAREHOUSE,
                quantity: 2,
                expires_at: None
            }
        );
        // ...and one without a deadline is stored exactly as before.
        assert_eq!(event.to_parts().1, data);
    }
}
