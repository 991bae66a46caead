//! The command loop shared by every command: idempotency lookup, decide, append with
//! expectations, retry a lost race from a fresh load, and map store answers to outcomes.

use serde::{Deserialize, Serialize};
use std::future::Future;
use std::time::Duration;
use thiserror::Error;
use uuid::Uuid;

use crate::domain::allocation::Allocation;
use crate::domain::item::InventoryItem;
use crate::domain::warehouse::Warehouse;
use crate::domain::{validate, Aggregate, DomainError, Versioned};
use crate::store::{
    Commit, EventEnvelope, EventStore, Expectation, IdempotencyRecord, Metadata, Snapshot,
    StoreError,
};
use std::sync::Arc;

/// Who asks, and how to trace it: becomes every event's metadata.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub actor: String,
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
    pub source: String,
}

/// An aggregate's id and state right after a command's commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity<A> {
    pub id: Uuid,
    pub current: Versioned<A>,
}

/// What a successful command returns; also what an idempotency record keeps, so a retried
/// request returns exactly the first result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Warehouse(Entity<Warehouse>),
    Item(Entity<InventoryItem>),
    Allocation {
        allocation: Entity<Allocation>,
        item: Entity<InventoryItem>,
    },
}

#[derive(Debug, Error)]
pub enum CommandError {
    /// A business rule said no; nothing was written.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// The store failed; nothing is known to be written (a retry with the same idempotency key
    /// is safe).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Lost the race for the same aggregate too many times in a row.
    #[error("the aggregate is too busy: gave up after {0} conflicting attempts")]
    Contention(u32),
}

/// What one attempt decided: the commit's parts and the outcome if it lands.
pub(crate) struct Plan {
    pub expectations: Vec<Expectation>,
    pub events: Vec<EventEnvelope>,
    /// Unique keys to claim, each with the error to report if it is already taken.
    pub guards: Vec<(String, DomainError)>,
    pub outcome: Outcome,
}

/// An aggregate being changed by one attempt: its loaded version and the new events.
pub(crate) struct Change<A: Aggregate> {
    pub id: Uuid,
    pub loaded_version: u64,
    pub current: Versioned<A>,
    pub events: Vec<EventEnvelope>,
}

impl<A: Aggregate> Change<A> {
    pub fn new(id: Uuid, loaded: Versioned<A>) -> Self {
        Self {
            id,
            loaded_version: loaded.version,
            current: loaded,
            events: Vec::new(),
        }
    }

    /// Wraps the decided events in envelopes and folds them into the current state.
    pub fn record(&mut self, events: Vec<A::Event>, ctx: &CommandContext, now: i64) {
        for event in events {
            let sequence_number = self.current.version + 1;
            let metadata = Metadata {
                actor: ctx.actor.clone(),
                correlation_id: ctx.correlation_id.clone(),
                causation_id: None,
                idempotency_key: ctx.idempotency_key.clone(),
                source: ctx.source.clone(),
            };
            self.events.push(EventEnvelope::new(
                Uuid::now_v7(),
                A::TYPE,
                self.id,
                sequence_number,
                &event,
                metadata,
                now,
            ));
            self.current.apply(&event, sequence_number, now);
        }
    }

    pub fn expectation(&self) -> Expectation {
        Expectation {
            aggregate_id: self.id,
            version: self.loaded_version,
        }
    }

    pub fn entity(&self) -> Entity<A> {
        Entity {
            id: self.id,
            current: self.current.clone(),
        }
    }

    /// A plan committing just this change, on condition that its stream has not moved since
    /// it was loaded; `outcome` wraps the resulting entity.
    pub fn into_plan(self, outcome: impl FnOnce(Entity<A>) -> Outcome) -> Plan {
        Plan {
            expectations: vec![self.expectation()],
            guards: vec![],
            outcome: outcome(self.entity()),
            events: self.events,
        }
    }
}

/// Most attempts per command. Commands on one aggregate are serialised in-process first, so
/// conflicts come only from other processes; this bounds the worst case under such contention.
pub(crate) const MAX_ATTEMPTS: u32 = 20;
const IDEMPOTENCY_KEY_MAX: usize = 200;

/// What an idempotency key says about a command before it runs.
pub(crate) enum Idempotency {
    /// The key was used with this input before: its first result.
    Replayed(Box<Outcome>),
    /// Run it; the scoped key and the input's fingerprint, if a key was given.
    Fresh(Option<(String, String)>),
}

pub(crate) async fn idempotency(
    store: &dyn EventStore,
    ctx: &CommandContext,
    mutation: &str,
    input: &impl Serialize,
) -> Result<Idempotency, CommandError> {
    let Some(key) = &ctx.idempotency_key else {
        return Ok(Idempotency::Fresh(None));
    };
    let key = validate::required_text("idempotencyKey", key, IDEMPOTENCY_KEY_MAX)?;
    let fingerprint =
        serde_json::to_string(input).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let scoped = format!("{mutation}:{key}");
    Ok(match replay(store, &scoped, &fingerprint).await? {
        Some(outcome) => Idempotency::Replayed(Box::new(outcome)),
        None => Idempotency::Fresh(Some((scoped, fingerprint))),
    })
}

pub(crate) fn record_metrics(
    mutation: &str,
    started: std::time::Instant,
    result: &Result<Outcome, CommandError>,
) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(CommandError::Rejected(_)) => "rejected",
        Err(_) => "failed",
    };
    metrics::counter!(crate::metrics::COMMANDS, "mutation" => mutation.to_owned(), "outcome" => outcome).increment(1);
    metrics::histogram!(crate::metrics::COMMAND_SECONDS, "mutation" => mutation.to_owned())
        .record(started.elapsed().as_secs_f64());
}

/// Runs `attempt` until its commit lands, a rule rejects it, or contention wins.
pub(crate) async fn run<F, Fut>(
    store: &Arc<dyn EventStore>,
    snapshot_every: u64,
    ctx: &CommandContext,
    mutation: &str,
    input: &impl Serialize,
    mut attempt: F,
) -> Result<Outcome, CommandError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, CommandError>>,
{
    let idempotency = match idempotency(&**store, ctx, mutation, input).await? {
        Idempotency::Replayed(outcome) => return Ok(*outcome),
        Idempotency::Fresh(idempotency) => idempotency,
    };
    let started = std::time::Instant::now();
    let result = attempts(&**store, idempotency, &mut attempt).await;
    if let Ok(outcome) = &result {
        save_snapshots(store, snapshot_every, outcome);
    }
    record_metrics(mutation, started, &result);
    result
}

async fn attempts<F, Fut>(
    store: &dyn EventStore,
    idempotency: Option<(String, String)>,
    attempt: &mut F,
) -> Result<Outcome, CommandError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Plan, CommandError>>,
{
    for attempt_number in 1..=MAX_ATTEMPTS {
        let plan = attempt().await?;
        if plan.events.is_empty() {
            // Nothing changed (e.g. an update to the same values): nothing to commit.
            return Ok(plan.outcome);
        }
        let record = match &idempotency {
            None => None,
            Some((key, fingerprint)) => Some(IdempotencyRecord {
                key: key.clone(),
                fingerprint: fingerprint.clone(),
                response: serde_json::to_value(&plan.outcome)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            }),
        };
        let guards = plan.guards.iter().map(|(key, _)| key.clone()).collect();
        let guard_errors = plan.guards;
        let first = plan
            .events
            .first()
            .map(|e| (e.aggregate_id, e.sequence_number, e.event_id));
        let commit = Commit {
            expectations: plan.expectations,
            events: plan.events,
            guards,
            idempotency: record,
        };
        let result = store.append(commit).await;
        if matches!(
            result,
            Err(StoreError::Conflict { .. } | StoreError::GuardTaken { .. })
        ) && landed(store, first).await?
        {
            // A retried request (by the SDK after a timeout) met this very commit, which had
            // landed: it is a success, not a conflict.
            return Ok(plan.outcome);
        }
        match result {
            Ok(()) => return Ok(plan.outcome),
            Err(StoreError::Conflict { aggregate_id }) => {
                tracing::debug!(%aggregate_id, attempt_number, "lost a race; reloading");
                metrics::counter!(crate::metrics::CONFLICTS).increment(1);
                tokio::time::sleep(backoff(attempt_number)).await;
            }
            Err(StoreError::GuardTaken { key }) => {
                let error = guard_errors
                    .into_iter()
                    .find(|(guard, _)| *guard == key)
                    .map(|(_, error)| error)
                    .unwrap_or_else(|| DomainError::invalid("input", format!("{key} is taken")));
                return Err(CommandError::Rejected(error));
            }
            Err(StoreError::IdempotencyKeyUsed { key }) => {
                let fingerprint = idempotency.as_ref().map_or("", |(_, f)| f.as_str());
                return match replay(store, &key, fingerprint).await? {
                    Some(outcome) => Ok(outcome),
                    None => Err(
                        StoreError::Corrupt(format!("idempotency record {key} vanished")).into(),
                    ),
                };
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(CommandError::Contention(MAX_ATTEMPTS))
}

/// Whether the commit whose first event is `first` is in the store after all: a request that
/// timed out may have committed, and its retry then fails on the commit's own conditions.
pub(crate) async fn landed(
    store: &dyn EventStore,
    first: Option<(Uuid, u64, Uuid)>,
) -> Result<bool, CommandError> {
    let Some((aggregate_id, sequence, event_id)) = first else {
        return Ok(false);
    };
    let stored = store
        .load(aggregate_id, sequence - 1, Some(sequence))
        .await?;
    Ok(stored.iter().any(|e| e.event_id == event_id))
}

/// Snapshots every aggregate of the outcome that is `every` or more events past its last
/// snapshot, in the background: a command never waits for it, and a lost snapshot only means
/// a longer load next time.
pub(crate) fn save_snapshots(store: &Arc<dyn EventStore>, every: u64, outcome: &Outcome) {
    fn candidate<A: Aggregate>(entity: &Entity<A>, every: u64) -> Option<Snapshot> {
        let current = &entity.current;
        if every == 0 || current.version < current.from_snapshot + every {
            return None;
        }
        Some(Snapshot {
            aggregate_id: entity.id,
            aggregate_type: A::TYPE,
            version: current.version,
            state_version: A::STATE_VERSION,
            state: serde_json::to_value(current).ok()?,
        })
    }
    let snapshots: Vec<Snapshot> = match outcome {
        Outcome::Warehouse(w) => candidate(w, every).into_iter().collect(),
        Outcome::Item(i) => candidate(i, every).into_iter().collect(),
        Outcome::Allocation { allocation, item } => candidate(allocation, every)
            .into_iter()
            .chain(candidate(item, every))
            .collect(),
    };
    for snapshot in snapshots {
        let store = store.clone();
        tokio::spawn(async move {
            let id = snapshot.aggregate_id;
            if let Err(error) = store.save_snapshot(snapshot).await {
                tracing::warn!(%id, %error, "snapshot not saved");
            }
        });
    }
}

/// The first result recorded under `key`, if the same input was sent with it.
pub(crate) async fn replay(
    store: &dyn EventStore,
    key: &str,
    fingerprint: &str,
) -> Result<Option<Outcome>, CommandError> {
    let Some(record) = store.idempotency(key).await? else {
        return Ok(None);
    };
    if record.fingerprint != fingerprint {
        return Err(DomainError::invalid(
            "idempotencyKey",
            "this idempotency key was already used with a different input",
        )
        .into());
    }
    let outcome = serde_json::from_value(record.response)
        .map_err(|e| StoreError::Corrupt(format!("idempotency record {key}: {e}")))?;
    Ok(Some(outcome))
}

/// A short, growing, jittered pause so racing writers from several processes spread out.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let jitter = Uuid::new_v4().as_u128() as u64 % 1_000;
    Duration::from_micros(u64::from(attempt.min(10)) * 1_000 + jitter)
}
