//! Inventory history: one record per change of an item's on-hand stock (its creation with the
//! initial quantity, then every `StockLevelChanged`), keyed (itemId, sequenceNumber). Each
//! record is self-contained — it depends on no earlier event — so a Put conditioned on the key
//! being new is idempotent by itself and needs no checkpoint: a redelivery fails the condition
//! and is skipped, and writing one ahead of a gap does no harm (the gap is refilled, not lost).

use super::attributes::{Record, RecordBuilder, RecordReader};
use super::{decode, unavailable, DynamoProjections, Outcome};
use crate::domain::item::ItemEvent;
use crate::projection::{HistoryEntry, ProjectionError};
use crate::store::EventEnvelope;

pub fn to_record(entry: &HistoryEntry) -> Record {
    RecordBuilder::default()
        .s("itemId", entry.item_id.to_string())
        .n("sequenceNumber", entry.sequence_number)
        .s("reason", &entry.reason)
        .n("delta", entry.delta)
        .n("quantityAfter", entry.quantity_after)
        .opt_s("reference", entry.reference.as_deref())
        .s("actor", &entry.actor)
        .s("correlationId", &entry.correlation_id)
        .n("occurredAt", entry.occurred_at)
        .build()
}

pub fn from_record(record: &Record) -> Result<HistoryEntry, ProjectionError> {
    let r = RecordReader::new("projection_history", record);
    Ok(HistoryEntry {
        item_id: r.uuid("itemId")?,
        sequence_number: r.uint("sequenceNumber")?,
        reason: r.string("reason")?,
        delta: r.int("delta")?,
        quantity_after: r.int("quantityAfter")?,
        reference: r.opt_string("reference")?,
        actor: r.string("actor")?,
        correlation_id: r.string("correlationId")?,
        occurred_at: r.int("occurredAt")?,
    })
}

pub async fn apply(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
) -> Result<Outcome, ProjectionError> {
    let event: ItemEvent = decode(envelope)?;
    // Nothing to record for other events; there is no checkpoint to advance either.
    let Some(entry) = HistoryEntry::from_event(envelope, &event) else {
        return Ok(Outcome::Applied);
    };
    let written = store
        .client
        .put_item()
        .table_name(store.tables.history())
        .set_item(Some(to_record(&entry)))
        .condition_expression("attribute_not_exists(#item)")
        .expression_attribute_names("#item", "itemId")
        .send()
        .await;
    match written {
        Ok(_) => Ok(Outcome::Applied),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(Outcome::Duplicate)
        }
        Err(error) => Err(unavailable(error)),
    }
}
