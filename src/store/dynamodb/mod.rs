//! Event store on DynamoDB. `inventory_events` is the seed's layout (partition `aggregateId`,
//! sort `sequenceNumber`); a commit is one `TransactWriteItems` holding each event's Put with
//! `attribute_not_exists(sequenceNumber)` (two writers of one version cannot both win), a
//! `ConditionCheck` for each aggregate that is only read, the outbox rows, the uniqueness
//! guards and the idempotency record. Limits (100 items, 4 MB, 400 KB per item) are checked
//! before the call; a cancelled transaction is decoded into a race, a taken key or a failure.
//! What the relay reads of the outbox, and the leases that say who sweeps which shard, are in
//! `outbox`. API keys, in their own table of the same store, are in `keys`.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use super::{
    AllEventsPage, Commit, EventEnvelope, EventStore, IdempotencyRecord, OutboxEntry, Snapshot,
    StoreError,
};
use crate::domain::AggregateType;
use crate::dynamodb::{ConditionalWrite, Tables};

pub(crate) type Item = HashMap<String, AttributeValue>;

const MAX_TRANSACTION_ITEMS: usize = 100;
const MAX_TRANSACTION_BYTES: usize = 4 * 1024 * 1024;
/// DynamoDB's item limit is 400 KB; leave room for attribute names and overhead.
const MAX_ITEM_BYTES: usize = 390 * 1024;
/// Parallel scan segments used by `read_all` (replay).
const SCAN_SEGMENTS: i32 = 4;

mod archive;
mod cut;
mod keys;
mod outbox;

pub use outbox::DEFAULT_LEASE as DEFAULT_OUTBOX_LEASE;
pub use outbox::DEFAULT_SHARDS as DEFAULT_OUTBOX_SHARDS;

pub struct DynamoEventStore {
    client: Client,
    tables: Tables,
    outbox: Arc<outbox::Outbox>,
}

/// What each transaction item is, to decode a cancellation's reasons by position.
enum Part {
    Event(Uuid),
    Check(Uuid),
    Outbox,
    Guard(String),
    Idempotency(String),
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// An SDK failure after its own retries. Throttling is told apart: the client may retry it.
fn unavailable<E>(error: SdkError<E>) -> StoreError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
{
    match error.as_service_error().and_then(|e| e.code()) {
        Some(
            "ThrottlingException"
            | "ProvisionedThroughputExceededException"
            | "RequestLimitExceeded",
        ) => StoreError::throttled_because("DynamoDB", error),
        _ => StoreError::unavailable_because("DynamoDB", error),
    }
}

fn text(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value.clone()),
        _ => Err(StoreError::corrupt(format!(
            "attribute {name} missing or not a string"
        ))),
    }
}

fn number<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value
            .parse()
            .map_err(|_| StoreError::corrupt(format!("attribute {name} is not a number: {value}"))),
        _ => Err(StoreError::corrupt(format!(
            "attribute {name} missing or not a number"
        ))),
    }
}

/// An event as one item of the events table (also how the benchmark bulk-loads a store).
pub fn event_item(event: &EventEnvelope) -> Result<Item, StoreError> {
    let metadata = serde_json::to_string(&event.metadata)
        .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
    Ok(HashMap::from([
        ("aggregateId".to_owned(), s(event.aggregate_id.to_string())),
        ("sequenceNumber".to_owned(), n(event.sequence_number)),
        ("eventId".to_owned(), s(event.event_id.to_string())),
        ("aggregateType".to_owned(), s(event.aggregate_type.as_str())),
        ("eventType".to_owned(), s(event.event_type.clone())),
        ("schemaVersion".to_owned(), n(event.schema_version)),
        ("eventData".to_owned(), s(event.event_data.to_string())),
        ("metadata".to_owned(), s(metadata)),
        ("timestamp".to_owned(), n(event.timestamp)),
    ]))
}

fn event_from_item(item: &Item) -> Result<EventEnvelope, StoreError> {
    let aggregate_type = text(item, "aggregateType")?;
    let uuid = |name: &str| -> Result<Uuid, StoreError> {
        Uuid::parse_str(&text(item, name)?)
            .map_err(|e| StoreError::corrupt_because(name.to_owned(), e))
    };
    Ok(EventEnvelope {
        event_id: uuid("eventId")?,
        aggregate_id: uuid("aggregateId")?,
        aggregate_type: AggregateType::parse(&aggregate_type).ok_or_else(|| {
            StoreError::corrupt(format!("unknown aggregate type {aggregate_type}"))
        })?,
        sequence_number: number(item, "sequenceNumber")?,
        event_type: text(item, "eventType")?,
        schema_version: number(item, "schemaVersion")?,
        event_data: serde_json::from_str(&text(item, "eventData")?)
            .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
        metadata: serde_json::from_str(&text(item, "metadata")?)
            .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
        timestamp: number(item, "timestamp")?,
    })
}

/// A rough item size (attribute names + values), as DynamoDB counts it, for the limits.
fn item_size(item: &Item) -> usize {
    item.iter()
        .map(|(name, value)| {
            name.len()
                + match value {
                    AttributeValue::S(text) => text.len(),
                    AttributeValue::N(number) => number.len(),
                    _ => 16,
                }
        })
        .sum()
}

fn build<T, E: std::fmt::Display>(result: Result<T, E>) -> Result<T, StoreError> {
    result.map_err(|e| StoreError::corrupt(format!("building a request: {e}")))
}

impl DynamoEventStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self::with_outbox_shards(client, tables, outbox::DEFAULT_SHARDS)
    }

    /// A store whose outbox rows spread over `shards` partition keys (only ever raise it: a
    /// row in a shard past the count would not be swept).
    pub fn with_outbox_shards(client: Client, tables: Tables, shards: u32) -> Self {
        Self::with_outbox(client, tables, shards, outbox::DEFAULT_LEASE)
    }

    /// ...and whose relay holds a shard's lease for `lease` unless renewed (how long a dead
    /// relay's shards wait for another instance).
    pub fn with_outbox(client: Client, tables: Tables, shards: u32, lease: Duration) -> Self {
        Self {
            client,
            tables,
            outbox: Arc::new(outbox::Outbox::new(shards, lease)),
        }
    }

    /// One page of a parallel scan of the events table, as raw items (per segment in key
    /// order), with the cursor of the next page (`read_all`'s cursor).
    async fn scan_page(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let mut state: ScanCursor = match cursor {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| StoreError::corrupt(format!("bad cursor: {e}")))?,
            None => ScanCursor {
                segments: vec![Segment::Start; SCAN_SEGMENTS as usize],
            },
        };
        let per_segment = (limit / SCAN_SEGMENTS as usize).max(1) as i32;
        // One page from every unfinished segment, all at once: a parallel scan.
        let scans = state
            .segments
            .iter()
            .enumerate()
            .filter_map(|(segment, position)| {
                let start = match position {
                    Segment::Done => return None,
                    Segment::After(id, seq) => Some(HashMap::from([
                        ("aggregateId".to_owned(), s(id.clone())),
                        ("sequenceNumber".to_owned(), n(*seq)),
                    ])),
                    Segment::Start => None,
                };
                let request = self
                    .client
                    .scan()
                    .table_name(self.tables.events())
                    .segment(segment as i32)
                    .total_segments(SCAN_SEGMENTS)
                    .limit(per_segment)
                    .consistent_read(true)
                    .set_exclusive_start_key(start);
                Some(async move { (segment, request.send().await) })
            });
        let results = futures::future::join_all(scans).await;
        let mut items = Vec::new();
        for (segment, result) in results {
            let page = result.map_err(unavailable)?;
            items.extend(page.items().iter().cloned());
            state.segments[segment] = match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => {
                    Segment::After(text(key, "aggregateId")?, number(key, "sequenceNumber")?)
                }
                _ => Segment::Done,
            };
        }
        let done = state.segments.iter().all(|s| matches!(s, Segment::Done));
        let next = if done {
            None
        } else {
            Some(
                serde_json::to_string(&state)
                    .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
            )
        };
        Ok((items, next))
    }

    /// The commit as one TransactWriteItems request, and what each of its items stands for
    /// (to read a cancellation's reasons by); refused before sending if over DynamoDB's limits.
    fn transaction(
        &self,
        commit: &Commit,
    ) -> Result<(Vec<TransactWriteItem>, Vec<Part>), StoreError> {
        let mut tx = Transaction::default();
        for (index, event) in commit.events.iter().enumerate() {
            let mut item = event_item(event)?;
            if commit.events.len() > 1 {
                // Each event of a commit of several names the next one, round the commit, so
                // a scan that sees part of it can tell (`cut`: the export's consistent cut).
                let next = &commit.events[(index + 1) % commit.events.len()];
                item.insert(cut::LINK.to_owned(), cut::link(next));
            }
            let put = conditional_put(self.tables.events(), "sequenceNumber");
            tx.put(put, item, Part::Event(event.aggregate_id))?;
        }
        // One outbox row names every event of the commit.
        if let Some(row) = self.outbox.row(&commit.events) {
            tx.put(
                Put::builder().table_name(self.tables.outbox()),
                row,
                Part::Outbox,
            )?;
        }
        for expectation in &commit.expectations {
            // A stream that is written is already guarded by its events' conditions; one that is
            // only read must still be at the loaded version: nothing at version + 1 yet.
            if commit
                .events
                .iter()
                .any(|e| e.aggregate_id == expectation.aggregate_id)
            {
                continue;
            }
            let check = build(
                ConditionCheck::builder()
                    .table_name(self.tables.events())
                    .key("aggregateId", s(expectation.aggregate_id.to_string()))
                    .key("sequenceNumber", n(expectation.version + 1))
                    .condition_expression("attribute_not_exists(#seq)")
                    .expression_attribute_names("#seq", "sequenceNumber")
                    .build(),
            )?;
            tx.add(
                TransactWriteItem::builder().condition_check(check).build(),
                Part::Check(expectation.aggregate_id),
                64,
            )?;
        }
        // A guard row (uniqueness, idempotency) is a Put that only a new key lets through.
        for guard in &commit.guards {
            let item = HashMap::from([
                ("guardKey".to_owned(), s(guard.key.clone())),
                ("owner".to_owned(), s(guard.owner.to_string())),
            ]);
            let put = conditional_put(self.tables.guards(), "guardKey");
            tx.put(put, item, Part::Guard(guard.key.clone()))?;
        }
        if let Some(record) = &commit.idempotency {
            let item = HashMap::from([
                (
                    "guardKey".to_owned(),
                    s(format!("idempotency#{}", record.key)),
                ),
                ("fingerprint".to_owned(), s(record.fingerprint.clone())),
                ("response".to_owned(), s(record.response.to_string())),
            ]);
            let put = conditional_put(self.tables.guards(), "guardKey");
            tx.put(put, item, Part::Idempotency(record.key.clone()))?;
        }
        tx.finish()
    }
}

/// A Put into `table` that only an item whose `key` attribute is new lets through.
fn conditional_put(table: String, key: &str) -> aws_sdk_dynamodb::types::builders::PutBuilder {
    Put::builder()
        .table_name(table)
        .condition_expression("attribute_not_exists(#key)")
        .expression_attribute_names("#key", key)
}

/// A transaction being built, with its size kept against DynamoDB's limits.
#[derive(Default)]
struct Transaction {
    items: Vec<TransactWriteItem>,
    parts: Vec<Part>,
    bytes: usize,
}

impl Transaction {
    fn add(&mut self, write: TransactWriteItem, part: Part, size: usize) -> Result<(), StoreError> {
        if size > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(format!(
                "an item of {size} bytes exceeds DynamoDB's 400 KB item limit"
            )));
        }
        self.bytes += size;
        self.items.push(write);
        self.parts.push(part);
        Ok(())
    }

    fn put(
        &mut self,
        put: aws_sdk_dynamodb::types::builders::PutBuilder,
        item: Item,
        part: Part,
    ) -> Result<(), StoreError> {
        let size = item_size(&item);
        let put = build(put.set_item(Some(item)).build())?;
        self.add(TransactWriteItem::builder().put(put).build(), part, size)
    }

    fn finish(self) -> Result<(Vec<TransactWriteItem>, Vec<Part>), StoreError> {
        if self.items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::TooLarge(format!(
                "{} transaction items; DynamoDB allows {MAX_TRANSACTION_ITEMS}",
                self.items.len()
            )));
        }
        if self.bytes > MAX_TRANSACTION_BYTES {
            return Err(StoreError::TooLarge(format!(
                "{} bytes; DynamoDB allows 4 MB per transaction",
                self.bytes
            )));
        }
        Ok((self.items, self.parts))
    }
}

/// Turns a cancelled transaction into what the command runner understands.
fn decode_failure(
    error: SdkError<TransactWriteItemsError>,
    parts: &[Part],
    commit: &Commit,
) -> StoreError {
    let cancelled = match error.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => cancelled.clone(),
        _ => return unavailable(error),
    };
    let reasons = cancelled.cancellation_reasons();
    for (reason, part) in reasons.iter().zip(parts) {
        match (reason.code().unwrap_or("None"), part) {
            ("ConditionalCheckFailed", Part::Event(id) | Part::Check(id)) => {
                return StoreError::Conflict { aggregate_id: *id }
            }
            ("ConditionalCheckFailed", Part::Guard(key)) => {
                return StoreError::GuardTaken { key: key.clone() }
            }
            ("ConditionalCheckFailed", Part::Idempotency(key)) => {
                return StoreError::IdempotencyKeyUsed { key: key.clone() }
            }
            _ => {}
        }
    }
    // Another transaction on the same items was in flight: a race, retried from a fresh load.
    if reasons
        .iter()
        .any(|r| r.code() == Some("TransactionConflict"))
    {
        return StoreError::Conflict {
            aggregate_id: commit
                .events
                .first()
                .map_or(Uuid::nil(), |e| e.aggregate_id),
        };
    }
    let codes: Vec<_> = reasons
        .iter()
        .filter_map(|r| r.code())
        .filter(|c| *c != "None")
        .collect();
    StoreError::unavailable(format!("transaction cancelled: {codes:?}"))
}

/// Where each parallel-scan segment stands between `read_all` calls.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
enum Segment {
    Start,
    After(String, u64),
    Done,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct ScanCursor {
    segments: Vec<Segment>,
}

#[async_trait]
impl EventStore for DynamoEventStore {
    fn max_commit_items(&self) -> Option<usize> {
        Some(MAX_TRANSACTION_ITEMS)
    }

    async fn append(&self, commit: Commit) -> Result<(), StoreError> {
        let (items, parts) = self.transaction(&commit)?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => {
                self.outbox.committed(&commit.events);
                Ok(())
            }
            Err(error) => Err(decode_failure(error, &parts, &commit)),
        }
    }

    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let high = up_to.unwrap_or(i64::MAX as u64);
        if high <= after {
            return Ok(vec![]);
        }
        let mut events = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(self.tables.events())
                .key_condition_expression("#id = :a AND #seq BETWEEN :low AND :high")
                .expression_attribute_names("#id", "aggregateId")
                .expression_attribute_names("#seq", "sequenceNumber")
                .expression_attribute_values(":a", s(aggregate_id.to_string()))
                .expression_attribute_values(":low", n(after + 1))
                .expression_attribute_values(":high", n(high))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                events.push(event_from_item(item)?);
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(events),
            }
        }
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError> {
        let (items, next) = self.scan_page(cursor, limit).await?;
        let mut events = items
            .iter()
            .map(event_from_item)
            .collect::<Result<Vec<_>, _>>()?;
        // Within one partition a scan returns items in sort-key order; keep it per aggregate.
        events.sort_by(|a, b| {
            (a.aggregate_id, a.sequence_number).cmp(&(b.aggregate_id, b.sequence_number))
        });
        Ok(AllEventsPage { events, next })
    }

    async fn guard_owner(&self, key: &str) -> Result<Option<Uuid>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(self.tables.guards())
            .key("guardKey", s(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        let owner = text(item, "owner")?;
        Uuid::parse_str(&owner)
            .map(Some)
            .map_err(|e| StoreError::corrupt_because("a guard's owner", e))
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(self.tables.guards())
            .key("guardKey", s(format!("idempotency#{key}")))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        Ok(Some(IdempotencyRecord {
            key: key.to_owned(),
            fingerprint: text(item, "fingerprint")?,
            response: serde_json::from_str(&text(item, "response")?)
                .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
        }))
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.outbox.pending(&self.client, &self.tables, limit).await
    }

    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        Ok(self.outbox.stats())
    }

    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError> {
        self.outbox.remove(&self.client, &self.tables, ids).await
    }

    async fn outbox_wait(&self) {
        self.outbox.wait().await
    }

    async fn load_snapshot(&self, aggregate_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        let found = self
            .client
            .get_item()
            .table_name(self.tables.snapshots())
            .key("aggregateId", s(aggregate_id.to_string()))
            .send()
            .await
            .map_err(unavailable)?;
        let Some(item) = found.item() else {
            return Ok(None);
        };
        let kind = text(item, "aggregateType")?;
        Ok(Some(Snapshot {
            aggregate_id,
            aggregate_type: AggregateType::parse(&kind)
                .ok_or_else(|| StoreError::corrupt(format!("snapshot of unknown type {kind}")))?,
            version: number(item, "version")?,
            state_version: number(item, "stateVersion")?,
            state: serde_json::from_str(&text(item, "state")?)
                .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let item = HashMap::from([
            (
                "aggregateId".to_owned(),
                s(snapshot.aggregate_id.to_string()),
            ),
            (
                "aggregateType".to_owned(),
                s(snapshot.aggregate_type.as_str()),
            ),
            ("version".to_owned(), n(snapshot.version)),
            ("stateVersion".to_owned(), n(snapshot.state_version)),
            ("state".to_owned(), s(snapshot.state.to_string())),
        ]);
        if item_size(&item) > MAX_ITEM_BYTES {
            return Err(StoreError::TooLarge(
                "snapshot over the 400 KB item limit".into(),
            ));
        }
        let written = self
            .client
            .put_item()
            .table_name(self.tables.snapshots())
            .set_item(Some(item))
            // Never replace a newer snapshot with an older one.
            .condition_expression("attribute_not_exists(#id) OR #v < :v OR #sv <> :sv")
            .expression_attribute_names("#id", "aggregateId")
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#sv", "stateVersion")
            .expression_attribute_values(":v", n(snapshot.version))
            .expression_attribute_values(":sv", n(snapshot.state_version))
            .send()
            .await;
        // Refused: a snapshot as new or newer is there already.
        written
            .map(drop)
            .or_if_condition_failed(())
            .map_err(unavailable)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(self.tables.events())
            .send()
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        let output = self
            .client
            .describe_table()
            .table_name(self.tables.events())
            .send()
            .await
            .map_err(unavailable)?;
        Ok(output.table.and_then(|t| t.item_count).unwrap_or(0).max(0) as u64)
    }
}
