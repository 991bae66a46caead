//! The movement report's arithmetic, shared by every adapter: what each item event counts
//! (received, removed, allocated, released, fulfilled, net), on which UTC day, and how a run of
//! an item's events splits into one write per day row. Pure, like the rest of `fold`.

use std::collections::BTreeMap;
use uuid::Uuid;

use super::fold::decode;
use super::ProjectionError;
use crate::domain::item::{ItemEvent, StockChangeReason};
use crate::store::EventEnvelope;

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
/// changes split by sign into received and removed (a count by the difference it found, a
/// transfer shipped as removed, one received as received), except a fulfilment, which counts
/// as fulfilled; reservations and releases (an allocation's or a transfer's) count apart; other
/// events count nothing, and neither does a count that found the books right (delta 0), so it
/// makes no row of zeros.
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
        ItemEvent::StockLevelChanged { delta: 0, .. } => return None,
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
        ItemEvent::StockAllocated { quantity, .. }
        | ItemEvent::TransferStockReserved { quantity, .. } => Movement {
            allocated: quantity,
            ..zero
        },
        ItemEvent::StockDeallocated { quantity, .. }
        | ItemEvent::TransferStockReleased { quantity, .. } => Movement {
            released: quantity,
            ..zero
        },
        _ => return None,
    })
}

/// The warehouse and SKU every movement row of an item carries, from its creation.
pub type Owner = (String, String);

/// The owner of an item, if its creation is among these events.
pub fn created<'a>(run: impl IntoIterator<Item = &'a EventEnvelope>) -> Option<Owner> {
    run.into_iter()
        .find_map(|envelope| match decode::<ItemEvent>(envelope) {
            Ok(ItemEvent::InventoryItemCreated {
                warehouse_id, sku, ..
            }) => Some((warehouse_id.to_string(), sku)),
            _ => None,
        })
}

/// A movement for an item whose creation was never applied: its rows cannot say whose they are.
pub fn never_created(event_id: Uuid) -> ProjectionError {
    ProjectionError::poison(
        event_id,
        "stock movement for an item whose creation was never applied",
    )
}

/// A run of an item's events counted into one day's movement row with one write.
#[derive(Debug, Clone)]
pub struct DayRun {
    /// The row counted into: the day the run started from, or a new day's.
    pub day: String,
    /// Whether the run leaves the day it started from (`movement_runs`' `day`).
    pub new_day: bool,
    /// What the run counts; `None` when none of its events counts anything.
    pub movement: Option<Movement>,
    pub first: u64,
    pub last: u64,
}

/// A run of an item's events (each the next after the one before) as the day rows it counts
/// into, in order, starting from the row of `day` (where the item's last counted event went):
/// events stay in the current day while they fall on it or count nothing (so a day with no
/// movement gets no row), and the first event that counts on another day starts a new day's run.
/// A store that keeps its checkpoint in the day row writes every run; one that keeps it apart
/// may skip the runs that count nothing.
pub fn movement_runs<'a>(
    day: Option<&str>,
    run: impl IntoIterator<Item = &'a EventEnvelope>,
) -> Result<Vec<DayRun>, ProjectionError> {
    let mut runs: Vec<DayRun> = Vec::new();
    let mut day = day.map(str::to_owned);
    for envelope in run {
        let event: ItemEvent = decode(envelope)?;
        let movement = movement_of(&event);
        let sequence = envelope.sequence_number;
        let today = day_of(envelope.timestamp);
        let stays = day
            .as_ref()
            .is_some_and(|day| *day == today || movement.is_none());
        if !stays || runs.is_empty() {
            let record = match (&day, stays) {
                (Some(day), true) => day.clone(),
                _ => today,
            };
            day = Some(record.clone());
            runs.push(DayRun {
                day: record,
                new_day: !stays,
                movement: None,
                first: sequence,
                last: sequence,
            });
        }
        let at = runs.len() - 1;
        let current = &mut runs[at];
        if let Some(movement) = &movement {
            current
                .movement
                .get_or_insert_with(Movement::default)
                .add(movement);
        }
        current.last = sequence;
    }
    Ok(runs)
}

/// The movements of a run, summed by day (for a store that adds each day's sum to its row).
pub fn movements_by_day<'a>(
    run: impl IntoIterator<Item = &'a EventEnvelope>,
) -> Result<BTreeMap<String, Movement>, ProjectionError> {
    let mut days: BTreeMap<String, Movement> = BTreeMap::new();
    for day_run in movement_runs(None, run)? {
        if let Some(movement) = day_run.movement {
            days.entry(day_run.day).or_default().add(&movement);
        }
    }
    Ok(days)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::AggregateType;
    use crate::store::Metadata;

    const DAY: i64 = 86_400_000;

    fn event(item: Uuid, sequence: u64, at: i64, event: ItemEvent) -> EventEnvelope {
        EventEnvelope::new(
            Uuid::now_v7(),
            AggregateType::InventoryItem,
            item,
            sequence,
            &event,
            Metadata::default(),
            at,
        )
    }

    fn adjust(delta: i64) -> ItemEvent {
        ItemEvent::StockLevelChanged {
            previous_quantity: 10,
            new_quantity: 10 + delta,
            delta,
            reason: StockChangeReason::Received,
            reference: None,
            allocation_id: None,
        }
    }

    #[test]
    fn a_batch_counts_each_day_in_one_run_and_events_without_movement_stay_put() {
        let item = Uuid::now_v7();
        let created = ItemEvent::InventoryItemCreated {
            warehouse_id: Uuid::now_v7(),
            sku: "SKU".into(),
            product_id: "P".into(),
            initial_quantity: 5,
            reorder_threshold: 0,
            reorder_quantity: 0,
        };
        let reorder = ItemEvent::ReorderSettingsChanged {
            previous_threshold: 0,
            previous_quantity: 0,
            reorder_threshold: 1,
            reorder_quantity: 2,
        };
        let events = [
            event(item, 1, 0, created),
            event(item, 2, 10, adjust(3)),
            event(item, 3, 20, adjust(-2)),
            // The next day, but nothing to count: stays in the first day's record.
            event(item, 4, DAY + 1, reorder),
            event(item, 5, DAY + 2, adjust(4)),
            event(item, 6, DAY + 3, adjust(-1)),
        ];
        let first = movement_runs(None, &events).unwrap();
        let net = |run: &DayRun| run.movement.map_or(0, |m| m.net);
        let shape: Vec<_> = first
            .iter()
            .map(|r| (r.day.as_str(), r.new_day, r.first, r.last, net(r)))
            .collect();
        assert_eq!(
            shape,
            [("1970-01-01", true, 1, 4, 6), ("1970-01-02", true, 5, 6, 3),]
        );
        let counted = first[0].movement.unwrap_or_default();
        assert_eq!((counted.received, counted.removed), (8, 2));

        // Continuing from a known checkpoint on its own day: one run on its record, no new day.
        let next = movement_runs(Some("1970-01-02"), &events[4..]).unwrap();
        assert_eq!(next.len(), 1);
        assert!(!next[0].new_day);
        assert_eq!((next[0].first, next[0].last), (5, 6));

        // Summed by day, as the embedded store adds them: the same counts.
        let days = movements_by_day(&events).unwrap();
        let nets: Vec<_> = days.iter().map(|(day, m)| (day.as_str(), m.net)).collect();
        assert_eq!(nets, [("1970-01-01", 6), ("1970-01-02", 3)]);
    }
}
