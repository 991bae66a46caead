//! The DynamoDB outbox as the relay sees it. Every commit writes its outbox rows in its own
//! transaction, so nothing committed is lost; the committing process also keeps those rows in
//! memory, so its relay publishes them without reading the table back (no Query per command).
//! The table itself is read by a sweep, once a second, and only for rows older than a grace
//! period: rows of a process that died, or of a commit whose reply was lost. So a sweep does
//! not race the live relay of another instance for its fresh rows. A row leaves the table,
//! and memory, only after the bus confirmed it.

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

use super::{build, n, s, text, unavailable};
use crate::dynamodb::Tables;
use crate::store::{EventEnvelope, OutboxEntry, StoreError};

/// How often a relay looks for rows written by other processes.
const POLL: Duration = Duration::from_millis(200);
/// How often the table is swept for rows no live relay took.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// A row younger than this belongs to its committing process's relay.
const GRACE: Duration = Duration::from_secs(2);
/// Rows read by one sweep (one Query page).
const SWEEP_PAGE: i32 = 1000;

#[derive(Default)]
struct State {
    /// Rows this process committed and its bus has not yet confirmed, by outbox id (a UUID v7:
    /// commit order).
    mine: BTreeMap<String, OutboxEntry>,
    /// Rows the sweeps found and the bus has not yet confirmed.
    swept: BTreeMap<String, OutboxEntry>,
    /// When the next sweep is due; `None` until the first, which takes every row.
    next_sweep: Option<Instant>,
}

#[derive(Default)]
pub(super) struct Outbox {
    signal: Notify,
    state: Mutex<State>,
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
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A poisoned lock only means a panic elsewhere mid-update of plain maps; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after a commit landed with these events' outbox rows.
    pub(super) fn committed(&self, events: &[EventEnvelope]) {
        {
            let mut state = self.state();
            for event in events {
                let id = event.event_id.to_string();
                state.mine.insert(
                    id.clone(),
                    OutboxEntry {
                        id,
                        envelope: event.clone(),
                    },
                );
            }
        }
        self.signal.notify_one();
    }

    /// Rows to publish, oldest first: this process's own, and those the sweep found.
    pub(super) async fn pending(
        &self,
        client: &Client,
        tables: &Tables,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let due = {
            let state = self.state();
            match state.next_sweep {
                None => Some(None),
                Some(at) if Instant::now() >= at => {
                    Some(Some(cutoff(crate::application::now_ms())))
                }
                Some(_) => None,
            }
        };
        let mut failure = None;
        if let Some(before) = due {
            match sweep(client, tables, before).await {
                Ok((rows, full)) => {
                    let mut state = self.state();
                    for row in rows {
                        if !state.mine.contains_key(&row.id) {
                            state.swept.insert(row.id.clone(), row);
                        }
                    }
                    // A full page: there is more; sweep again at once.
                    state.next_sweep = Some(if full {
                        Instant::now()
                    } else {
                        Instant::now() + SWEEP_EVERY
                    });
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
        let mut rows: Vec<OutboxEntry> = state
            .mine
            .values()
            .chain(state.swept.values())
            .cloned()
            .collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.truncate(limit.max(1));
        Ok(rows)
    }

    /// Rows waiting as this process knows them: its own and those its last sweep found.
    pub(super) fn stats(&self) -> (u64, Option<i64>) {
        let state = self.state();
        let oldest = state
            .mine
            .values()
            .chain(state.swept.values())
            .map(|row| row.envelope.timestamp)
            .min();
        ((state.mine.len() + state.swept.len()) as u64, oldest)
    }

    /// Deletes confirmed rows, 25 per BatchWriteItem, retrying what DynamoDB left unprocessed.
    pub(super) async fn remove(
        &self,
        client: &Client,
        tables: &Tables,
        ids: &[String],
    ) -> Result<(), StoreError> {
        for chunk in ids.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|id| {
                    let delete = build(
                        DeleteRequest::builder()
                            .key("shard", n(0))
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
            for id in chunk {
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

/// One page of outbox rows older than `before` (every row when `None`), oldest first, and
/// whether the page was full.
async fn sweep(
    client: &Client,
    tables: &Tables,
    before: Option<String>,
) -> Result<(Vec<OutboxEntry>, bool), StoreError> {
    let mut query = client
        .query()
        .table_name(tables.outbox())
        .expression_attribute_names("#shard", "shard")
        .expression_attribute_values(":shard", n(0))
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
    let rows = page
        .items()
        .iter()
        .map(|item| {
            let id = text(item, "outboxId")?;
            let envelope = serde_json::from_str(&text(item, "envelope")?)
                .map_err(|e| StoreError::Corrupt(format!("outbox row {id}: {e}")))?;
            Ok(OutboxEntry { id, envelope })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    let full = page.last_evaluated_key().is_some_and(|key| !key.is_empty());
    Ok((rows, full))
}
