//! `import`'s writing half: a file that passed the check (`check`) written into a store that
//! is empty, or holds exactly an unfinished import of the same file (the marker names the
//! file's checksum and how many of its lines are written for certain). Events go in batches,
//! each moving the marker in the same write (SQLite) or right after it (DynamoDB, whose
//! writes of an event already there with the same id change nothing), so a rerun resumes where
//! the last one stopped and never writes an event twice. The uniqueness guards (warehouse
//! codes, SKUs) are not in a backup: they follow from the events, and are written with them. `--into-nonempty` is not offered:
//! merging two histories would need every aggregate's streams and uniqueness guards
//! reconciled, which a backup cannot do safely.

use super::check::Checked;
use super::file::open_input;
use super::progress::Progress;
use super::{Checksum, Line, Record};
use crate::application::commands::guard_claimed_by;
use crate::auth::keys::{KeyError, Keys};
use crate::store::archive::{ArchiveStore, ImportMarker};
use crate::store::{EventEnvelope, IdempotencyRecord};

/// Events written per batch (one marker move each).
const BATCH: usize = 1_000;

/// Where an import starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// An empty store, claimed now.
    Fresh,
    /// The same file's import, unfinished: lines up to this one are written.
    Resume(u64),
    /// The same file's import, finished before.
    Finished,
}

/// Why an import does not start; nothing is written.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the target store is not empty ({0}); import writes only into an empty store")]
    NotEmpty(String),
    #[error("the target store holds an import of another file (checksum {0})")]
    AnotherImport(String),
}

/// Decides where the import of `checked` starts, claiming an empty store for it.
pub async fn start(
    archive: &dyn ArchiveStore,
    keys: &Keys,
    checked: &Checked,
) -> anyhow::Result<Start> {
    let checksum = &checked.trailer.sha256;
    let judge = |marker: ImportMarker| -> anyhow::Result<Start> {
        if marker.checksum != *checksum {
            return Err(Refusal::AnotherImport(marker.checksum).into());
        }
        Ok(if marker.finished {
            Start::Finished
        } else {
            Start::Resume(marker.lines_done)
        })
    };
    if let Some(marker) = archive.import_marker().await? {
        return judge(marker);
    }
    if archive.holds_events().await? {
        return Err(Refusal::NotEmpty("it holds events".into()).into());
    }
    if !keys.keys().await?.is_empty() {
        return Err(Refusal::NotEmpty("it holds API keys".into()).into());
    }
    // Two importers racing for one empty store: the marker's conditional write picks one.
    match judge(archive.claim_import(checksum).await?)? {
        Start::Resume(0) => Ok(Start::Fresh),
        other => Ok(other),
    }
}

/// What an import wrote this run.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Written {
    pub events: u64,
    pub resumed_at_line: u64,
    pub api_keys: u64,
    pub idempotency_records: u64,
    pub seconds: f64,
    pub events_per_second: f64,
}

/// Writes the file's lines after `from` (a line number), in batches with progress. The file
/// is hashed again on the way: one changed since the check is refused before its marker is
/// finished.
pub async fn write(
    archive: &dyn ArchiveStore,
    keys: &Keys,
    name: &str,
    checked: &Checked,
    from: u64,
) -> anyhow::Result<Written> {
    let checksum = checked.trailer.sha256.clone();
    let mut input = open_input(name)?;
    let mut hash = Checksum::default();
    let mut progress = Progress::new("import", "events", Some(checked.trailer.events));
    let mut written = Written {
        resumed_at_line: from,
        ..Written::default()
    };
    let mut events: Vec<EventEnvelope> = Vec::with_capacity(BATCH);
    let mut guards: Vec<(String, uuid::Uuid)> = Vec::new();
    let mut records: Vec<IdempotencyRecord> = Vec::new();
    let (mut number, mut done_events) = (0u64, 0u64);
    let mut text = String::new();
    loop {
        text.clear();
        if input.read_line(&mut text)? == 0 {
            break;
        }
        number += 1;
        let line_text = text.strip_suffix('\n').unwrap_or(&text);
        let line = Line::parse(line_text)
            .map_err(|e| anyhow::anyhow!("line {number} changed since it was checked: {e}"))?;
        if !matches!(line, Line::Record(Record::Trailer(_))) {
            hash.line(line_text.as_bytes());
        }
        if let Line::Event(_) = line {
            done_events += 1;
        }
        if number <= from {
            continue;
        }
        match line {
            Line::Event(event) => {
                if let Some(key) = guard_claimed_by(&event) {
                    guards.push((key, event.aggregate_id));
                }
                events.push(event);
                if events.len() == BATCH {
                    // Records first: the marker's move says every line up to here is written.
                    written.idempotency_records += records.len() as u64;
                    archive
                        .import_idempotency(std::mem::take(&mut records))
                        .await?;
                    written.events += events.len() as u64;
                    archive
                        .import_events(
                            &checksum,
                            std::mem::take(&mut events),
                            std::mem::take(&mut guards),
                            number,
                        )
                        .await?;
                    progress.tick(done_events);
                }
            }
            Line::Record(Record::Idempotency {
                key,
                fingerprint,
                response,
            }) => {
                records.push(IdempotencyRecord {
                    key,
                    fingerprint,
                    response,
                });
                if records.len() == BATCH {
                    written.idempotency_records += records.len() as u64;
                    archive
                        .import_idempotency(std::mem::take(&mut records))
                        .await?;
                }
            }
            Line::Record(Record::ApiKey { key }) => {
                match keys.create_key(&key).await {
                    Ok(()) => written.api_keys += 1,
                    // Written by the run that was interrupted: the same key is there.
                    Err(KeyError::NameTaken(_)) if keys.keys().await?.contains(&key) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Line::Record(Record::Header(_) | Record::Trailer(_)) => {}
        }
    }
    written.idempotency_records += records.len() as u64;
    archive.import_idempotency(records).await?;
    written.events += events.len() as u64;
    archive
        .import_events(&checksum, events, guards, number)
        .await?;
    anyhow::ensure!(
        hash.hex() == checksum,
        "the file changed since it was checked; the import is left unfinished"
    );
    progress.report(done_events);
    written.seconds = progress.seconds();
    written.events_per_second = written.events as f64 / written.seconds.max(1e-6);
    Ok(written)
}
