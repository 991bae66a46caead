//! The archive port on the SQLite store. A cut is one read transaction on a connection of its
//! own (WAL gives it a snapshot, so writers carry on and nothing of a later commit is seen);
//! it streams rows in position order, a page at a time, so memory stays flat. Import writes go
//! through the store's writer thread like commits: each batch of events and the marker's
//! progress land in one savepoint, so an interrupted import resumes exactly where it stopped.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{event_from_row, unavailable, SqliteEventStore, WriteJob, EVENT_COLUMNS};
use crate::sqlite_pool::{self, Durability};
use crate::store::archive::{ArchiveStore, CutPart, ImportMarker};
use crate::store::{EventEnvelope, IdempotencyRecord, StoreError};

/// Rows handed to the exporter at a time.
const PAGE: usize = 1_000;

pub(super) enum ImportWrite {
    Claim(String),
    Events {
        checksum: String,
        events: Vec<EventEnvelope>,
        guards: Vec<(String, Uuid)>,
        lines_done: u64,
    },
    Idempotency(Vec<IdempotencyRecord>),
    Finish {
        checksum: String,
        lines: u64,
    },
}

pub(super) fn apply(conn: &Connection, write: &ImportWrite) -> Result<(), StoreError> {
    match write {
        ImportWrite::Claim(checksum) => conn
            .execute(
                "INSERT INTO import_state (id, checksum, lines_done, finished)
                 VALUES (1, ?1, 0, 0) ON CONFLICT (id) DO NOTHING",
                [checksum],
            )
            .map(|_| ())
            .map_err(unavailable),
        ImportWrite::Events {
            checksum,
            events,
            guards,
            lines_done,
        } => {
            move_marker(conn, checksum, *lines_done, false)?;
            for event in events {
                insert_event(conn, event)?;
            }
            for (key, owner) in guards {
                insert_guard(conn, key, *owner)?;
            }
            Ok(())
        }
        ImportWrite::Idempotency(records) => {
            for record in records {
                conn.prepare_cached(
                    "INSERT INTO idempotency (key, fingerprint, response, created_at)
                     VALUES (?1, ?2, ?3, 0) ON CONFLICT (key) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        record.key,
                        record.fingerprint,
                        record.response.to_string()
                    ])
                })
                .map_err(unavailable)?;
            }
            Ok(())
        }
        ImportWrite::Finish { checksum, lines } => move_marker(conn, checksum, *lines, true),
    }
}

/// Moves the marker of the import of `checksum`; refused when the store holds another import.
fn move_marker(
    conn: &Connection,
    checksum: &str,
    lines_done: u64,
    finished: bool,
) -> Result<(), StoreError> {
    let moved = conn
        .execute(
            "UPDATE import_state SET lines_done = MAX(lines_done, ?2), finished = ?3
             WHERE id = 1 AND checksum = ?1",
            params![checksum, lines_done as i64, finished],
        )
        .map_err(unavailable)?;
    if moved == 1 {
        Ok(())
    } else {
        Err(StoreError::corrupt(format!(
            "this store holds no import of the file with checksum {checksum}"
        )))
    }
}

/// Inserts one imported event unless the very same event (same id at the same place) is there.
fn insert_event(conn: &Connection, event: &EventEnvelope) -> Result<(), StoreError> {
    let metadata = serde_json::to_string(&event.metadata)
        .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO events (aggregate_id, sequence_number, event_id, aggregate_type,
                 event_type, schema_version, event_data, metadata, timestamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
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
        })
        .map_err(unavailable)?;
    if inserted == 1 {
        return Ok(());
    }
    let there: Option<String> = conn
        .prepare_cached(
            "SELECT event_id FROM events WHERE aggregate_id = ?1 AND sequence_number = ?2",
        )
        .and_then(|mut s| {
            s.query_row(
                params![event.aggregate_id.to_string(), event.sequence_number as i64],
                |r| r.get(0),
            )
            .optional()
        })
        .map_err(unavailable)?;
    if there.as_deref() == Some(event.event_id.to_string().as_str()) {
        Ok(())
    } else {
        Err(StoreError::Conflict {
            aggregate_id: event.aggregate_id,
        })
    }
}

/// Claims a guard for `owner` unless it holds it already.
fn insert_guard(conn: &Connection, key: &str, owner: Uuid) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT INTO guards (key, owner) VALUES (?1, ?2) ON CONFLICT DO NOTHING")
        .and_then(|mut s| s.execute(params![key, owner.to_string()]))
        .map_err(unavailable)?;
    let held: Option<String> = conn
        .prepare_cached("SELECT owner FROM guards WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(unavailable)?;
    if held.as_deref() == Some(owner.to_string().as_str()) {
        Ok(())
    } else {
        Err(StoreError::GuardTaken {
            key: key.to_owned(),
        })
    }
}

/// Reads the cut in one read transaction, handing pages to `sink` (blocking: on its thread).
fn read_cut(
    path: &std::path::Path,
    idempotency: bool,
    sink: &mpsc::Sender<CutPart>,
) -> Result<(), StoreError> {
    let mut conn = sqlite_pool::open(path, Durability::Normal).map_err(unavailable)?;
    // A deferred transaction takes its snapshot at the first read and keeps it to the end.
    let tx = conn.transaction().map_err(unavailable)?;
    let (events, aggregates): (i64, i64) = tx
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT aggregate_id) FROM events",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(unavailable)?;
    let counts = CutPart::Counts {
        events: events as u64,
        aggregates: aggregates as u64,
    };
    if sink.blocking_send(counts).is_err() {
        return Ok(());
    }
    let mut statement = tx
        .prepare(&format!(
            "SELECT {EVENT_COLUMNS} FROM events ORDER BY position"
        ))
        .map_err(unavailable)?;
    let mut rows = statement.query([]).map_err(unavailable)?;
    let mut page = Vec::with_capacity(PAGE);
    while let Some(row) = rows.next().map_err(unavailable)? {
        page.push(event_from_row(row).map_err(unavailable)?);
        if page.len() == PAGE
            && sink
                .blocking_send(CutPart::Events(std::mem::take(&mut page)))
                .is_err()
        {
            return Ok(());
        }
    }
    if !page.is_empty() && sink.blocking_send(CutPart::Events(page)).is_err() {
        return Ok(());
    }
    if idempotency {
        let mut statement = tx
            .prepare("SELECT key, fingerprint, response FROM idempotency ORDER BY key")
            .map_err(unavailable)?;
        let mut rows = statement.query([]).map_err(unavailable)?;
        let mut page = Vec::with_capacity(PAGE);
        while let Some(row) = rows.next().map_err(unavailable)? {
            let response: String = row.get(2).map_err(unavailable)?;
            page.push(IdempotencyRecord {
                key: row.get(0).map_err(unavailable)?,
                fingerprint: row.get(1).map_err(unavailable)?,
                response: serde_json::from_str(&response)
                    .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
            });
            if page.len() == PAGE
                && sink
                    .blocking_send(CutPart::Idempotency(std::mem::take(&mut page)))
                    .is_err()
            {
                return Ok(());
            }
        }
        if !page.is_empty() {
            let _ = sink.blocking_send(CutPart::Idempotency(page));
        }
    }
    Ok(())
}

impl SqliteEventStore {
    async fn import_write(&self, write: ImportWrite) -> Result<(), StoreError> {
        self.submit(|reply| WriteJob::Import(write, reply)).await
    }
}

#[async_trait]
impl ArchiveStore for SqliteEventStore {
    fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "store": "sqlite", "path": self.path.display().to_string() })
    }

    async fn cut(&self, idempotency: bool, sink: mpsc::Sender<CutPart>) -> Result<(), StoreError> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_cut(&path, idempotency, &sink))
            .await
            .map_err(|e| StoreError::unavailable(format!("export thread failed: {e}")))?
    }

    async fn holds_events(&self) -> Result<bool, StoreError> {
        self.read(|conn| conn.query_row("SELECT EXISTS (SELECT 1 FROM events)", [], |r| r.get(0)))
            .await
    }

    async fn import_marker(&self) -> Result<Option<ImportMarker>, StoreError> {
        self.read(|conn| {
            conn.query_row(
                "SELECT checksum, lines_done, finished FROM import_state WHERE id = 1",
                [],
                |r| {
                    Ok(ImportMarker {
                        checksum: r.get(0)?,
                        lines_done: r.get::<_, i64>(1)? as u64,
                        finished: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn claim_import(&self, checksum: &str) -> Result<ImportMarker, StoreError> {
        self.import_write(ImportWrite::Claim(checksum.to_owned()))
            .await?;
        self.import_marker()
            .await?
            .ok_or_else(|| StoreError::unavailable("the import marker vanished"))
    }

    async fn import_events(
        &self,
        checksum: &str,
        events: Vec<EventEnvelope>,
        guards: Vec<(String, Uuid)>,
        lines_done: u64,
    ) -> Result<(), StoreError> {
        self.import_write(ImportWrite::Events {
            checksum: checksum.to_owned(),
            events,
            guards,
            lines_done,
        })
        .await
    }

    async fn import_idempotency(&self, records: Vec<IdempotencyRecord>) -> Result<(), StoreError> {
        self.import_write(ImportWrite::Idempotency(records)).await
    }

    async fn finish_import(&self, checksum: &str, lines: u64) -> Result<(), StoreError> {
        self.import_write(ImportWrite::Finish {
            checksum: checksum.to_owned(),
            lines,
        })
        .await
    }
}
