//! The DynamoDB outbox. Every commit writes one outbox row in its own transaction, naming its
//! events (`aggregateId:sequenceNumber`, not the envelopes: the events are beside it), so
//! nothing committed is lost and a commit of any size costs one small row. The committing
//! process keeps the envelopes in memory, so its relay publishes them without reading the
//! table back. The table is read by a sweep, one shard a second, only for rows older than a
//! grace period: rows of a process that died, or of a commit whose reply was lost; a sweep
//! does not race the live relay of another instance for its fresh rows. Rows spread over
//! `shards` partition keys (by aggregate), so no one key takes every commit's write. A row
//! leaves the table, and memory, only after the bus confirmed every event it names.

use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

use super::{build, event_from_item, n, s, text, unavailable, Item};
use crate::dynamodb::Tables;
use crate::store::{EventEnvelope, OutboxEntry, StoreError};

/// How often a relay looks for rows written by other processes.
const POLL: Duration = Duration::from_millis(200);
/// How often one shard of the table is swept for rows no live relay took.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A row younger than this belongs to its committing process's relay.
const GRACE: Duration = Duration::from_secs(2);
/// Rows read by one sweep (one Query page).
const SWEEP_PAGE: i32 = 100;
/// The default number of outbox shards.
pub const DEFAULT_SHARDS: u32 = 4;

/// One outbox row: a commit's events, each confirmed or not.
struct Row {
    shard: u32,
    events: Vec<EventEnvelope>,
    confirmed: Vec<bool>,
}

#[derive(Default)]
struct State {
    /// Rows this process committed and its bus has not yet confirmed, by outbox id (the first
    /// event's id, a UUID v7: commit order).
    mine: BTreeMap<String, Row>,
    /// Rows the sweeps found and the bus has not yet confirmed.
    swept: BTreeMap<String, Row>,
    /// When the next sweep is due (`None`: now), and which shard it reads.
    next_sweep: Option<Instant>,
    next_shard: u32,
    /// Shards swept at least once since start (the first sweep of each takes every row).
    swept_once: Vec<bool>,
}

pub(super) struct Outbox {
    shards: u32,
    signal: Notify,
    state: Mutex<State>,
}

/// An entry's id for the relay: the row and the event's place in it.
fn entry_id(row: &str, index: usize) -> String {
    format!("{row}/{index}")
}

/// The outbox id below which every row is at least `GRACE` old (ids are UUID v7 strings,
/// ordered by their millisecond timestamp).
fn cutoff(now_ms: i64) -> String {
    let ms = (now_ms - GRACE.as_millis() as i64).max(0) as u64;
    uuid::Builder::from_unix_timestamp_millis(ms, &[0; 10])
        .into_uuid()
        .to_string()
}

impl Outbox {
    pub(super) fn new(shards: u32) -> Self {
        let shards = shards.max(1);
        Self {
            shards,
            signal: Notify::new(),
            state: Mutex::new(State {
                swept_once: vec![false; shards as usize],
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain maps; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The shard of a commit: by its first aggregate, so one aggregate's commits share one.
    fn shard_of(&self, aggregate_id: Uuid) -> u32 {
        (aggregate_id.as_u128() % u128::from(self.shards)) as u32
    }

    /// The outbox row of a commit's events (none without events).
    pub(super) fn row(&self, events: &[EventEnvelope]) -> Option<Item> {
        let first = events.first()?;
        let names: Vec<String> = events
            .iter()
            .map(|e| format!("{}:{}", e.aggregate_id, e.sequence_number))
            .collect();
        Some(HashMap::from([
            ("shard".to_owned(), n(self.shard_of(first.aggregate_id))),
            ("outboxId".to_owned(), s(first.event_id.to_string())),
            ("events".to_owned(), s(names.join(","))),
        ]))
    }

    /// Called after a commit landed with these events' outbox row.
    pub(super) fn committed(&self, events: &[EventEnvelope]) {
        let Some(first) = events.first() else {
            return;
        };
        let row = Row {
            shard: self.shard_of(first.aggregate_id),
            events: events.to_vec(),
            confirmed: vec![false; events.len()],
        };
        self.state().mine.insert(first.event_id.to_string(), row);
        self.signal.notify_one();
    }

    /// Events to publish, oldest commit first: this process's own, and those the sweep found.
    pub(super) async fn pending(
        &self,
        client: &Client,
        tables: &Tables,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let due = {
            let mut state = self.state();
            match state.next_sweep {
                Some(at) if Instant::now() < at => None,
                _ => {
                    let shard = state.next_shard;
                    state.next_shard = (shard + 1) % self.shards;
                    let first = !state.swept_once[shard as usize];
                    Some((
                        shard,
                        (!first).then(|| cutoff(crate::application::now_ms())),
                    ))
                }
            }
        };
        let mut failure = None;
        if let Some((shard, before)) = due {
            match sweep(client, tables, shard, before).await {
                Ok((rows, full)) => {
                    let mut state = self.state();
                    state.swept_once[shard as usize] = true;
                    for (id, events) in rows {
                        if !state.mine.contains_key(&id) && !state.swept.contains_key(&id) {
                            let confirmed = vec![false; events.len()];
                            state.swept.insert(
                                id,
                                Row {
                                    shard,
                                    events,
                                    confirmed,
                                },
                            );
                        }
                    }
                    // A full page: there is more; sweep the same shard again at once.
                    if full {
                        state.next_shard = shard;
                        state.next_sweep = None;
                    } else {
                        state.next_sweep = Some(Instant::now() + SWEEP_EVERY);
                    }
                }
                Err(error) => {
                    self.state().next_sweep = Some(Instant::now() + SWEEP_EVERY);
                    failure = Some(error);
                }
            }
        }
        let state = self.state();
        if let Some(error) = failure {
            if state.mine.is_empty() && state.swept.is_empty() {
                return Err(error);
            }
            tracing::warn!(%error, "cannot sweep the outbox; publishing this process's rows");
        }
        let mut rows: Vec<(&String, &Row)> = state.mine.iter().chain(state.swept.iter()).collect();
        rows.sort_by(|a, b| a.0.cmp(b.0));
        let entries = rows
            .into_iter()
            .flat_map(|(id, row)| {
                row.events
                    .iter()
                    .zip(&row.confirmed)
                    .enumerate()
                    .filter(|(_, (_, confirmed))| !**confirmed)
                    .map(move |(index, (envelope, _))| OutboxEntry {
                        id: entry_id(id, index),
                        envelope: envelope.clone(),
                    })
            })
            .take(limit.max(1))
            .collect();
        Ok(entries)
    }

    /// Events waiting as this process knows them: its own and those its sweeps found.
    pub(super) fn stats(&self) -> (u64, Option<i64>) {
        let state = self.state();
        let waiting = state
            .mine
            .values()
            .chain(state.swept.values())
            .flat_map(|row| {
                row.events
                    .iter()
                    .zip(&row.confirmed)
                    .filter(|(_, confirmed)| !**confirmed)
                    .map(|(event, _)| event.timestamp)
            });
        let (count, oldest) = waiting.fold((0u64, None::<i64>), |(count, oldest), t| {
            (count + 1, Some(oldest.map_or(t, |o| o.min(t))))
        });
        (count, oldest)
    }

    /// Marks events confirmed and deletes the rows whose every event is, 25 per
    /// BatchWriteItem, retrying what DynamoDB leaves unprocessed.
    pub(super) async fn remove(
        &self,
        client: &Client,
        tables: &Tables,
        ids: &[String],
    ) -> Result<(), StoreError> {
        let done: Vec<(String, u32)> = {
            let mut state = self.state();
            let mut done = Vec::new();
            for id in ids {
                let Some((row_id, index)) = id.rsplit_once('/') else {
                    continue;
                };
                let Ok(index) = index.parse::<usize>() else {
                    continue;
                };
                let state = &mut *state;
                for rows in [&mut state.mine, &mut state.swept] {
                    if let Some(row) = rows.get_mut(row_id) {
                        if let Some(flag) = row.confirmed.get_mut(index) {
                            *flag = true;
                        }
                        if row.confirmed.iter().all(|c| *c) {
                            done.push((row_id.to_owned(), row.shard));
                        }
                    }
                }
            }
            done.sort();
            done.dedup();
            done
        };
        for chunk in done.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|(id, shard)| {
                    let delete = build(
                        DeleteRequest::builder()
                            .key("shard", n(shard))
                            .key("outboxId", s(id.clone()))
                            .build(),
                    )?;
                    Ok(WriteRequest::builder().delete_request(delete).build())
                })
                .collect::<Result<_, StoreError>>()?;
            for attempt in 0..10u32 {
                let answer = client
                    .batch_write_item()
                    .request_items(tables.outbox(), requests.clone())
                    .send()
                    .await
                    .map_err(|e| unavailable(&e))?;
                requests = answer
                    .unprocessed_items()
                    .and_then(|u| u.get(&tables.outbox()))
                    .cloned()
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
            }
            if !requests.is_empty() {
                return Err(StoreError::Unavailable(
                    "outbox rows left unprocessed".into(),
                ));
            }
            let mut state = self.state();
            for (id, _) in chunk {
                state.mine.remove(id);
                state.swept.remove(id);
            }
        }
        Ok(())
    }

    pub(super) async fn wait(&self) {
        let _ = tokio::time::timeout(POLL, self.signal.notified()).await;
    }
}

/// One page of a shard's outbox rows older than `before` (every row when `None`), oldest
/// first, each with the events it names read from the events table, and whether the page
/// was full.
async fn sweep(
    client: &Client,
    tables: &Tables,
    shard: u32,
    before: Option<String>,
) -> Result<(Vec<(String, Vec<EventEnvelope>)>, bool), StoreError> {
    let mut query = client
        .query()
        .table_name(tables.outbox())
        .expression_attribute_names("#shard", "shard")
        .expression_attribute_values(":shard", n(shard))
        .consistent_read(true)
        .limit(SWEEP_PAGE);
    query = match before {
        Some(before) => query
            .key_condition_expression("#shard = :shard AND #id < :before")
            .expression_attribute_names("#id", "outboxId")
            .expression_attribute_values(":before", s(before)),
        None => query.key_condition_expression("#shard = :shard"),
    };
    let page = query.send().await.map_err(|e| unavailable(&e))?;
    let full = page.last_evaluated_key().is_some_and(|key| !key.is_empty());
    let mut rows = Vec::new();
    for item in page.items() {
        let id = text(item, "outboxId")?;
        let names = text(item, "events")?;
        let keys = names
            .split(',')
            .map(|name| {
                let (aggregate, sequence) = name.split_once(':').ok_or_else(|| {
                    StoreError::Corrupt(format!("outbox row {id}: bad event name {name}"))
                })?;
                Ok((aggregate.to_owned(), sequence.to_owned()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.push((id, keys));
    }
    // Every named event, read back in one BatchGetItem per 100.
    let wanted: Vec<(String, String)> = rows.iter().flat_map(|(_, keys)| keys.clone()).collect();
    let mut found: HashMap<(String, String), EventEnvelope> = HashMap::new();
    for chunk in wanted.chunks(100) {
        let mut keys: Vec<Item> = chunk
            .iter()
            .map(|(aggregate, sequence)| {
                HashMap::from([
                    ("aggregateId".to_owned(), s(aggregate.clone())),
                    (
                        "sequenceNumber".to_owned(),
                        AttributeValue::N(sequence.clone()),
                    ),
                ])
            })
            .collect();
        for attempt in 0..10u32 {
            if keys.is_empty() {
                break;
            }
            let request = build(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build(),
            )?;
            let answer = client
                .batch_get_item()
                .request_items(tables.events(), request)
                .send()
                .await
                .map_err(|e| unavailable(&e))?;
            for item in answer
                .responses()
                .and_then(|r| r.get(&tables.events()))
                .into_iter()
                .flatten()
            {
                let event = event_from_item(item)?;
                found.insert(
                    (
                        event.aggregate_id.to_string(),
                        event.sequence_number.to_string(),
                    ),
                    event,
                );
            }
            keys = answer
                .unprocessed_keys()
                .and_then(|u| u.get(&tables.events()))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if !keys.is_empty() {
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
            }
        }
        if !keys.is_empty() {
            return Err(StoreError::Unavailable(
                "outbox events left unprocessed by BatchGetItem".into(),
            ));
        }
    }
    let rows = rows
        .into_iter()
        .map(|(id, keys)| {
            let events = keys
                .into_iter()
                .map(|key| {
                    found.remove(&key).ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "outbox row {id} names event {}:{}, which is not stored",
                            key.0, key.1
                        ))
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((id, events))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((rows, full))
}
