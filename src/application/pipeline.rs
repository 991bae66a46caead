//! The one path every command takes. A command is a job on its aggregate's queue (an item's
//! for stock and allocation commands, a warehouse's, a new aggregate's own); one task per
//! queue decides the waiting jobs one after another on the same draft (each sees the ones
//! before it, as if they had run in turn) and commits all their events in one conditional
//! write. A lost race re-decides the whole batch on the stored states; replies go out only
//! once the commit has landed, refusals included, since a refusal is only right if the state
//! it was decided on was. A job with an idempotency key runs in a batch of its own, so that its
//! record commits with exactly its events.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::cache::StateCache;
use super::draft::{Draft, Need, Parts};
use super::idempotency::{self, Claim};
use super::outcome::{CommandContext, CommandError, Outcome};
use super::{load_latest, now_ms};
use crate::domain::{Aggregate, DomainError, Versioned};
use crate::store::{Commit, EventStore, StoreError};

/// Most attempts per batch. Commands on one aggregate are serialised in-process first, so
/// conflicts come only from other processes; this bounds the worst case under such contention.
pub(crate) const MAX_ATTEMPTS: u32 = 20;

/// Most commands per batch: at most 4 events and an idempotency record each, one outbox row
/// for the whole commit and a condition on the warehouse keep a batch within DynamoDB's 100
/// items per transaction (12 × 5 + 2 = 62). A bulk adjustment, which may fill a transaction by
/// itself, waits on a queue of its own and so is always a batch of one (`bulk.rs`).
const MAX_BATCH: usize = 12;

/// Decides one command on the draft so far: records its events, or changes nothing and says
/// why. Runs again if the batch has to be decided again.
pub(crate) type Decide =
    Box<dyn FnMut(&mut Draft, &CommandContext) -> Result<Outcome, CommandError> + Send + Sync>;

/// A command as the pipeline runs it.
pub(crate) struct Request {
    /// The queue it waits on: the aggregate whose commands must not race each other here.
    pub queue: Uuid,
    /// The GraphQL mutation's name: scopes the idempotency key, labels the metrics.
    pub mutation: &'static str,
    /// The command's input, serialised: what a reused idempotency key must match.
    pub fingerprint: String,
    /// Which commit of a command that takes several (a bulk adjustment), each with a record
    /// of its own under the one idempotency key; `None` for a command of one commit.
    pub part: Option<usize>,
    /// The aggregates to load before deciding.
    pub needs: Vec<Need>,
    pub decide: Decide,
}

struct Job {
    ctx: CommandContext,
    mutation: &'static str,
    claim: Option<Claim>,
    needs: Vec<Need>,
    decide: Decide,
    started: Instant,
    reply: oneshot::Sender<Result<Outcome, CommandError>>,
}

/// What the pipeline shares with the rest of command handling.
pub(crate) struct Shared {
    pub store: Arc<dyn EventStore>,
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
        let state = load_latest::<A>(&*self.store, id, self.snapshot_every > 0).await?;
        Ok((state, false))
    }
}

pub(crate) struct Pipeline {
    shared: Arc<Shared>,
    /// Jobs waiting, by queue; an entry exists while a task is working through it.
    queues: Mutex<HashMap<Uuid, VecDeque<Job>>>,
}

type Results = Vec<Result<Outcome, CommandError>>;

impl Pipeline {
    pub fn new(shared: Arc<Shared>) -> Arc<Self> {
        Arc::new(Self {
            shared,
            queues: Mutex::new(HashMap::new()),
        })
    }

    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, VecDeque<Job>>> {
        crate::sync::lock(&self.queues)
    }

    /// Runs a command: its first result if its idempotency key was used with the same input,
    /// else queued on its aggregate and decided in the next batch.
    pub async fn submit(
        self: &Arc<Self>,
        ctx: CommandContext,
        request: Request,
    ) -> Result<Outcome, CommandError> {
        let store = &*self.shared.store;
        let check = Claim::check(
            store,
            &ctx,
            request.mutation,
            request.part,
            request.fingerprint,
        );
        let claim = match check.await? {
            idempotency::Check::Replayed(outcome) => return Ok(*outcome),
            idempotency::Check::Fresh(claim) => claim,
        };
        let (reply, result) = oneshot::channel();
        let job = Job {
            ctx,
            mutation: request.mutation,
            claim,
            needs: request.needs,
            decide: request.decide,
            started: Instant::now(),
            reply,
        };
        let queue = request.queue;
        let lead = {
            let mut queues = self.queues();
            match queues.get_mut(&queue) {
                Some(waiting) => {
                    waiting.push_back(job);
                    false
                }
                None => {
                    queues.insert(queue, VecDeque::from([job]));
                    true
                }
            }
        };
        if lead {
            // A task of its own, so a client that goes away does not strand the queue.
            let pipeline = self.clone();
            tokio::spawn(async move { pipeline.drain(queue).await });
        }
        result.await.unwrap_or_else(|_| {
            Err(StoreError::unavailable("the command's batch was dropped").into())
        })
    }

    async fn drain(&self, queue: Uuid) {
        loop {
            let mut jobs: Vec<Job> = {
                let mut queues = self.queues();
                let Some(waiting) = queues.get_mut(&queue) else {
                    return;
                };
                if waiting.is_empty() {
                    queues.remove(&queue);
                    return;
                }
                let take = match waiting.front() {
                    Some(first) if first.claim.is_some() => 1,
                    _ => waiting
                        .iter()
                        .take(MAX_BATCH)
                        .take_while(|job| job.claim.is_none())
                        .count(),
                };
                waiting.drain(..take).collect()
            };
            let results = self.run(&mut jobs).await;
            for (job, result) in jobs.into_iter().zip(results) {
                record_metrics(job.mutation, job.started, &result);
                let _ = job.reply.send(result);
            }
        }
    }

    /// Decides and commits one batch, retrying lost races; one result per job.
    async fn run(&self, jobs: &mut [Job]) -> Results {
        let shared = &*self.shared;
        // Jobs whose answer is settled before the batch lands (a unique key another commit
        // holds); the others are decided again without them.
        let mut settled: Vec<Option<Result<Outcome, CommandError>>> =
            jobs.iter().map(|_| None).collect();
        let mut fresh = false;
        for attempt in 1..=MAX_ATTEMPTS {
            let needs = jobs
                .iter()
                .zip(&settled)
                .filter(|(_, done)| done.is_none())
                .flat_map(|(job, _)| &job.needs);
            let mut draft = match Draft::load(shared, needs, fresh, now_ms()).await {
                Ok(draft) => draft,
                Err(error) => return fail_all(jobs.len(), error.into()),
            };
            let mut decided: Vec<Option<Result<Outcome, CommandError>>> = Vec::new();
            for (n, job) in jobs.iter_mut().enumerate() {
                decided.push(match settled[n] {
                    Some(_) => None,
                    None => {
                        draft.start_job(n);
                        Some((job.decide)(&mut draft, &job.ctx))
                    }
                });
            }
            // A job that succeeded in part (a bulk's refused rows) stands on refusals too.
            let refusals = decided.iter().flatten().any(Result::is_err) || draft.refusals();
            if draft.is_unchanged() {
                // Nothing to commit validates the state: refusals decided on a remembered one
                // are decided again on the stored one.
                if refusals && draft.remembered() && !fresh {
                    fresh = true;
                    continue;
                }
                return merge(settled, decided);
            }
            let Parts {
                expectations,
                events,
                guards,
            } = draft.parts(refusals);
            let first = events
                .first()
                .map(|e| (e.aggregate_id, e.sequence_number, e.event_id));
            // A claim means a batch of one: its record, with the response a retry gets back.
            let record = match (&jobs[0].claim, decided.first()) {
                (Some(claim), Some(Some(Ok(outcome)))) => match claim.record(outcome) {
                    Ok(record) => Some(record),
                    Err(error) => return fail_all(jobs.len(), error.into()),
                },
                _ => None,
            };
            let commit = Commit {
                expectations,
                events,
                guards: guards.iter().map(|(guard, _, _)| guard.clone()).collect(),
                idempotency: record,
            };
            match append(&*shared.store, commit, first).await {
                Ok(()) => {
                    draft.keep(shared);
                    return merge(settled, decided);
                }
                Err(StoreError::Conflict { aggregate_id }) => {
                    tracing::debug!(%aggregate_id, attempt, "batch lost a race; reloading");
                    metrics::counter!(crate::metrics::CONFLICTS).increment(1);
                    fresh = true;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                Err(StoreError::GuardTaken { key }) => {
                    // The job that claimed the key is refused; the rest are decided again.
                    let (error, job) = guards
                        .into_iter()
                        .find(|(guard, _, _)| guard.key == key)
                        .map(|(_, error, job)| (error, job))
                        .unwrap_or_else(|| {
                            (DomainError::invalid("input", format!("{key} is taken")), 0)
                        });
                    settled[job] = Some(Err(CommandError::Rejected(error)));
                    if settled.iter().all(Option::is_some) {
                        return settled.into_iter().flatten().collect();
                    }
                }
                Err(StoreError::IdempotencyKeyUsed { key }) => {
                    // The same request raced itself through another process: its first result.
                    let result = match &jobs[0].claim {
                        Some(claim) => claim.replay(&*shared.store).await,
                        None => Err(StoreError::corrupt(format!(
                            "idempotency key {key} in a commit without one"
                        ))
                        .into()),
                    };
                    return vec![result];
                }
                Err(error) => return fail_all(jobs.len(), error.into()),
            }
        }
        fail_all(jobs.len(), CommandError::Contention(MAX_ATTEMPTS))
    }
}

/// Every job gets the error, with its kind kept (a throttled store stays THROTTLED).
fn fail_all(count: usize, error: CommandError) -> Results {
    vec![Err(error); count]
}

fn merge(
    settled: Vec<Option<Result<Outcome, CommandError>>>,
    decided: Vec<Option<Result<Outcome, CommandError>>>,
) -> Results {
    settled
        .into_iter()
        .zip(decided)
        .map(|(settled, decided)| {
            settled.or(decided).unwrap_or_else(|| {
                Err(StoreError::corrupt("a job was neither settled nor decided").into())
            })
        })
        .collect()
}

/// Appends `commit`; a conflict or taken key met by a commit that had in fact landed (the
/// SDK retried a request whose reply was lost) is the success it is, not a race to retry on
/// top of itself.
async fn append(
    store: &dyn EventStore,
    commit: Commit,
    first: Option<(Uuid, u64, Uuid)>,
) -> Result<(), StoreError> {
    let result = store.append(commit).await;
    if matches!(
        result,
        Err(StoreError::Conflict { .. } | StoreError::GuardTaken { .. })
    ) && landed(store, first).await?
    {
        return Ok(());
    }
    result
}

/// Whether the commit whose first event is `first` is in the store after all.
async fn landed(
    store: &dyn EventStore,
    first: Option<(Uuid, u64, Uuid)>,
) -> Result<bool, StoreError> {
    let Some((aggregate_id, sequence, event_id)) = first else {
        return Ok(false);
    };
    let stored = store
        .load(aggregate_id, sequence - 1, Some(sequence))
        .await?;
    Ok(stored.iter().any(|e| e.event_id == event_id))
}

fn record_metrics(mutation: &str, started: Instant, result: &Result<Outcome, CommandError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(CommandError::Denied(_)) => "denied",
        Err(_) => "failed",
    };
    metrics::counter!(crate::metrics::COMMANDS, "mutation" => mutation.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::COMMAND_SECONDS, "mutation" => mutation.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// A short, growing, jittered pause so racing writers from several processes spread out.
fn backoff(attempt: u32) -> Duration {
    let jitter = Uuid::new_v4().as_u128() as u64 % 1_000;
    Duration::from_micros(u64::from(attempt.min(10)) * 1_000 + jitter)
}
