//! How a projector takes a batch, whatever its store: the batch's events by aggregate, and what
//! an aggregate's checkpoint makes of its events (the run to apply, duplicates to skip, the
//! first gap). Each store then folds a run into one write per row and stops the whole batch at
//! its earliest gap, so `Applied::applied` is always a prefix of the batch.

use std::collections::HashMap;
use uuid::Uuid;

use super::layout::ProjectionName;
use crate::store::EventEnvelope;

/// One aggregate's events in a batch, with their places in it, in batch order.
pub type Stream<'a> = Vec<(usize, &'a EventEnvelope)>;

/// The events of `events` a projector handles, by aggregate, in order of first appearance.
pub fn streams(events: &[EventEnvelope], projector: ProjectionName) -> Vec<(Uuid, Stream<'_>)> {
    let mut streams: Vec<(Uuid, Stream<'_>)> = Vec::new();
    let mut place = HashMap::new();
    for (index, envelope) in events.iter().enumerate() {
        if envelope.aggregate_type != projector.handles() {
            continue;
        }
        let at = *place.entry(envelope.aggregate_id).or_insert_with(|| {
            streams.push((envelope.aggregate_id, Vec::new()));
            streams.len() - 1
        });
        streams[at].1.push((index, envelope));
    }
    streams
}

/// What a checkpoint at `last` makes of one aggregate's events.
pub struct Plan<'a> {
    /// The events to apply: each the next after `last` and those before it.
    pub next: Stream<'a>,
    /// Whether some event was at or below the checkpoint (a duplicate).
    pub skipped: bool,
    /// The first event past a hole, with the checkpoint it found.
    pub gap: Option<(usize, u64)>,
}

pub fn plan<'a>(last: u64, stream: &Stream<'a>) -> Plan<'a> {
    let mut plan = Plan {
        next: Vec::new(),
        skipped: false,
        gap: None,
    };
    let mut at = last;
    for &(index, envelope) in stream {
        let sequence = envelope.sequence_number;
        if sequence <= at {
            plan.skipped = true;
        } else if sequence == at + 1 {
            plan.next.push((index, envelope));
            at = sequence;
        } else {
            plan.gap = Some((index, at));
            break;
        }
    }
    plan
}

impl Plan<'_> {
    /// Whether a plan made on a remembered hint must be made again on a read: a hint may
    /// decide what to write (the write's condition checks it), never what to skip.
    pub fn needs_read(&self) -> bool {
        self.skipped || self.gap.is_some()
    }
}

/// Where a batch stops: its earliest gap among the aggregates' plans, as the batch index of
/// the event past the hole, the checkpoint found there and the aggregate (of two projectors
/// stopping at one event, the lower checkpoint, so one fill serves both); `None` without a gap.
pub fn earliest_gap(
    gaps: impl IntoIterator<Item = (Uuid, Option<(usize, u64)>)>,
) -> Option<(usize, u64, Uuid)> {
    gaps.into_iter()
        .filter_map(|(id, gap)| gap.map(|(index, after)| (index, after, id)))
        .min()
}

/// A warehouse event of `id` at `sequence`, for the projection module's tests.
#[cfg(test)]
pub(crate) fn deactivated(id: Uuid, sequence: u64) -> EventEnvelope {
    use crate::domain::warehouse::WarehouseEvent;
    use crate::domain::AggregateType;
    let event = WarehouseEvent::WarehouseDeactivated {
        reason: format!("r{sequence}"),
    };
    EventEnvelope::new(
        Uuid::now_v7(),
        AggregateType::Warehouse,
        id,
        sequence,
        &event,
        crate::store::Metadata::default(),
        0,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_applies_the_run_after_the_checkpoint_skips_duplicates_and_stops_at_a_gap() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let events: Vec<_> = [(a, 3), (b, 1), (a, 4), (a, 5), (a, 7), (a, 8), (b, 2)]
            .into_iter()
            .map(|(id, sequence)| deactivated(id, sequence))
            .collect();
        let by_aggregate = streams(&events, ProjectionName::Warehouses);
        assert_eq!(by_aggregate.len(), 2);
        let (id, stream) = &by_aggregate[0];
        assert_eq!(*id, a);
        // Checkpoint at 3: 3 is a duplicate, 4 and 5 apply, 7 is past a hole at 6.
        let plan = plan(3, stream);
        let next: Vec<_> = plan
            .next
            .iter()
            .map(|(i, e)| (*i, e.sequence_number))
            .collect();
        assert_eq!(next, [(2, 4), (3, 5)]);
        assert!(plan.skipped);
        assert_eq!(plan.gap, Some((4, 5)));
        assert!(plan.needs_read());
        // The other aggregate's events are all new.
        let other = super::plan(0, &by_aggregate[1].1);
        assert_eq!(other.next.len(), 2);
        assert!(!other.needs_read());
        // No projector of items sees a warehouse event.
        assert!(streams(&events, ProjectionName::CurrentInventory).is_empty());
    }
}
