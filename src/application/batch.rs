//! Commands on one item, batched. Commands that arrive while the item's previous commit is in
//! flight queue up; one task then decides them one after another on the item's state (each
//! sees the ones before it, exactly as if they had run in turn) and commits all their events
//! in one atomic write, conditioned on the item's version. A hot item thus costs one commit per
//! batch instead of one per command, and no command on it ever meets a conflict from this
//! process. A conflict from another process re-decides the whole batch on the stored state.
//! Replies go out only once the batch's commit has landed, refusals included, since a refusal
//! is only right if the state it was decided on was.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::cache::StateCache;
use super::locks::StripedLocks;
use super::runner::{
    backoff, idempotency, landed, record_metrics, replay, save_snapshots, Change, CommandContext,
    CommandError, Entity, Idempotency, Outcome, MAX_ATTEMPTS,
};
use super::{load_latest, now_ms};
use crate::domain::item::InventoryItem;
use crate::domain::warehouse::Warehouse;
use crate::domain::{Aggregate, Versioned};
use crate::store::{Commit, EventEnvelope, EventStore, Expectation, IdempotencyRecord, StoreError};
use serde::Serialize;

/// Most commands per batch: at most 4 events and an idempotency record each, one outbox row
/// for the whole commit and a condition on the warehouse keep a batch within DynamoDB's 100
/// items per transaction (12 × 5 + 2 = 62).
const MAX_BATCH: usize = 12;

/// The item as the batch goes, and what the commands decided besides.
pub(crate) struct ItemBatch {
    pub item: Change<InventoryItem>,
    /// The item's warehouse, when a command needs it (loaded once per attempt).
    pub warehouse: Option<Versioned<Warehouse>>,
    /// Events of other aggregates (new allocations), with their expectations.
    pub others: Vec<EventEnvelope>,
    pub expectations: Vec<Expectation>,
    pub now: i64,
}

/// Decides one command on the batch so far: records its events, or changes nothing and says
/// why. Runs again if the batch has to be decided again.
pub(crate) type Decide =
    Box<dyn FnMut(&mut ItemBatch, &CommandContext) -> Result<Outcome, CommandError> + Send>;

pub(crate) struct Job {
    pub ctx: CommandContext,
    pub mutation: &'static str,
    /// The scoped idempotency key and input fingerprint: such a command runs in a batch of
    /// its own, so that its record commits with exactly its events.
    idempotency: Option<(String, String)>,
    pub needs_warehouse: bool,
    pub decide: Decide,
    started: Instant,
    reply: oneshot::Sender<Result<Outcome, CommandError>>,
}

/// What batches share with the rest of command handling.
pub(crate) struct Shared {
    pub store: Arc<dyn EventStore>,
    pub locks: Arc<StripedLocks>,
    pub cache: Arc<StateCache>,
    pub snapshot_every: u64,
}

impl Shared {
    /// The state to decide on: the remembered one unless `fresh`; whether it was remembered.
    pub async fn latest<A: Aggregate>(
        &self,
        id: Uuid,
        fresh: bool,
    ) -> Result<(Versioned<A>, bool), StoreError> {
        if !fresh {
            if let Some(state) = self.cache.peek::<A>(id) {
                return Ok((state, true));
            }
        }
        Ok((
            load_latest::<A>(&*self.store, id, self.snapshot_every > 0).await?,
            false,
        ))
    }

    /// Remembers the states a commit produced (see `StateCache`).
    pub fn remember(&self, outcome: &Outcome) {
        fn keep<A: Aggregate>(shared: &Shared, entity: &Entity<A>) {
            let mut state = entity.current.clone();
            // The runner writes a snapshot at this point (in the background).
            let every = shared.snapshot_every;
            if every > 0 && state.version >= state.from_snapshot + every {
                state.from_snapshot = state.version;
            }
            shared.cache.put(entity.id, state);
        }
        match outcome {
            Outcome::Warehouse(warehouse) => keep(self, warehouse),
            Outcome::Item(item) => keep(self, item),
            Outcome::Allocation { allocation, item } => {
                keep(self, allocation);
                keep(self, item);
            }
        }
    }
}

pub(crate) struct Batcher {
    shared: Arc<Shared>,
    /// Commands waiting, by item; an entry exists while a task is working through it.
    queues: Mutex<HashMap<Uuid, VecDeque<Job>>>,
}

impl Batcher {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            queues: Mutex::new(HashMap::new()),
        })
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, VecDeque<Job>>> {
        match self.queues.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Queues a command on `item_id` and waits for its result.
    pub async fn submit(
        self: &Arc<Self>,
        item_id: Uuid,
        ctx: CommandContext,
        (mutation, input): (&'static str, &impl Serialize),
        needs_warehouse: bool,
        decide: Decide,
    ) -> Result<Outcome, CommandError> {
        let idempotency = match idempotency(&*self.shared.store, &ctx, mutation, input).await? {
            Idempotency::Replayed(outcome) => return Ok(*outcome),
            Idempotency::Fresh(idempotency) => idempotency,
        };
        let (reply, result) = oneshot::channel();
        let job = Job {
            ctx,
            mutation,
            idempotency,
            needs_warehouse,
            decide,
            started: Instant::now(),
            reply,
        };
        let lead = {
            let mut queues = self.queues();
            match queues.get_mut(&item_id) {
                Some(queue) => {
                    queue.push_back(job);
                    false
                }
                None => {
                    queues.insert(item_id, VecDeque::from([job]));
                    true
                }
            }
        };
        if lead {
            // A task of its own, so a client that goes away does not strand the queue.
            let batcher = self.clone();
            tokio::spawn(async move { batcher.drain(item_id).await });
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::Unavailable("the command's batch was dropped".into()).into())
        })
    }

    async fn drain(&self, item_id: Uuid) {
        loop {
            let mut jobs: Vec<Job> = {
                let mut queues = self.queues();
                let Some(queue) = queues.get_mut(&item_id) else {
                    return;
                };
                if queue.is_empty() {
                    queues.remove(&item_id);
                    return;
                }
                let take = match queue.front() {
                    Some(first) if first.idempotency.is_some() => 1,
                    _ => queue
                        .iter()
                        .take(MAX_BATCH)
                        .take_while(|job| job.idempotency.is_none())
                        .count(),
                };
                queue.drain(..take).collect()
            };
            let results = self.run(item_id, &mut jobs).await;
            for (job, result) in jobs.into_iter().zip(results) {
                record_metrics(job.mutation, job.started, &result);
                let _ = job.reply.send(result);
            }
        }
    }

    /// Decides and commits one batch; one result per job.
    async fn run(&self, item_id: Uuid, jobs: &mut [Job]) -> Vec<Result<Outcome, CommandError>> {
        let shared = &*self.shared;
        let count = jobs.len();
        // Every job gets the error with its kind kept (a throttled store stays THROTTLED).
        let fail_all = |error: CommandError| -> Vec<Result<Outcome, CommandError>> {
            (0..count)
                .map(|_| {
                    Err(match &error {
                        CommandError::Rejected(e) => CommandError::Rejected(e.clone()),
                        CommandError::Store(e) => CommandError::Store(e.clone()),
                        CommandError::Contention(n) => CommandError::Contention(*n),
                    })
                })
                .collect()
        };
        // Other commands on this item (allocation changes, idempotent retries) take this too.
        let _serialised = shared.locks.lock(item_id).await;
        let mut fresh = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let (item, remembered) = match shared.latest::<InventoryItem>(item_id, fresh).await {
                Ok(loaded) => loaded,
                Err(error) => return fail_all(error.into()),
            };
            let warehouse_id = item.state.warehouse_id;
            let warehouse = if item.state.exists && jobs.iter().any(|j| j.needs_warehouse) {
                match shared.latest::<Warehouse>(warehouse_id, fresh).await {
                    Ok((warehouse, _)) => Some(warehouse),
                    Err(error) => return fail_all(error.into()),
                }
            } else {
                None
            };
            let mut batch = ItemBatch {
                item: Change::new(item_id, item),
                warehouse,
                others: Vec::new(),
                expectations: Vec::new(),
                now: now_ms(),
            };
            let results: Vec<_> = jobs
                .iter_mut()
                .map(|job| (job.decide)(&mut batch, &job.ctx))
                .collect();
            if let Some(warehouse) = &batch.warehouse {
                // The warehouse must still be as decided on (active) when the batch lands.
                batch.expectations.push(Expectation {
                    aggregate_id: warehouse_id,
                    version: warehouse.version,
                });
            }
            let mut events = std::mem::take(&mut batch.item.events);
            if events.is_empty() && batch.others.is_empty() {
                // Nothing to commit validates the state: refusals decided on a remembered one
                // are decided again on the stored one.
                if remembered && !fresh && results.iter().any(Result::is_err) {
                    fresh = true;
                    continue;
                }
                return results;
            }
            let mut expectations = vec![batch.item.expectation()];
            expectations.append(&mut batch.expectations);
            events.append(&mut batch.others);
            let first = events
                .first()
                .map(|e| (e.aggregate_id, e.sequence_number, e.event_id));
            // Only ever a batch of one: its record, with the response a retry gets back.
            let record = match (&jobs[0].idempotency, &results[0]) {
                (Some((key, fingerprint)), Ok(outcome)) => Some(IdempotencyRecord {
                    key: key.clone(),
                    fingerprint: fingerprint.clone(),
                    response: match serde_json::to_value(outcome) {
                        Ok(response) => response,
                        Err(error) => {
                            return fail_all(StoreError::Corrupt(error.to_string()).into())
                        }
                    },
                }),
                _ => None,
            };
            let commit = Commit {
                expectations,
                events,
                guards: vec![],
                idempotency: record,
            };
            let mut appended = shared.store.append(commit).await;
            if matches!(appended, Err(StoreError::Conflict { .. })) {
                // A retried request may have met this very commit, landed.
                match landed(&*shared.store, first).await {
                    Ok(true) => appended = Ok(()),
                    Ok(false) => {}
                    Err(error) => return fail_all(error),
                }
            }
            match appended {
                Ok(()) => {
                    let item = Outcome::Item(batch.item.entity());
                    shared.remember(&item);
                    save_snapshots(&shared.store, shared.snapshot_every, &item);
                    for outcome in results.iter().flatten() {
                        if let Outcome::Allocation { allocation, .. } = outcome {
                            shared.cache.put(allocation.id, allocation.current.clone());
                        }
                    }
                    return results;
                }
                Err(StoreError::IdempotencyKeyUsed { key }) => {
                    // The same request raced itself through another process: its first result.
                    let fingerprint = jobs[0].idempotency.as_ref().map_or("", |(_, f)| f.as_str());
                    return match replay(&*shared.store, &key, fingerprint).await {
                        Ok(Some(outcome)) => vec![Ok(outcome)],
                        Ok(None) => fail_all(
                            StoreError::Corrupt(format!("idempotency record {key} vanished"))
                                .into(),
                        ),
                        Err(error) => vec![Err(error)],
                    };
                }
                Err(StoreError::Conflict { aggregate_id }) => {
                    tracing::debug!(%aggregate_id, attempt, "batch lost a race; reloading");
                    metrics::counter!(crate::metrics::CONFLICTS).increment(1);
                    fresh = true;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(error) => return fail_all(error.into()),
            }
        }
        (0..count)
            .map(|_| Err(CommandError::Contention(MAX_ATTEMPTS)))
            .collect()
    }
}
