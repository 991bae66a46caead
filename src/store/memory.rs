//! An event store held in memory, for unit tests of the layers above the port: it keeps the
//! same contract as the real adapters (tests/contract_store.rs runs it too) without any I/O,
//! and keeps API keys as the real stores do (tests/api_keys.rs).
//! `Faulty` wraps any store to inject the failures a real one has (lost replies, throttling).

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::auth::keys::{ApiKey, KeyError, KeyStore};

use super::{
    AllEventsPage, Commit, EventEnvelope, EventStore, IdempotencyRecord, OutboxEntry, Snapshot,
    StoreError,
};

#[derive(Default)]
pub struct MemoryEventStore {
    inner: Mutex<Inner>,
    committed: Notify,
    /// A transaction limit like DynamoDB's, for tests of what plans by one.
    max_items: Option<usize>,
}

#[derive(Default)]
struct Inner {
    streams: HashMap<Uuid, Vec<EventEnvelope>>,
    /// Every event in commit order (the `read_all` order).
    log: Vec<EventEnvelope>,
    guards: HashMap<String, Uuid>,
    idempotency: HashMap<String, IdempotencyRecord>,
    outbox: BTreeMap<u64, EventEnvelope>,
    next_outbox: u64,
    snapshots: HashMap<Uuid, Snapshot>,
    /// API keys by name.
    keys: BTreeMap<String, ApiKey>,
}

impl MemoryEventStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that refuses commits of more than `items` items, as DynamoDB refuses
    /// transactions of more than 100.
    pub fn with_max_commit_items(items: usize) -> Self {
        Self {
            max_items: Some(items),
            ..Self::default()
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }
}

impl Inner {
    fn version(&self, id: Uuid) -> u64 {
        self.streams
            .get(&id)
            .and_then(|s| s.last())
            .map_or(0, |e| e.sequence_number)
    }

    /// Checks every condition of `commit` before changing anything: all or nothing.
    fn check(&self, commit: &Commit) -> Result<(), StoreError> {
        for expectation in &commit.expectations {
            if self.version(expectation.aggregate_id) != expectation.version {
                return Err(StoreError::Conflict {
                    aggregate_id: expectation.aggregate_id,
                });
            }
        }
        if let Some(record) = &commit.idempotency {
            if self.idempotency.contains_key(&record.key) {
                return Err(StoreError::IdempotencyKeyUsed {
                    key: record.key.clone(),
                });
            }
        }
        if let Some(key) = commit
            .guards
            .iter()
            .map(|g| &g.key)
            .find(|k| self.guards.contains_key(*k))
        {
            return Err(StoreError::GuardTaken { key: key.clone() });
        }
        let mut next: HashMap<Uuid, u64> = HashMap::new();
        for event in &commit.events {
            let id = event.aggregate_id;
            let expected = next.entry(id).or_insert_with(|| self.version(id));
            if event.sequence_number != *expected + 1 {
                return Err(StoreError::Conflict { aggregate_id: id });
            }
            *expected += 1;
        }
        Ok(())
    }
}

#[async_trait]
impl EventStore for MemoryEventStore {
    fn max_commit_items(&self) -> Option<usize> {
        self.max_items
    }

    async fn append(&self, commit: Commit) -> Result<(), StoreError> {
        if let Some(max) = self.max_items.filter(|max| commit.items() > *max) {
            return Err(StoreError::TooLarge(format!(
                "{} transaction items; this store allows {max}",
                commit.items()
            )));
        }
        {
            let mut inner = self.inner();
            inner.check(&commit)?;
            inner
                .guards
                .extend(commit.guards.into_iter().map(|g| (g.key, g.owner)));
            if let Some(record) = commit.idempotency {
                inner.idempotency.insert(record.key.clone(), record);
            }
            for event in commit.events {
                let id = inner.next_outbox;
                inner.next_outbox += 1;
                inner.outbox.insert(id, event.clone());
                inner.log.push(event.clone());
                inner
                    .streams
                    .entry(event.aggregate_id)
                    .or_default()
                    .push(event);
            }
        }
        self.committed.notify_waiters();
        Ok(())
    }

    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let inner = self.inner();
        Ok(inner
            .streams
            .get(&aggregate_id)
            .map(|stream| {
                stream
                    .iter()
                    .filter(|e| e.sequence_number > after)
                    .filter(|e| up_to.is_none_or(|last| e.sequence_number <= last))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError> {
        let start = match cursor {
            None => 0,
            Some(text) => text
                .parse::<usize>()
                .map_err(|e| StoreError::corrupt_because("cursor", e))?,
        };
        let inner = self.inner();
        let end = (start + limit.max(1)).min(inner.log.len());
        Ok(AllEventsPage {
            events: inner.log[start.min(end)..end].to_vec(),
            next: (end < inner.log.len()).then(|| end.to_string()),
        })
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.inner().idempotency.get(key).cloned())
    }

    async fn guard_owner(&self, key: &str) -> Result<Option<Uuid>, StoreError> {
        Ok(self.inner().guards.get(key).copied())
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        Ok(self
            .inner()
            .outbox
            .iter()
            .take(limit)
            .map(|(id, envelope)| OutboxEntry {
                id: id.to_string(),
                envelope: envelope.clone(),
            })
            .collect())
    }

    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        let inner = self.inner();
        let oldest = inner.outbox.values().map(|e| e.timestamp).min();
        Ok((inner.outbox.len() as u64, oldest))
    }

    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError> {
        let mut inner = self.inner();
        for id in ids {
            if let Ok(id) = id.parse::<u64>() {
                inner.outbox.remove(&id);
            }
        }
        Ok(())
    }

    async fn outbox_wait(&self) {
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(200),
            self.committed.notified(),
        )
        .await;
    }

    async fn load_snapshot(&self, aggregate_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        Ok(self.inner().snapshots.get(&aggregate_id).cloned())
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        let mut inner = self.inner();
        let newer = inner
            .snapshots
            .get(&snapshot.aggregate_id)
            .is_none_or(|old| {
                snapshot.version > old.version || snapshot.state_version != old.state_version
            });
        if newer {
            inner.snapshots.insert(snapshot.aggregate_id, snapshot);
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        Ok(self.inner().log.len() as u64)
    }
}

#[async_trait]
impl KeyStore for MemoryEventStore {
    async fn create_key(&self, key: &ApiKey) -> Result<(), KeyError> {
        let mut inner = self.inner();
        if let Some(stored) = inner.keys.get(&key.name) {
            return if stored.hash == key.hash {
                Ok(())
            } else {
                Err(KeyError::NameTaken(key.name.clone()))
            };
        }
        inner.keys.insert(key.name.clone(), key.clone());
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self.inner().keys.values().cloned().collect())
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        match self.inner().keys.get_mut(name) {
            Some(key) if key.revoked_at.is_none() => {
                key.revoked_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.inner().keys.values().find(|k| k.hash == hash).cloned())
    }
}

/// Any store with a failure a real one has, injected: every commit applied and then sent
/// again with the second reply returned (what happens when the SDK retries a request whose
/// reply was lost: a correct caller still reports the success it was), or commits refused as
/// throttled (DynamoDB after the SDK's retries) while `throttle(true)` holds.
pub struct Faulty<S> {
    pub inner: S,
    lose_replies: bool,
    throttling: AtomicBool,
}

impl<S: EventStore> Faulty<S> {
    pub fn losing_replies(inner: S) -> Self {
        Self {
            inner,
            lose_replies: true,
            throttling: AtomicBool::new(false),
        }
    }

    pub fn throttling(inner: S) -> Self {
        Self {
            inner,
            lose_replies: false,
            throttling: AtomicBool::new(true),
        }
    }

    pub fn throttle(&self, on: bool) {
        self.throttling.store(on, Ordering::SeqCst);
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "ProvisionedThroughputExceededException: the rate of requests exceeds the allowed throughput"
)]
struct Exceeded;

#[async_trait]
impl<S: EventStore> EventStore for Faulty<S> {
    fn max_commit_items(&self) -> Option<usize> {
        self.inner.max_commit_items()
    }
    async fn append(&self, commit: Commit) -> Result<(), StoreError> {
        if self.throttling.load(Ordering::SeqCst) {
            return Err(StoreError::throttled_because("DynamoDB", Exceeded));
        }
        if self.lose_replies {
            self.inner.append(commit.clone()).await?;
        }
        self.inner.append(commit).await
    }
    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.inner.load(aggregate_id, after, up_to).await
    }
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError> {
        self.inner.read_all(cursor, limit).await
    }
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency(key).await
    }
    async fn guard_owner(&self, key: &str) -> Result<Option<Uuid>, StoreError> {
        self.inner.guard_owner(key).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.inner.outbox_pending(limit).await
    }
    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        self.inner.outbox_stats().await
    }
    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError> {
        self.inner.outbox_remove(ids).await
    }
    async fn outbox_wait(&self) {
        self.inner.outbox_wait().await
    }
    async fn load_snapshot(&self, id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn count_events(&self) -> Result<u64, StoreError> {
        self.inner.count_events().await
    }
}
