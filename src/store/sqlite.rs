//! Embedded event store on one SQLite file. All writes go through one writer thread that
//! group-commits: it drains every queued commit into one transaction, gives each its own
//! savepoint (so one commit's conflict does not undo its neighbours), fsyncs once, then answers
//! them all. With `synchronous=FULL` an answered commit is on disk. API keys live in the same
//! file and their writes take the same path (`keys`).

mod archive;
mod keys;

use async_trait::async_trait;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Notify};
use uuid::Uuid;

use super::{
    AllEventsPage, Commit, EventEnvelope, EventStore, IdempotencyRecord, OutboxEntry, Snapshot,
    StoreError,
};
use crate::domain::AggregateType;
use crate::sqlite_pool::{self, Durability, ReadPool};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS events (
    position        INTEGER PRIMARY KEY,
    aggregate_id    TEXT NOT NULL,
    sequence_number INTEGER NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    aggregate_type  TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    schema_version  INTEGER NOT NULL,
    event_data      TEXT NOT NULL,
    metadata        TEXT NOT NULL,
    timestamp       INTEGER NOT NULL,
    UNIQUE (aggregate_id, sequence_number)
);
CREATE TABLE IF NOT EXISTS outbox (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    envelope TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS guards (
    key   TEXT PRIMARY KEY,
    owner TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    aggregate_id   TEXT PRIMARY KEY,
    aggregate_type TEXT NOT NULL,
    version        INTEGER NOT NULL,
    state_version  INTEGER NOT NULL,
    state          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS idempotency (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    response    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS api_keys (
    name            TEXT PRIMARY KEY,
    hash            TEXT NOT NULL,
    role            TEXT NOT NULL,
    warehouses      TEXT NOT NULL,
    acts_for_others INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    revoked_at      INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS api_keys_by_hash ON api_keys (hash);
CREATE TABLE IF NOT EXISTS import_state (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checksum   TEXT NOT NULL,
    lines_done INTEGER NOT NULL,
    finished   INTEGER NOT NULL
);
";

/// Commits per group at most, so one transaction stays short.
const MAX_GROUP: usize = 512;

enum WriteJob {
    Append(Commit, oneshot::Sender<Result<(), StoreError>>),
    RemoveOutbox(Vec<i64>, oneshot::Sender<Result<(), StoreError>>),
    SaveSnapshot(Snapshot, oneshot::Sender<Result<(), StoreError>>),
    /// Answers whether the key is stored (create) or was revoked now (revoke).
    Key(keys::KeyWrite, oneshot::Sender<Result<bool, StoreError>>),
    /// An import's write (`archive`), in its own savepoint like a commit.
    Import(
        archive::ImportWrite,
        oneshot::Sender<Result<(), StoreError>>,
    ),
}

pub struct SqliteEventStore {
    path: std::path::PathBuf,
    writer: mpsc::Sender<WriteJob>,
    reads: ReadPool,
    outbox_signal: Arc<Notify>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) `events.db` in `data_dir` and starts its writer thread.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(unavailable)?;
        let path = data_dir.join("events.db");
        let conn = sqlite_pool::open(&path, Durability::Full).map_err(unavailable)?;
        conn.execute_batch(SCHEMA).map_err(unavailable)?;
        let (writer, jobs) = mpsc::channel(4 * MAX_GROUP);
        let outbox_signal = Arc::new(Notify::new());
        let signal = outbox_signal.clone();
        std::thread::Builder::new()
            .name("event-store-writer".into())
            .spawn(move || write_loop(conn, jobs, signal))
            .map_err(unavailable)?;
        Ok(Self {
            path: path.clone(),
            writer,
            reads: ReadPool::new(path),
            outbox_signal,
        })
    }

    async fn submit<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriteJob,
    ) -> Result<T, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.writer
            .send(job(reply))
            .await
            .map_err(|_| StoreError::unavailable("event store writer stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::unavailable("event store writer stopped"))?
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.reads.read(f).await.map_err(unavailable)
    }
}

fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::unavailable_because("SQLite", error)
}

fn write_loop(mut conn: Connection, mut jobs: mpsc::Receiver<WriteJob>, signal: Arc<Notify>) {
    while let Some(first) = jobs.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut results = Vec::with_capacity(group.len());
        let outcome = (|| -> rusqlite::Result<()> {
            let mut tx =
                conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for job in &group {
                let mut savepoint = tx.savepoint()?;
                let done = |result: Result<(), StoreError>| result.map(|()| true);
                let result = match job {
                    WriteJob::Append(commit, _) => done(apply_commit(&savepoint, commit)),
                    WriteJob::RemoveOutbox(ids, _) => done(remove_outbox(&savepoint, ids)),
                    WriteJob::SaveSnapshot(snapshot, _) => {
                        done(save_snapshot(&savepoint, snapshot))
                    }
                    WriteJob::Key(write, _) => keys::apply(&savepoint, write),
                    WriteJob::Import(write, _) => done(archive::apply(&savepoint, write)),
                };
                if result.is_ok() {
                    savepoint.commit()?;
                } else {
                    savepoint.rollback()?;
                }
                results.push(result);
            }
            tx.commit()
        })()
        .map_err(Arc::new);
        let mut wrote_events = false;
        for (job, result) in group.into_iter().zip(
            results
                .into_iter()
                .map(Some)
                .chain(std::iter::repeat_with(|| None)),
        ) {
            // A failed transaction fails every commit in the group, whatever its savepoint said.
            let result = match (&outcome, result) {
                (Err(e), _) => Err(unavailable(e.clone())),
                (Ok(()), Some(result)) => result,
                (Ok(()), None) => Err(StoreError::unavailable("commit not attempted")),
            };
            match job {
                WriteJob::Append(_, reply) => {
                    wrote_events |= result.is_ok();
                    let _ = reply.send(result.map(|_| ()));
                }
                WriteJob::RemoveOutbox(_, reply)
                | WriteJob::SaveSnapshot(_, reply)
                | WriteJob::Import(_, reply) => {
                    let _ = reply.send(result.map(|_| ()));
                }
                WriteJob::Key(_, reply) => {
                    let _ = reply.send(result);
                }
            }
        }
        if wrote_events {
            signal.notify_one();
        }
    }
}

fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(e, _) if e.code == ErrorCode::ConstraintViolation)
}

fn apply_commit(conn: &Connection, commit: &Commit) -> Result<(), StoreError> {
    let sql = |e: rusqlite::Error| unavailable(e);
    for expectation in &commit.expectations {
        let current: i64 = conn
            .prepare_cached(
                "SELECT COALESCE(MAX(sequence_number), 0) FROM events WHERE aggregate_id = ?1",
            )
            .and_then(|mut s| s.query_row([expectation.aggregate_id.to_string()], |r| r.get(0)))
            .map_err(sql)?;
        if current as u64 != expectation.version {
            return Err(StoreError::Conflict {
                aggregate_id: expectation.aggregate_id,
            });
        }
    }
    if let Some(record) = &commit.idempotency {
        let inserted = conn
            .prepare_cached(
                "INSERT INTO idempotency (key, fingerprint, response, created_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    record.key,
                    record.fingerprint,
                    record.response.to_string(),
                    commit.events.first().map_or(0, |e| e.timestamp)
                ])
            });
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::IdempotencyKeyUsed {
                    key: record.key.clone(),
                })
            }
            Err(e) => return Err(sql(e)),
        }
    }
    for guard in &commit.guards {
        let inserted = conn
            .prepare_cached("INSERT INTO guards (key, owner) VALUES (?1, ?2)")
            .and_then(|mut s| s.execute(params![guard.key, guard.owner.to_string()]));
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::GuardTaken {
                    key: guard.key.clone(),
                })
            }
            Err(e) => return Err(sql(e)),
        }
    }
    for event in &commit.events {
        let metadata = serde_json::to_string(&event.metadata)
            .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
        let inserted = conn
            .prepare_cached(
                "INSERT INTO events (aggregate_id, sequence_number, event_id, aggregate_type,
                     event_type, schema_version, event_data, metadata, timestamp)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    event.aggregate_id.to_string(),
                    event.sequence_number as i64,
                    event.event_id.to_string(),
                    event.aggregate_type.as_str(),
                    event.event_type,
                    event.schema_version,
                    event.event_data.to_string(),
                    metadata,
                    event.timestamp,
                ])
            });
        match inserted {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict {
                    aggregate_id: event.aggregate_id,
                })
            }
            Err(e) => return Err(sql(e)),
        }
        let body = serde_json::to_string(event)
            .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
        conn.prepare_cached("INSERT INTO outbox (envelope) VALUES (?1)")
            .and_then(|mut s| s.execute([body]))
            .map_err(sql)?;
    }
    Ok(())
}

fn save_snapshot(conn: &Connection, snapshot: &Snapshot) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO snapshots (aggregate_id, aggregate_type, version, state_version, state)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (aggregate_id) DO UPDATE SET
            version = excluded.version, state_version = excluded.state_version, state = excluded.state
         WHERE excluded.version > snapshots.version OR excluded.state_version <> snapshots.state_version",
    )
    .and_then(|mut s| {
        s.execute(params![
            snapshot.aggregate_id.to_string(),
            snapshot.aggregate_type.as_str(),
            snapshot.version as i64,
            snapshot.state_version,
            snapshot.state.to_string()
        ])
    })
    .map(|_| ())
    .map_err(unavailable)
}

fn remove_outbox(conn: &Connection, ids: &[i64]) -> Result<(), StoreError> {
    let mut statement = conn
        .prepare_cached("DELETE FROM outbox WHERE id = ?1")
        .map_err(unavailable)?;
    for id in ids {
        statement.execute([id]).map_err(unavailable)?;
    }
    Ok(())
}

const EVENT_COLUMNS: &str = "event_id, aggregate_id, aggregate_type, sequence_number, event_type,
     schema_version, event_data, metadata, timestamp";

/// Decodes a row selected with `EVENT_COLUMNS`. Undecodable stored data is reported as a
/// conversion error rather than trusted.
fn event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventEnvelope> {
    fn bad<E: std::error::Error + Send + Sync + 'static>(index: usize, e: E) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    }
    let text = |index: usize| row.get::<_, String>(index);
    let aggregate_type = text(2)?;
    Ok(EventEnvelope {
        event_id: Uuid::parse_str(&text(0)?).map_err(|e| bad(0, e))?,
        aggregate_id: Uuid::parse_str(&text(1)?).map_err(|e| bad(1, e))?,
        aggregate_type: AggregateType::parse(&aggregate_type).ok_or_else(|| {
            bad(
                2,
                std::io::Error::other(format!("unknown aggregate type {aggregate_type}")),
            )
        })?,
        sequence_number: row.get::<_, i64>(3)? as u64,
        event_type: text(4)?,
        schema_version: row.get(5)?,
        event_data: serde_json::from_str(&text(6)?).map_err(|e| bad(6, e))?,
        metadata: serde_json::from_str(&text(7)?).map_err(|e| bad(7, e))?,
        timestamp: row.get(8)?,
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(&self, commit: Commit) -> Result<(), StoreError> {
        self.submit(|reply| WriteJob::Append(commit, reply)).await
    }

    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        let up_to = up_to.map_or(i64::MAX, |v| v.min(i64::MAX as u64) as i64);
        self.read(move |conn| {
            let mut statement = conn.prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events
                 WHERE aggregate_id = ?1 AND sequence_number > ?2 AND sequence_number <= ?3
                 ORDER BY sequence_number"
            ))?;
            let rows = statement.query_map(
                params![
                    aggregate_id.to_string(),
                    after.min(i64::MAX as u64) as i64,
                    up_to
                ],
                event_from_row,
            )?;
            rows.collect()
        })
        .await
    }

    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError> {
        let after: i64 = match cursor {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| StoreError::corrupt(format!("bad cursor {text}")))?,
        };
        let limit = limit.max(1) as i64;
        let rows = self
            .read(move |conn| {
                let mut statement = conn.prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS}, position FROM events WHERE position > ?1
                     ORDER BY position LIMIT ?2"
                ))?;
                let rows = statement.query_map(params![after, limit], |row| {
                    Ok((event_from_row(row)?, row.get::<_, i64>(9)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        let next = if rows.len() as i64 == limit {
            rows.last().map(|(_, position)| position.to_string())
        } else {
            None
        };
        Ok(AllEventsPage {
            events: rows.into_iter().map(|(event, _)| event).collect(),
            next,
        })
    }

    async fn guard_owner(&self, key: &str) -> Result<Option<Uuid>, StoreError> {
        let key = key.to_owned();
        let owner = self
            .read(move |conn| {
                conn.prepare_cached("SELECT owner FROM guards WHERE key = ?1")?
                    .query_row([key], |row| row.get::<_, String>(0))
                    .optional()
            })
            .await?;
        owner
            .map(|owner| {
                Uuid::parse_str(&owner)
                    .map_err(|e| StoreError::corrupt_because("a guard's owner", e))
            })
            .transpose()
    }

    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        let row = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT key, fingerprint, response FROM idempotency WHERE key = ?1",
                )?
                .query_row([key], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, String>(2)?,
                    ))
                })
                .optional()
            })
            .await?;
        row.map(|(key, fingerprint, response)| {
            Ok(IdempotencyRecord {
                key,
                fingerprint,
                response: serde_json::from_str(&response)
                    .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
            })
        })
        .transpose()
    }

    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        let limit = limit.max(1) as i64;
        let rows = self
            .read(move |conn| {
                let mut statement =
                    conn.prepare_cached("SELECT id, envelope FROM outbox ORDER BY id LIMIT ?1")?;
                let rows = statement.query_map([limit], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
                })?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter()
            .map(|(id, body)| {
                Ok(OutboxEntry {
                    id: id.to_string(),
                    envelope: serde_json::from_str(&body)
                        .map_err(|e| StoreError::corrupt_because(format!("outbox row {id}"), e))?,
                })
            })
            .collect()
    }

    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        let (count, oldest) = self
            .read(|conn| {
                let count: i64 = conn.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))?;
                let oldest: Option<String> = conn
                    .query_row("SELECT envelope FROM outbox ORDER BY id LIMIT 1", [], |r| {
                        r.get(0)
                    })
                    .optional()?;
                Ok((count, oldest))
            })
            .await?;
        let oldest = oldest
            .and_then(|body| serde_json::from_str::<EventEnvelope>(&body).ok())
            .map(|e| e.timestamp);
        Ok((count as u64, oldest))
    }

    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids
            .iter()
            .map(|id| id.parse::<i64>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::corrupt_because("outbox id", e))?;
        self.submit(|reply| WriteJob::RemoveOutbox(ids, reply))
            .await
    }

    async fn outbox_wait(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.outbox_signal.notified()).await;
    }

    async fn load_snapshot(&self, aggregate_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        let row = self
            .read(move |conn| {
                conn.prepare_cached(
                    "SELECT aggregate_type, version, state_version, state FROM snapshots WHERE aggregate_id = ?1",
                )?
                .query_row([aggregate_id.to_string()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, u32>(2)?, r.get::<_, String>(3)?))
                })
                .optional()
            })
            .await?;
        let Some((kind, version, state_version, state)) = row else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            aggregate_id,
            aggregate_type: AggregateType::parse(&kind)
                .ok_or_else(|| StoreError::corrupt(format!("snapshot of unknown type {kind}")))?,
            version: version as u64,
            state_version,
            state: serde_json::from_str(&state)
                .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
        }))
    }

    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.submit(|reply| WriteJob::SaveSnapshot(snapshot, reply))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| conn.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }

    async fn count_events(&self) -> Result<u64, StoreError> {
        // Positions are assigned in order and never reused: the largest is the count, at once.
        self.read(|conn| {
            conn.query_row("SELECT COALESCE(MAX(position), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .await
        .map(|count| count as u64)
    }
}
