//! Counts: an item's on hand set to a figure someone counted (`inventorySetOnHand`). A count is
//! recorded as the seed's `StockLevelChanged` with the counted figure as the new quantity and
//! the difference as the delta, so every projection, report and replay reads it as any other
//! change of stock. A count that found the books right is recorded too (delta 0): teams audit
//! that a shelf was counted, not only that it differed.

use serde::Serialize;
use uuid::Uuid;

use super::item::{InventoryItem, ItemEvent, StockChangeReason};
use super::validate::{self, REFERENCE_MAX};
use super::DomainError;

/// Why stock was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum CountReason {
    /// A routine count of some shelves.
    CycleCount,
    /// The books were found wrong and are put right.
    Correction,
}

impl From<CountReason> for StockChangeReason {
    fn from(reason: CountReason) -> Self {
        match reason {
            CountReason::CycleCount => Self::CycleCount,
            CountReason::Correction => Self::Correction,
        }
    }
}

impl InventoryItem {
    /// Sets on hand to `quantity`. With `compare_quantity`, only if on hand is still that
    /// (else `StaleQuantity`: what was counted against has moved); never below what is
    /// allocated (`CountBelowAllocated`). Lowering available to the threshold alerts.
    pub(super) fn count(
        &self,
        id: Uuid,
        quantity: i64,
        compare_quantity: Option<i64>,
        reason: CountReason,
        reference: Option<String>,
    ) -> Result<Vec<ItemEvent>, DomainError> {
        let quantity = validate::quantity("quantity", quantity, 0)?;
        let compare_quantity = compare_quantity
            .map(|value| validate::quantity("compareQuantity", value, 0))
            .transpose()?;
        let reference = validate::optional_text("reference", reference.as_deref(), REFERENCE_MAX)?;
        self.ensure_active(id, "itemId")?;
        if let Some(expected) = compare_quantity {
            if expected != self.on_hand {
                return Err(DomainError::StaleQuantity {
                    expected,
                    actual: self.on_hand,
                });
            }
        }
        if quantity < self.allocated {
            return Err(DomainError::CountBelowAllocated {
                counted: quantity,
                allocated: self.allocated,
            });
        }
        Ok(
            self.with_low_stock_alert(vec![ItemEvent::StockLevelChanged {
                previous_quantity: self.on_hand,
                new_quantity: quantity,
                delta: quantity - self.on_hand,
                reason: reason.into(),
                reference,
                allocation_id: None,
            }]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::item::{decide, ItemCommand};
    use crate::domain::story::given;
    use crate::domain::warehouse::Warehouse;
    use crate::domain::{Aggregate, MAX_QUANTITY};

    fn created(on_hand: i64, threshold: i64) -> ItemEvent {
        ItemEvent::InventoryItemCreated {
            warehouse_id: Uuid::from_u128(7),
            sku: "SKU-1".into(),
            product_id: "P-1".into(),
            initial_quantity: on_hand,
            reorder_threshold: threshold,
            reorder_quantity: 50,
        }
    }

    fn allocated(quantity: i64) -> ItemEvent {
        ItemEvent::StockAllocated {
            allocation_id: Uuid::from_u128(9),
            order_id: "o-1".into(),
            quantity,
        }
    }

    fn count(quantity: i64, compare: Option<i64>, reason: CountReason) -> ItemCommand {
        ItemCommand::SetOnHand {
            quantity,
            compare_quantity: compare,
            reason,
            reference: Some("aisle 4".into()),
        }
    }

    fn when(history: &[ItemEvent], command: ItemCommand) -> Result<Vec<ItemEvent>, DomainError> {
        let state = given::<InventoryItem>(history);
        decide(Uuid::nil(), &state.state, &Warehouse::default(), command)
    }

    fn counted(previous: i64, new: i64, reason: StockChangeReason) -> ItemEvent {
        ItemEvent::StockLevelChanged {
            previous_quantity: previous,
            new_quantity: new,
            delta: new - previous,
            reason,
            reference: Some("aisle 4".into()),
            allocation_id: None,
        }
    }

    #[test]
    fn a_count_sets_on_hand_and_records_the_difference_it_found() {
        let events = when(&[created(10, 0)], count(7, None, CountReason::CycleCount));
        assert_eq!(
            events,
            Ok(vec![counted(10, 7, StockChangeReason::CycleCount)])
        );
        let mut item = given::<InventoryItem>(&[created(10, 0)]).state;
        for event in events.unwrap() {
            item.evolve(&event);
        }
        assert_eq!(item.on_hand, 7);
    }

    #[test]
    fn a_correction_count_is_recorded_as_a_correction() {
        let events = when(
            &[created(10, 0)],
            count(12, Some(10), CountReason::Correction),
        );
        assert_eq!(
            events,
            Ok(vec![counted(10, 12, StockChangeReason::Correction)])
        );
    }

    #[test]
    fn a_count_that_finds_the_books_right_is_recorded_with_delta_zero() {
        let events = when(
            &[created(10, 0)],
            count(10, Some(10), CountReason::CycleCount),
        );
        assert_eq!(
            events,
            Ok(vec![counted(10, 10, StockChangeReason::CycleCount)])
        );
    }

    #[test]
    fn a_count_compared_with_a_figure_that_moved_is_stale() {
        let result = when(
            &[created(10, 0)],
            count(8, Some(9), CountReason::CycleCount),
        );
        assert_eq!(
            result,
            Err(DomainError::StaleQuantity {
                expected: 9,
                actual: 10
            })
        );
        assert_eq!(result.unwrap_err().code(), "STALE_QUANTITY");
    }

    #[test]
    fn a_count_below_what_is_allocated_is_refused() {
        let history = [created(10, 0), allocated(6)];
        let result = when(&history, count(5, None, CountReason::Correction));
        let error = result.unwrap_err();
        assert_eq!(error.code(), "INSUFFICIENT_STOCK");
        assert_eq!(error.field(), Some("quantity"));
        // Down to exactly what is allocated is fine: nothing left to allocate.
        let events = when(&history, count(6, None, CountReason::Correction)).unwrap();
        assert_eq!(events[0], counted(10, 6, StockChangeReason::Correction));
    }

    #[test]
    fn a_count_taking_available_to_the_threshold_raises_the_alert() {
        let events = when(&[created(10, 5)], count(5, None, CountReason::CycleCount)).unwrap();
        assert_eq!(events.len(), 2, "{events:?}");
        assert!(matches!(
            events[1],
            ItemEvent::LowStockThresholdReached {
                current_quantity: 5,
                threshold: 5,
                ..
            }
        ));
        // Counting up never alerts.
        let up = when(&[created(2, 5)], count(3, None, CountReason::CycleCount)).unwrap();
        assert_eq!(up.len(), 1, "{up:?}");
    }

    #[test]
    fn counts_out_of_bounds_unknown_or_inactive_items_are_refused() {
        let history = [created(10, 0)];
        for (command, field) in [
            (count(-1, None, CountReason::CycleCount), "quantity"),
            (
                count(MAX_QUANTITY + 1, None, CountReason::CycleCount),
                "quantity",
            ),
            (
                count(1, Some(-1), CountReason::CycleCount),
                "compareQuantity",
            ),
        ] {
            let error = when(&history, command).unwrap_err();
            assert_eq!(
                (error.code(), error.field()),
                ("INVALID_INPUT", Some(field))
            );
        }
        let unknown = when(&[], count(1, None, CountReason::CycleCount)).unwrap_err();
        assert_eq!(unknown.code(), "NOT_FOUND");
        let inactive = [
            created(10, 0),
            ItemEvent::InventoryItemDeactivated {
                reason: "gone".into(),
            },
        ];
        let error = when(&inactive, count(1, None, CountReason::CycleCount)).unwrap_err();
        assert_eq!(error.code(), "INACTIVE");
    }
}
