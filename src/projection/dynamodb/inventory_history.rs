//! Inventory history: one record per change of an item's on-hand stock (its creation with the
//! initial quantity, then every `StockLevelChanged`), keyed (itemId, sequenceNumber). Each
//! record is self-contained — it depends on no earlier event — so writing it is idempotent by
//! itself and needs no checkpoint: a redelivery writes the same record again, 25 records per
//! BatchWriteItem, and writing one ahead of a gap would do no harm (the gap is refilled).

use super::attributes::{Record, RecordBuilder, RecordReader};
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};

use super::{unavailable, DynamoProjections};
use crate::projection::fold::history;
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

/// Writes the records of these events (those that change on-hand stock), unconditionally:
/// a record depends only on its own event, so writing it again is harmless.
pub async fn write<'a>(
    store: &DynamoProjections,
    events: impl Iterator<Item = &'a EventEnvelope>,
) -> Result<(), ProjectionError> {
    let mut requests = Vec::new();
    for entry in history(events)? {
        let put = PutRequest::builder()
            .set_item(Some(to_record(&entry)))
            .build()
            .map_err(unavailable("building a history record"))?;
        requests.push(WriteRequest::builder().put_request(put).build());
    }
    crate::dynamodb::batch_write(&store.client, &store.tables.history(), requests)
        .await
        .map_err(unavailable("writing history records"))
}
