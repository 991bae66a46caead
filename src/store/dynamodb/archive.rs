//! The archive port on DynamoDB. The cut is `cut.rs`. An import writes each batch of events
//! as transactions of up to 100 Puts, a few in flight, each Put conditioned on
//! `attribute_not_exists(sequenceNumber) OR eventId = :id`: a batch written again after an
//! interruption rewrites the same items (never a second copy), and a different event at an
//! imported place refuses the batch. No outbox rows: imported events are not published. The
//! marker is a row of the guards table (`import#marker`), created only if absent and moved
//! only while it names the same file.

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use futures::stream::{StreamExt, TryStreamExt};
use std::collections::HashMap;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{
    build, event_item, item_size, n, number, s, text, unavailable, DynamoEventStore, Item,
    MAX_TRANSACTION_BYTES, MAX_TRANSACTION_ITEMS,
};
use crate::dynamodb::ConditionalWrite;
use crate::store::archive::{ArchiveStore, CutPart, ImportMarker};
use crate::store::{EventEnvelope, EventStore, IdempotencyRecord, StoreError};

const MARKER: &str = "import#marker";
/// Import transactions in flight at once.
const IN_FLIGHT: usize = 8;

impl DynamoEventStore {
    /// One transaction of imported events; a race with another transaction on the same items
    /// (only another importer) is tried again a few times.
    async fn import_chunk(&self, events: &[EventEnvelope]) -> Result<(), StoreError> {
        let mut items = Vec::with_capacity(events.len());
        for event in events {
            let put = build(
                Put::builder()
                    .table_name(self.tables.events())
                    .set_item(Some(event_item(event)?))
                    .condition_expression("attribute_not_exists(#seq) OR #eid = :eid")
                    .expression_attribute_names("#seq", "sequenceNumber")
                    .expression_attribute_names("#eid", "eventId")
                    .expression_attribute_values(":eid", s(event.event_id.to_string()))
                    .build(),
            )?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        for attempt in 0..5u32 {
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let Err(error) = sent else { return Ok(()) };
            let reasons = match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
                    c.cancellation_reasons().to_vec()
                }
                _ => return Err(unavailable(error)),
            };
            if let Some(index) = reasons
                .iter()
                .position(|r| r.code() == Some("ConditionalCheckFailed"))
            {
                return Err(StoreError::Conflict {
                    aggregate_id: events[index].aggregate_id,
                });
            }
            if !reasons
                .iter()
                .any(|r| r.code() == Some("TransactionConflict"))
                || attempt == 4
            {
                return Err(unavailable(error));
            }
            tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
        }
        Ok(())
    }

    /// Puts `item` into the guards table unless a row of its `guardKey` is there already,
    /// which is then left as it was.
    async fn put_new_guard(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(self.tables.guards())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key)")
            .expression_attribute_names("#key", "guardKey")
            .send()
            .await
            .map(drop)
            .or_if_condition_failed(())
            .map_err(unavailable)
    }

    /// Claims a guard for `owner` unless it holds it already (the guard row of a commit).
    async fn import_guard(&self, key: String, owner: Uuid) -> Result<(), StoreError> {
        let item = HashMap::from([
            ("guardKey".to_owned(), s(key.clone())),
            ("owner".to_owned(), s(owner.to_string())),
        ]);
        let put = self
            .client
            .put_item()
            .table_name(self.tables.guards())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#key) OR #owner = :owner")
            .expression_attribute_names("#key", "guardKey")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(owner.to_string()))
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::GuardTaken { key })
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn update_marker(
        &self,
        checksum: &str,
        lines_done: u64,
        finished: bool,
    ) -> Result<(), StoreError> {
        let updated = self
            .client
            .update_item()
            .table_name(self.tables.guards())
            .key("guardKey", s(MARKER))
            .update_expression("SET #done = :done, #finished = :finished")
            .condition_expression("#checksum = :checksum AND #done <= :done")
            .expression_attribute_names("#done", "linesDone")
            .expression_attribute_names("#finished", "finished")
            .expression_attribute_names("#checksum", "checksum")
            .expression_attribute_values(":done", n(lines_done))
            .expression_attribute_values(":finished", AttributeValue::Bool(finished))
            .expression_attribute_values(":checksum", s(checksum))
            .send()
            .await;
        match updated {
            Ok(_) => Ok(()),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Err(StoreError::corrupt(format!(
                    "this store holds no import of the file with checksum {checksum} at or before line {lines_done}"
                )))
            }
            Err(error) => Err(unavailable(error)),
        }
    }
}

/// Splits events into transactions within DynamoDB's item and byte limits.
fn chunks(events: &[EventEnvelope]) -> Result<Vec<&[EventEnvelope]>, StoreError> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (index, event) in events.iter().enumerate() {
        let size = item_size(&event_item(event)?);
        if index > start
            && (index - start == MAX_TRANSACTION_ITEMS || bytes + size > MAX_TRANSACTION_BYTES)
        {
            chunks.push(&events[start..index]);
            (start, bytes) = (index, 0);
        }
        bytes += size;
    }
    if start < events.len() {
        chunks.push(&events[start..]);
    }
    Ok(chunks)
}

#[async_trait]
impl ArchiveStore for DynamoEventStore {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "store": "dynamodb", "eventsTable": self.tables.events() })
    }

    async fn cut(&self, idempotency: bool, sink: mpsc::Sender<CutPart>) -> Result<(), StoreError> {
        self.read_cut(idempotency, sink).await
    }

    async fn holds_events(&self) -> Result<bool, StoreError> {
        let mut cursor = None;
        loop {
            let page = self.read_all(cursor, 4).await?;
            if !page.events.is_empty() {
                return Ok(true);
            }
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(false),
            }
        }
    }

    async fn import_marker(&self) -> Result<Option<ImportMarker>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(self.tables.guards())
            .key("guardKey", s(MARKER))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        Ok(Some(ImportMarker {
            checksum: text(item, "checksum")?,
            lines_done: number(item, "linesDone")?,
            finished: matches!(item.get("finished"), Some(AttributeValue::Bool(true))),
        }))
    }

    async fn claim_import(&self, checksum: &str) -> Result<ImportMarker, StoreError> {
        let item = HashMap::from([
            ("guardKey".to_owned(), s(MARKER)),
            ("checksum".to_owned(), s(checksum)),
            ("linesDone".to_owned(), n(0)),
            ("finished".to_owned(), AttributeValue::Bool(false)),
        ]);
        // An import that claimed the marker before keeps it; it is read below either way.
        self.put_new_guard(item).await?;
        self.import_marker()
            .await?
            .ok_or_else(|| StoreError::unavailable("the import marker vanished"))
    }

    async fn import_events(
        &self,
        checksum: &str,
        events: Vec<EventEnvelope>,
        guards: Vec<(String, Uuid)>,
        lines_done: u64,
    ) -> Result<(), StoreError> {
        futures::stream::iter(guards)
            .map(|(key, owner)| self.import_guard(key, owner))
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        let chunks: Vec<Vec<EventEnvelope>> =
            chunks(&events)?.into_iter().map(<[_]>::to_vec).collect();
        futures::stream::iter(chunks)
            .map(|chunk| async move { self.import_chunk(&chunk).await })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await?;
        self.update_marker(checksum, lines_done, false).await
    }

    async fn import_idempotency(&self, records: Vec<IdempotencyRecord>) -> Result<(), StoreError> {
        futures::stream::iter(records)
            .map(|record| async move {
                let item = HashMap::from([
                    (
                        "guardKey".to_owned(),
                        s(format!("idempotency#{}", record.key)),
                    ),
                    ("fingerprint".to_owned(), s(record.fingerprint)),
                    ("response".to_owned(), s(record.response.to_string())),
                ]);
                // One there already is this record, from an import run again.
                self.put_new_guard(item).await
            })
            .buffer_unordered(IN_FLIGHT)
            .try_collect::<()>()
            .await
    }

    async fn finish_import(&self, checksum: &str, lines: u64) -> Result<(), StoreError> {
        self.update_marker(checksum, lines, true).await
    }
}
