//! A draft commit: the aggregates a batch of commands reads and changes, of any type, staged
//! with the version each was loaded at. Deciders read states from it and record events into
//! it; the pipeline turns it into one conditional commit. Adding an aggregate type needs
//! nothing here: a staged aggregate is type-erased behind `Staged`.

use futures::future::BoxFuture;
use std::any::Any;
use std::collections::HashMap;
use uuid::Uuid;

use super::outcome::{CommandContext, CommandError, Entity};
use super::pipeline::Shared;
use crate::domain::{Aggregate, DomainError, Versioned};
use crate::store::{EventEnvelope, Expectation, Guard, Metadata, Snapshot, StoreError};

/// An aggregate being changed: its loaded version and the new events.
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

    pub fn entity(&self) -> Entity<A> {
        Entity {
            id: self.id,
            current: self.current.clone(),
        }
    }
}

/// A staged aggregate of some type, as the pipeline sees it.
pub(crate) trait Staged: Send {
    fn as_any(&self) -> &dyn Any;
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn take_events(&mut self) -> Vec<EventEnvelope>;
    fn has_events(&self) -> bool;
    /// Its stream must still be at the loaded version when the commit lands.
    fn expectation(&self) -> Expectation;
    /// Whether the commit must hold it to its loaded version even if it did not change.
    fn pinned(&self, refusals: bool) -> bool;
    /// After the commit landed: remember the state and snapshot it when it is due.
    fn keep(&self, shared: &Shared);
}

struct Slot<A: Aggregate> {
    change: Change<A>,
    /// Served from the state cache (a hint: the commit must prove it current).
    remembered: bool,
    /// Consulted by a decision (a warehouse that must stay active).
    consulted: bool,
    /// Events already moved to the commit, for `keep`'s snapshot arithmetic.
    changed: bool,
}

impl<A: Aggregate> Staged for Slot<A> {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn take_events(&mut self) -> Vec<EventEnvelope> {
        self.changed |= !self.change.events.is_empty();
        std::mem::take(&mut self.change.events)
    }
    fn has_events(&self) -> bool {
        !self.change.events.is_empty()
    }
    fn expectation(&self) -> Expectation {
        Expectation {
            aggregate_id: self.change.id,
            version: self.change.loaded_version,
        }
    }
    fn pinned(&self, refusals: bool) -> bool {
        self.consulted || (refusals && self.remembered)
    }
    fn keep(&self, shared: &Shared) {
        let mut state = self.change.current.clone();
        let every = shared.snapshot_every;
        if self.changed && every > 0 && state.version >= state.from_snapshot + every {
            let snapshot = serde_json::to_value(&state).ok().map(|value| Snapshot {
                aggregate_id: self.change.id,
                aggregate_type: A::TYPE,
                version: state.version,
                state_version: A::STATE_VERSION,
                state: value,
            });
            if let Some(snapshot) = snapshot {
                // In the background: a command never waits for it, and a lost snapshot only
                // means a longer load next time.
                let store = shared.store.clone();
                tokio::spawn(async move {
                    let id = snapshot.aggregate_id;
                    if let Err(error) = store.save_snapshot(snapshot).await {
                        tracing::warn!(%id, error = %crate::error::Report(&error), "snapshot not saved");
                    }
                });
            }
            state.from_snapshot = state.version;
        }
        shared.cache.put(self.change.id, state);
    }
}

/// An aggregate a command needs loaded before it decides.
pub(crate) struct Need {
    target: Target,
    load: for<'a> fn(&'a Shared, Uuid, bool) -> BoxFuture<'a, Loaded>,
}

enum Target {
    Known(Uuid),
    /// Named by the state of an aggregate loaded first (an item's warehouse); none if absent.
    Via(Pick),
}

/// Reads an aggregate's id from the draft loaded so far.
type Pick = Box<dyn Fn(&Draft) -> Option<Uuid> + Send + Sync>;

type Loaded = Result<(Box<dyn Staged>, bool), StoreError>;

fn load<A: Aggregate>(shared: &Shared, id: Uuid, fresh: bool) -> BoxFuture<'_, Loaded> {
    Box::pin(async move {
        let (state, remembered) = shared.latest::<A>(id, fresh).await?;
        let slot = Slot {
            change: Change::new(id, state),
            remembered,
            consulted: false,
            changed: false,
        };
        Ok((Box::new(slot) as Box<dyn Staged>, remembered))
    })
}

impl Need {
    pub fn of<A: Aggregate>(id: Uuid) -> Self {
        Self {
            target: Target::Known(id),
            load: load::<A>,
        }
    }

    /// The aggregate `pick` names in the state of `from` (of type `F`), loaded after it.
    pub fn via<F: Aggregate, A: Aggregate>(from: Uuid, pick: fn(&F) -> Option<Uuid>) -> Self {
        let target = Target::Via(Box::new(move |draft: &Draft| {
            draft.state::<F>(from).ok().and_then(|f| pick(&f.state))
        }));
        Self {
            target,
            load: load::<A>,
        }
    }
}

pub(crate) struct Draft {
    /// The timestamp of every event of this commit.
    pub now: i64,
    /// In the order first staged: the commit's events follow it.
    staged: Vec<(Uuid, Box<dyn Staged>)>,
    index: HashMap<Uuid, usize>,
    /// Unique keys to claim, each with the error to report if it is taken, by job.
    guards: Vec<(Guard, DomainError, usize)>,
    /// Whether any state came from the cache.
    remembered: bool,
    /// The job deciding now (guards are charged to it).
    job: usize,
    /// Whether a job that succeeded refused part of its work (`refused_some`).
    refusals: bool,
}

/// The parts of a commit a draft adds up to.
pub(crate) struct Parts {
    pub expectations: Vec<Expectation>,
    pub events: Vec<EventEnvelope>,
    pub guards: Vec<(Guard, DomainError, usize)>,
}

impl Draft {
    /// Loads every needed aggregate once (the remembered state unless `fresh`), concurrently:
    /// those named outright first, then those named by their states.
    pub async fn load<'n>(
        shared: &Shared,
        needs: impl Iterator<Item = &'n Need> + Clone,
        fresh: bool,
        now: i64,
    ) -> Result<Self, StoreError> {
        let mut draft = Self {
            now,
            staged: Vec::new(),
            index: HashMap::new(),
            guards: Vec::new(),
            remembered: false,
            job: 0,
            refusals: false,
        };
        for round in [true, false] {
            let mut wanted: Vec<(Uuid, &Need)> = Vec::new();
            for need in needs.clone() {
                let id = match (&need.target, round) {
                    (Target::Known(id), true) => Some(*id),
                    (Target::Via(pick), false) => pick(&draft),
                    _ => None,
                };
                if let Some(id) = id {
                    if !draft.index.contains_key(&id) && !wanted.iter().any(|(w, _)| *w == id) {
                        wanted.push((id, need));
                    }
                }
            }
            let loaded = futures::future::try_join_all(
                wanted
                    .iter()
                    .map(|(id, need)| (need.load)(shared, *id, fresh)),
            )
            .await?;
            for ((id, _), (slot, remembered)) in wanted.iter().zip(loaded) {
                draft.remembered |= remembered;
                draft.insert(*id, slot);
            }
        }
        Ok(draft)
    }

    fn insert(&mut self, id: Uuid, slot: Box<dyn Staged>) {
        self.index.insert(id, self.staged.len());
        self.staged.push((id, slot));
    }

    pub(super) fn start_job(&mut self, job: usize) {
        self.job = job;
    }

    pub fn remembered(&self) -> bool {
        self.remembered
    }

    fn slot<A: Aggregate>(&mut self, id: Uuid) -> Result<&mut Slot<A>, CommandError> {
        let slot = self
            .index
            .get(&id)
            .and_then(|&n| self.staged[n].1.as_any_mut().downcast_mut::<Slot<A>>());
        slot.ok_or_else(|| not_loaded::<A>(id))
    }

    /// The state of `id` as the batch has left it so far.
    pub fn state<A: Aggregate>(&self, id: Uuid) -> Result<&Versioned<A>, CommandError> {
        self.index
            .get(&id)
            .and_then(|&n| self.staged[n].1.as_any().downcast_ref::<Slot<A>>())
            .map(|slot| &slot.change.current)
            .ok_or_else(|| not_loaded::<A>(id))
    }

    /// The state of `id` if it was loaded (an aggregate named by another's state may not be).
    pub fn loaded<A: Aggregate>(&self, id: Uuid) -> Option<&Versioned<A>> {
        self.state::<A>(id).ok()
    }

    /// Stages a new aggregate (nothing to load: its stream must still be empty at commit).
    pub fn create<A: Aggregate>(&mut self, id: Uuid) {
        if !self.index.contains_key(&id) {
            let slot = Slot::<A> {
                change: Change::new(id, Versioned::default()),
                remembered: false,
                consulted: false,
                changed: false,
            };
            self.insert(id, Box::new(slot));
        }
    }

    /// Records decided events on `id` and returns its entity as they leave it.
    pub fn record<A: Aggregate>(
        &mut self,
        id: Uuid,
        events: Vec<A::Event>,
        ctx: &CommandContext,
    ) -> Result<Entity<A>, CommandError> {
        let now = self.now;
        let slot = self.slot::<A>(id)?;
        slot.change.record(events, ctx, now);
        Ok(slot.change.entity())
    }

    /// The commit must find `id` at the version it was read at: a decision depended on it.
    pub fn consult<A: Aggregate>(&mut self, id: Uuid) -> Result<(), CommandError> {
        self.slot::<A>(id)?.consulted = true;
        Ok(())
    }

    /// A unique key the commit claims for `owner`; `error` is the answer if another commit
    /// holds it.
    pub fn guard(&mut self, key: String, owner: Uuid, error: DomainError) {
        self.guards.push((Guard { key, owner }, error, self.job));
    }

    /// The owner of `key` if an earlier job of this batch claims it (two transfers creating
    /// the same destination item: the second finds the first's).
    pub fn claimed(&self, key: &str) -> Option<Uuid> {
        self.guards
            .iter()
            .find(|(guard, _, _)| guard.key == key)
            .map(|(guard, _, _)| guard.owner)
    }

    /// A job's success includes refusals (a bulk's refused rows): like a refused job's, they
    /// are decided again on the stored state if decided on a remembered one, and the commit
    /// holds every remembered aggregate to its version.
    pub fn refused_some(&mut self) {
        self.refusals = true;
    }

    pub fn refusals(&self) -> bool {
        self.refusals
    }

    pub fn is_unchanged(&self) -> bool {
        !self.staged.iter().any(|(_, slot)| slot.has_events())
    }

    /// The commit's expectations and events: every changed or consulted aggregate is held to
    /// its loaded version, and so is every remembered one when `refusals` were decided on it
    /// (the commit landing is what proves such a refusal right).
    pub fn parts(&mut self, refusals: bool) -> Parts {
        let mut expectations = Vec::new();
        let mut events = Vec::new();
        for (_, slot) in &mut self.staged {
            if slot.has_events() || slot.pinned(refusals) {
                expectations.push(slot.expectation());
            }
            events.append(&mut slot.take_events());
        }
        Parts {
            expectations,
            events,
            guards: std::mem::take(&mut self.guards),
        }
    }

    /// After the commit landed: every state it read or wrote is remembered.
    pub fn keep(&self, shared: &Shared) {
        for (_, slot) in &self.staged {
            slot.keep(shared);
        }
    }
}

/// A command reads only what it declared: anything else is a bug in its wiring.
fn not_loaded<A: Aggregate>(id: Uuid) -> CommandError {
    StoreError::corrupt(format!("{id} was not loaded as {:?}", A::TYPE)).into()
}
