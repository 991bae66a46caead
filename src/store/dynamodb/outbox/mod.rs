//! The DynamoDB outbox. Every commit writes one outbox row in its own transaction, naming its
//! events (`aggregateId:sequenceNumber`, not the envelopes: the events are beside it), so
//! nothing committed is lost and a commit of any size costs one small row. The committing
//! process keeps the envelopes in memory, so its relay publishes them without reading the
//! table back. The table is read by a sweep, one shard a second, only for rows older than a
//! grace period: rows of a process that died, or of a commit whose reply was lost; a sweep
//! does not race the live relay of another instance for its fresh rows. Rows spread over
//! `shards` partition keys (by aggregate), so no one key takes every commit's write. A row
//! leaves the table, and memory, only after the bus confirmed every event it names.
//!
//! A shard is swept only by the holder of its lease, a row in the guards table taken and
//! renewed (every third of the lease) by a conditional PutItem: two relays never sweep one
//! shard at once, and a dead relay's shards are taken when its leases expire. Only a running
//! relay holds leases (a paused one sweeps nothing, so it must not keep others from its
//! shards), and it sweeps a shard only while its own clock leaves a third of the lease, so a
//! stalled or skewed holder stops before another can start. Idle cost: `3 × shards / lease`
//! write units a second fleet-wide (4 shards, 5 s: 2.4 WRU/s, about $4 a month on demand),
//! 1.2 RRU/s per instance not holding every shard (reading the other leases) and one Query a
//! second per holder (the sweep; before leases, every instance swept).

use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use aws_sdk_dynamodb::Client;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use uuid::Uuid;

mod leases;
mod sweep;

use super::{build, n, s, Item};
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
/// How long a lease on a shard lasts unless renewed: the longest a dead relay's shards wait
/// (a restarted process's orphans are published about this long after the crash; 10 s would
/// halve the renewals and double that wait).
pub const DEFAULT_LEASE: Duration = Duration::from_secs(5);
/// A relay that has not asked for work this long is stuck (its longest back-off is 3.2 s):
/// its leases are no longer renewed, so other instances take its shards.
const RELAY_SILENT: Duration = Duration::from_secs(10);
/// How long a deleted swept row's id is remembered (longer than any sweep takes).
const FORGET_DELETED: Duration = Duration::from_secs(10);

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
    /// Swept rows deleted lately: a sweep that read one before its delete landed must not
    /// bring it back (it would be published twice).
    deleted: HashMap<String, Instant>,
    /// When the next sweep is due (`None`: now), and which shard it reads first.
    next_sweep: Option<Instant>,
    next_shard: u32,
    /// Shards swept at least once since start (the first sweep of each takes every row).
    swept_once: Vec<bool>,
    /// Per shard: until when this process holds its lease by its own clock (the instant the
    /// winning PutItem was sent, plus the lease).
    leases: Vec<Option<Instant>>,
    /// Shards acquired and not swept since: swept before any other.
    fresh: Vec<bool>,
    /// When the relay last asked for work, and whether the lease keeper runs.
    asked: Option<Instant>,
    keeper: bool,
    /// When the keeper next renews and looks for free shards.
    next_round: Option<Instant>,
}

pub(super) struct Outbox {
    shards: u32,
    lease: Duration,
    /// This process's name in the lease rows, new at every start.
    instance: String,
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
    pub(super) fn new(shards: u32, lease: Duration) -> Self {
        let shards = shards.max(1);
        Self {
            shards,
            lease: lease.max(Duration::from_millis(300)),
            instance: Uuid::new_v4().to_string(),
            signal: Notify::new(),
            state: Mutex::new(State {
                swept_once: vec![false; shards as usize],
                leases: vec![None; shards as usize],
                fresh: vec![false; shards as usize],
                ..State::default()
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// The shard of a commit: by its first aggregate, so one aggregate's commits share one.
    fn shard_of(&self, aggregate_id: Uuid) -> u32 {
        (aggregate_id.as_u128() % u128::from(self.shards)) as u32
    }

    /// Time left on a lease below which its holder no longer sweeps the shard.
    fn margin(&self) -> Duration {
        self.lease / 3
    }

    /// Whether this process may sweep `shard` now: it holds the lease with the margin left.
    fn may_sweep(&self, state: &State, shard: u32, now: Instant) -> bool {
        state.leases[shard as usize].is_some_and(|until| now + self.margin() < until)
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

    /// The shard to sweep now, if any, and the cutoff of its rows (`None`: every row).
    fn due_sweep(&self, state: &mut State, now: Instant) -> Option<(u32, Option<String>)> {
        let shard = match (0..self.shards)
            .find(|&shard| state.fresh[shard as usize] && self.may_sweep(state, shard, now))
        {
            Some(shard) => shard,
            None if state.next_sweep.is_some_and(|at| now < at) => return None,
            // The held shards in turn, one per sweep.
            None => {
                let shard = (0..self.shards)
                    .map(|step| (state.next_shard + step) % self.shards)
                    .find(|&shard| self.may_sweep(state, shard, now))?;
                state.next_shard = (shard + 1) % self.shards;
                shard
            }
        };
        state.fresh[shard as usize] = false;
        let first = !state.swept_once[shard as usize];
        Some((
            shard,
            (!first).then(|| cutoff(crate::application::now_ms())),
        ))
    }

    /// Events to publish, oldest commit first: this process's own, and those the sweep of a
    /// shard it holds found. The first call starts the lease keeper.
    pub(super) async fn pending(
        self: &Arc<Self>,
        client: &Client,
        tables: &Tables,
        limit: usize,
    ) -> Result<Vec<OutboxEntry>, StoreError> {
        let start_keeper = {
            let mut state = self.state();
            state.asked = Some(Instant::now());
            !std::mem::replace(&mut state.keeper, true)
        };
        if start_keeper {
            // The first round here, so a starting relay sweeps the shards it can have at once.
            self.lease_round(client, tables).await;
            tokio::spawn(leases::keep_leases(
                Arc::downgrade(self),
                client.clone(),
                tables.clone(),
            ));
        }
        let due = self.due_sweep(&mut self.state(), Instant::now());
        let mut failure = None;
        if let Some((shard, before)) = due {
            match sweep::sweep(client, tables, shard, before).await {
                Ok((rows, full)) => {
                    let mut state = self.state();
                    state.swept_once[shard as usize] = true;
                    // A lease that ran short while the sweep ran: its rows are another's now.
                    if self.may_sweep(&state, shard, Instant::now()) {
                        for (id, events) in rows {
                            if !state.mine.contains_key(&id)
                                && !state.swept.contains_key(&id)
                                && !state.deleted.contains_key(&id)
                            {
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
                    }
                    // A full page: there is more; sweep the same shard again at once.
                    if full {
                        state.fresh[shard as usize] = true;
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
        let mut state = self.state();
        // Rows of a shard no longer held are left to its new holder.
        let now = Instant::now();
        let held: Vec<bool> = (0..self.shards)
            .map(|shard| self.may_sweep(&state, shard, now))
            .collect();
        state.swept.retain(|_, row| held[row.shard as usize]);
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

    /// Marks events confirmed and deletes the rows whose every event is (`batch_write`).
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
        let requests = done
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
            .collect::<Result<Vec<_>, StoreError>>()?;
        crate::dynamodb::batch_write(client, &tables.outbox(), requests)
            .await
            .map_err(|e| StoreError::unavailable_because("cannot clear outbox rows", e))?;
        let mut state = self.state();
        let now = Instant::now();
        state
            .deleted
            .retain(|_, at| now.duration_since(*at) < FORGET_DELETED);
        for (id, _) in &done {
            state.mine.remove(id);
            if state.swept.remove(id).is_some() {
                state.deleted.insert(id.clone(), now);
            }
        }
        Ok(())
    }

    pub(super) async fn wait(&self) {
        let _ = tokio::time::timeout(POLL, self.signal.notified()).await;
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        // The leases run out on their own; the gauges must not say this process still sweeps.
        let state = self.state();
        if state.keeper {
            for shard in 0..self.shards {
                metrics::gauge!(crate::metrics::OUTBOX_SHARDS_OWNED, "shard" => shard.to_string())
                    .set(0.0);
            }
        }
    }
}
