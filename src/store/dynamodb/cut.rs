//! A consistent cut of the DynamoDB events table, read while the service writes. A Scan is
//! not isolated from TransactWriteItems: it reads each item once, at its own moment, so it may
//! read one aggregate before a commit lands and another after it, and see half the commit
//! (an allocation without its item's reservation). Every item a scan returns is committed, and
//! an aggregate's items come in sequence order, so each stream it sees is a prefix.
//!
//! The rule: each event of a commit of several events names the next one round the commit
//! (`commitNext`, `aggregateId#sequenceNumber`, written in the same transaction; see
//! `transaction` in mod.rs). An event is in the cut only if the one it names is, and a
//! stream's cut is a prefix: dropping an event drops the rest of its stream. Round the ring,
//! a commit is in whole or not at all, and one that was in flight during the scan is dropped
//! with whatever followed it in its streams. Events without a link were single-event commits
//! (or were written before links existed, or by `import`, which writes no commits; none of
//! those is ever in flight during an export). A commit that only *read* an aggregate (a
//! version check) does not link it: the cut may show that aggregate at an earlier version.
//!
//! Memory stays flat: pass one scans and keeps one number per aggregate (the prefix seen),
//! spilling each link to a temporary file (48 bytes each); the links are then walked until no
//! prefix shrinks; pass two scans again and emits each stream up to its prefix. Events are
//! never deleted, so pass two finds every event pass one kept.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::path::PathBuf;

use aws_sdk_dynamodb::types::AttributeValue;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::{event_from_item, text, unavailable, DynamoEventStore, Item};
use crate::store::archive::CutPart;
use crate::store::{EventEnvelope, IdempotencyRecord, StoreError};

/// The attribute that names the next event of the commit.
pub(super) const LINK: &str = "commitNext";

/// Events read per scan page (over every segment).
const PAGE: usize = 2_000;

pub(super) fn link(next: &EventEnvelope) -> AttributeValue {
    AttributeValue::S(format!("{}#{}", next.aggregate_id, next.sequence_number))
}

fn parse_link(item: &Item) -> Result<Option<(Uuid, u64)>, StoreError> {
    let Some(AttributeValue::S(value)) = item.get(LINK) else {
        return Ok(None);
    };
    let bad = || StoreError::corrupt(format!("attribute {LINK} is not id#sequence: {value}"));
    let (id, seq) = value.split_once('#').ok_or_else(bad)?;
    Ok(Some((
        Uuid::parse_str(id).map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    )))
}

fn io(error: std::io::Error) -> StoreError {
    StoreError::unavailable_because("the export's temporary file", error)
}

/// A temporary file removed when dropped.
struct Spill {
    path: PathBuf,
}

impl Spill {
    fn create(what: &str) -> Result<(Self, BufWriter<std::fs::File>), StoreError> {
        let path = std::env::temp_dir().join(format!(
            "inventory-export-{what}-{}",
            Uuid::now_v7().simple()
        ));
        let file = std::fs::File::create(&path).map_err(io)?;
        Ok((Self { path }, BufWriter::new(file)))
    }

    fn open(&self) -> Result<BufReader<std::fs::File>, StoreError> {
        Ok(BufReader::new(std::fs::File::open(&self.path).map_err(io)?))
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// One link: event `(from, at)` is in only if `(to, needs)` is.
fn write_link(
    out: &mut impl Write,
    from: Uuid,
    at: u64,
    to: Uuid,
    needs: u64,
) -> Result<(), StoreError> {
    let mut record = [0u8; 48];
    record[..16].copy_from_slice(from.as_bytes());
    record[16..24].copy_from_slice(&at.to_le_bytes());
    record[24..40].copy_from_slice(to.as_bytes());
    record[40..].copy_from_slice(&needs.to_le_bytes());
    out.write_all(&record).map_err(io)
}

fn read_link(input: &mut impl Read) -> Result<Option<(Uuid, u64, Uuid, u64)>, StoreError> {
    let mut record = [0u8; 48];
    match input.read_exact(&mut record) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(io(e)),
    }
    let uuid = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&record[range]);
        Uuid::from_bytes(bytes)
    };
    let number = |range: std::ops::Range<usize>| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&record[range]);
        u64::from_le_bytes(bytes)
    };
    Ok(Some((
        uuid(0..16),
        number(16..24),
        uuid(24..40),
        number(40..48),
    )))
}

/// Shrinks the prefixes until every kept event's link is kept too; returns how many passes
/// over the links it took.
fn settle(prefixes: &mut HashMap<Uuid, u64>, links: &Spill) -> Result<usize, StoreError> {
    let mut passes = 0;
    loop {
        passes += 1;
        let mut changed = false;
        let mut input = links.open()?;
        while let Some((from, at, to, needs)) = read_link(&mut input)? {
            let kept_to = prefixes.get(&to).copied().unwrap_or(0);
            match prefixes.get_mut(&from) {
                Some(kept) if *kept >= at && kept_to < needs => {
                    *kept = at - 1;
                    changed = true;
                }
                _ => {}
            }
        }
        if !changed {
            return Ok(passes);
        }
    }
}

impl DynamoEventStore {
    /// The idempotency records, a page at a time, as JSON lines into `out`.
    async fn spill_idempotency(&self, out: &mut impl Write) -> Result<(), StoreError> {
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(self.tables.guards())
                .filter_expression("begins_with(#key, :prefix)")
                .expression_attribute_names("#key", "guardKey")
                .expression_attribute_values(":prefix", AttributeValue::S("idempotency#".into()))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            for item in page.items() {
                let key = text(item, "guardKey")?;
                let record = IdempotencyRecord {
                    key: key.trim_start_matches("idempotency#").to_owned(),
                    fingerprint: text(item, "fingerprint")?,
                    response: serde_json::from_str(&text(item, "response")?)
                        .map_err(|e| StoreError::corrupt_because("stored JSON", e))?,
                };
                let line =
                    serde_json::to_string(&(&record.key, &record.fingerprint, &record.response))
                        .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
                writeln!(out, "{line}").map_err(io)?;
            }
            match page.last_evaluated_key() {
                Some(key) if !key.is_empty() => start = Some(key.clone()),
                _ => return Ok(()),
            }
        }
    }

    pub(super) async fn read_cut(
        &self,
        idempotency: bool,
        sink: mpsc::Sender<CutPart>,
    ) -> Result<(), StoreError> {
        // Records first: a record read before the scan began belongs to a commit the scan
        // sees whole (the record is written in the commit's transaction).
        let records = if idempotency {
            let (spill, mut out) = Spill::create("idempotency")?;
            self.spill_idempotency(&mut out).await?;
            out.flush().map_err(io)?;
            Some(spill)
        } else {
            None
        };

        // Pass one: the prefix of every stream, and the links.
        let (links, mut out) = Spill::create("links")?;
        let mut prefixes: HashMap<Uuid, u64> = HashMap::new();
        let mut scanned = 0u64;
        let mut cursor = None;
        loop {
            let (items, next) = self.scan_page(cursor, PAGE).await?;
            let mut page = Vec::with_capacity(items.len());
            for item in &items {
                let event = event_from_item(item)?;
                page.push((event.aggregate_id, event.sequence_number, parse_link(item)?));
            }
            page.sort_by_key(|(id, seq, _)| (*id, *seq));
            for (id, seq, link) in page {
                let kept = prefixes.entry(id).or_insert(0);
                // In order per stream; anything past a gap (never expected) is left out.
                if seq == *kept + 1 {
                    *kept = seq;
                }
                if let Some((to, needs)) = link {
                    write_link(&mut out, id, seq, to, needs)?;
                }
            }
            scanned += items.len() as u64;
            if sink.send(CutPart::Scanned(scanned)).await.is_err() {
                return Ok(());
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        out.flush().map_err(io)?;
        drop(out);
        let passes = settle(&mut prefixes, &links)?;
        drop(links);
        prefixes.retain(|_, kept| *kept > 0);
        let events: u64 = prefixes.values().sum();
        tracing::info!(
            scanned,
            events,
            passes,
            "export: the cut holds every event whose commit it holds whole"
        );
        let counts = CutPart::Counts {
            events,
            aggregates: prefixes.len() as u64,
        };
        if sink.send(counts).await.is_err() {
            return Ok(());
        }

        // Pass two: each stream up to its prefix.
        let mut emitted = 0u64;
        let mut cursor = None;
        loop {
            let (items, next) = self.scan_page(cursor, PAGE).await?;
            let mut page = Vec::with_capacity(items.len());
            for item in &items {
                let event = event_from_item(item)?;
                if prefixes
                    .get(&event.aggregate_id)
                    .is_some_and(|kept| event.sequence_number <= *kept)
                {
                    page.push(event);
                }
            }
            page.sort_by_key(|e| (e.aggregate_id, e.sequence_number));
            emitted += page.len() as u64;
            if !page.is_empty() && sink.send(CutPart::Events(page)).await.is_err() {
                return Ok(());
            }
            match next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        if emitted != events {
            return Err(StoreError::corrupt(format!(
                "the second scan found {emitted} of the cut's {events} events"
            )));
        }

        if let Some(records) = records {
            let mut page = Vec::new();
            for line in records.open()?.lines() {
                let line = line.map_err(io)?;
                let (key, fingerprint, response): (String, String, serde_json::Value) =
                    serde_json::from_str(&line)
                        .map_err(|e| StoreError::corrupt_because("the export's spill", e))?;
                page.push(IdempotencyRecord {
                    key,
                    fingerprint,
                    response,
                });
                if page.len() == PAGE
                    && sink
                        .send(CutPart::Idempotency(std::mem::take(&mut page)))
                        .await
                        .is_err()
                {
                    return Ok(());
                }
            }
            if !page.is_empty() {
                let _ = sink.send(CutPart::Idempotency(page)).await;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spill_of(links: &[(Uuid, u64, Uuid, u64)]) -> Spill {
        let (spill, mut out) = Spill::create("test").expect("spill");
        for (from, at, to, needs) in links {
            write_link(&mut out, *from, *at, *to, *needs).expect("write");
        }
        out.flush().expect("flush");
        spill
    }

    #[test]
    fn a_commit_seen_in_part_is_dropped_with_what_followed_it() {
        let (item, allocation, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        // Commit 1: allocation#1 + item#5, both seen. Commit 2: item#6 + other#1; the scan
        // passed `other` before commit 2 landed. Commit 3: item#7 + allocation#2 (after 2).
        let links = spill_of(&[
            (allocation, 1, item, 5),
            (item, 5, allocation, 1),
            (item, 6, other, 1),
            (other, 1, item, 6),
            (item, 7, allocation, 2),
            (allocation, 2, item, 7),
        ]);
        let mut prefixes = HashMap::from([(item, 7), (allocation, 2), (other, 0)]);
        settle(&mut prefixes, &links).expect("settle");
        assert_eq!(prefixes[&item], 5);
        assert_eq!(
            prefixes[&allocation], 1,
            "commit 3 followed the half commit"
        );
        assert_eq!(prefixes[&other], 0);
    }

    #[test]
    fn whole_commits_are_kept() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let links = spill_of(&[(a, 1, a, 2), (a, 2, b, 1), (b, 1, a, 1)]);
        let mut prefixes = HashMap::from([(a, 3), (b, 1)]);
        assert_eq!(settle(&mut prefixes, &links).expect("settle"), 1);
        assert_eq!(prefixes, HashMap::from([(a, 3), (b, 1)]));
    }
}
