//! The projector core, shared by every adapter: what a row becomes after a run of one
//! aggregate's events, folded with the domain's own `evolve` (so no adapter can disagree with
//! the aggregate, or with another adapter, about what an event means), and the history entries
//! the events make (the movement report's arithmetic is `movements`). Pure: adapters only read
//! and write the rows.

use super::model::{AllocationView, HistoryEntry, ItemView, TransferView, WarehouseView};
use super::{Changed, ProjectionError};
use crate::domain::allocation::{Allocation, AllocationEvent};
use crate::domain::item::{InventoryItem, ItemEvent};
use crate::domain::transfer::{Transfer, TransferEvent};
use crate::domain::warehouse::{Warehouse, WarehouseDetails, WarehouseEvent};
use crate::domain::{Aggregate, DomainEvent};
use crate::store::EventEnvelope;

/// An event's data, or the poison it is: an event this projector cannot read will not become
/// readable on retry.
pub fn decode<E: DomainEvent>(envelope: &EventEnvelope) -> Result<E, ProjectionError> {
    envelope
        .decode()
        .map_err(|e| ProjectionError::poison(envelope.event_id, e))
}

/// A read model with one row per aggregate, whose `version` is its checkpoint.
pub trait Row: Clone + Send + Sync + Sized + 'static {
    type Event: DomainEvent;

    /// The row after one more event.
    fn next(row: Option<&Self>, envelope: &EventEnvelope, event: &Self::Event) -> Self;

    fn version(&self) -> u64;

    /// Notes the row, as a batch left it, for live subscribers (if they watch this model).
    fn announce(&self, _changed: &mut Changed) {}
}

/// The row after a run of its aggregate's events (each the next after the one before); `None`
/// when there was no row and no event.
pub fn fold<'a, V: Row>(
    row: Option<V>,
    run: impl IntoIterator<Item = &'a EventEnvelope>,
) -> Result<Option<V>, ProjectionError> {
    let mut row = row;
    for envelope in run {
        let event: V::Event = decode(envelope)?;
        row = Some(V::next(row.as_ref(), envelope, &event));
    }
    Ok(row)
}

impl Row for WarehouseView {
    type Event = WarehouseEvent;

    fn version(&self) -> u64 {
        self.version
    }

    fn next(
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

impl Row for ItemView {
    type Event = ItemEvent;

    fn version(&self) -> u64 {
        self.version
    }

    fn announce(&self, changed: &mut Changed) {
        changed.items.insert(self.id, self.clone());
    }

    fn next(row: Option<&ItemView>, envelope: &EventEnvelope, event: &ItemEvent) -> ItemView {
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
                incoming: view.incoming,
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
            incoming: state.incoming,
            version: envelope.sequence_number,
            created_at: row.map_or(envelope.timestamp, |r| r.created_at),
            updated_at: envelope.timestamp,
        }
    }
}

impl Row for AllocationView {
    type Event = AllocationEvent;

    fn version(&self) -> u64 {
        self.version
    }

    fn announce(&self, changed: &mut Changed) {
        changed.allocations.insert(self.id, self.clone());
    }

    fn next(
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
                expires_at: view.expires_at,
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
            expires_at: state.expires_at,
            version: envelope.sequence_number,
            created_at: row.map_or(envelope.timestamp, |r| r.created_at),
            updated_at: envelope.timestamp,
        }
    }
}

impl Row for TransferView {
    type Event = TransferEvent;

    fn version(&self) -> u64 {
        self.version
    }

    fn next(
        row: Option<&TransferView>,
        envelope: &EventEnvelope,
        event: &TransferEvent,
    ) -> TransferView {
        let mut state = match row {
            Some(view) => Transfer {
                exists: true,
                from_item_id: view.from_item_id,
                to_item_id: view.to_item_id,
                from_warehouse_id: view.from_warehouse_id,
                to_warehouse_id: view.to_warehouse_id,
                sku: view.sku.clone(),
                quantity: view.quantity,
                reference: view.reference.clone(),
                status: view.status,
                quantity_received: view.quantity_received,
                cancel_reason: view.cancel_reason.clone(),
            },
            None => Transfer::default(),
        };
        state.evolve(event);
        TransferView::of(
            envelope.aggregate_id,
            &state,
            envelope.sequence_number,
            row.map_or(envelope.timestamp, |r| r.created_at),
            envelope.timestamp,
        )
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

/// The history entries of a run of an item's events.
pub fn history<'a>(
    run: impl IntoIterator<Item = &'a EventEnvelope>,
) -> Result<Vec<HistoryEntry>, ProjectionError> {
    let mut entries = Vec::new();
    for envelope in run {
        let event: ItemEvent = decode(envelope)?;
        entries.extend(HistoryEntry::from_event(envelope, &event));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::batch::deactivated;
    use std::error::Error;
    use uuid::Uuid;

    #[test]
    fn an_event_that_does_not_decode_is_poison_with_the_decoding_error_as_its_source() {
        let envelope = deactivated(Uuid::now_v7(), 1);
        let error = decode::<ItemEvent>(&envelope).expect_err("not an item event");
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            format!("cannot apply event {}", envelope.event_id)
        );
        let source = error.source().expect("a source");
        assert!(
            source.downcast_ref::<serde_json::Error>().is_some(),
            "{source}"
        );
    }
}
