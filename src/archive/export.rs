//! `export`: a consistent cut of the store (the adapter's `ArchiveStore::cut`) written as a
//! backup, streaming: the cut hands pages through a short channel while this side serializes,
//! hashes and writes them, so memory stays flat however large the store.

use std::sync::Arc;
use tokio::sync::mpsc;

use super::file::Output;
use super::progress::Progress;
use super::{Checksum, Header, Line, Record, Trailer, FORMAT_VERSION};
use crate::auth::keys::Keys;
use crate::store::archive::{ArchiveStore, CutPart};

/// What an export wrote.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exported {
    pub events: u64,
    pub aggregates: u64,
    pub api_keys: u64,
    pub idempotency_records: u64,
    pub lines: u64,
    pub sha256: String,
    pub seconds: f64,
    pub events_per_second: f64,
}

struct Writer {
    out: Output,
    checksum: Checksum,
    lines: u64,
    buffer: Vec<u8>,
}

impl Writer {
    fn write(&mut self, line: &Line) -> anyhow::Result<()> {
        self.buffer.clear();
        serde_json::to_writer(&mut self.buffer, line)?;
        self.checksum.line(&self.buffer);
        self.out.write_line(&self.buffer)?;
        self.lines += 1;
        Ok(())
    }
}

/// Exports the store to `out` (`-`: standard output); keys (API keys and idempotency records)
/// only when given. `estimate` is the store's own count of its events, for progress.
pub async fn export(
    archive: Arc<dyn ArchiveStore>,
    keys: Option<Keys>,
    estimate: Option<u64>,
    out: &str,
) -> anyhow::Result<Exported> {
    let exported_at = chrono::Utc::now().timestamp_millis();
    let mut writer = Writer {
        out: Output::create(out)?,
        checksum: Checksum::default(),
        lines: 0,
        buffer: Vec::with_capacity(4096),
    };
    let (sink, mut parts) = mpsc::channel(4);
    let include_keys = keys.is_some();
    let reader = {
        let archive = archive.clone();
        tokio::spawn(async move { archive.cut(include_keys, sink).await })
    };
    let mut scan = Progress::new("export: reading the store", "events", estimate);
    let mut progress = Progress::new("export", "events", None);
    let (mut events, mut aggregates, mut records) = (0u64, 0u64, 0u64);
    let mut total = 0u64;
    let written = async {
        while let Some(part) = parts.recv().await {
            match part {
                CutPart::Scanned(done) => scan.tick(done),
                CutPart::Counts {
                    events: in_cut,
                    aggregates: streams,
                } => {
                    aggregates = streams;
                    total = in_cut;
                    progress.set_total(in_cut);
                    writer.write(&Line::Record(Record::Header(Header {
                        format_version: FORMAT_VERSION,
                        source: archive.describe(),
                        events: in_cut,
                        aggregates: streams,
                        exported_at,
                        include_keys,
                    })))?;
                }
                CutPart::Events(page) => {
                    anyhow::ensure!(writer.lines > 0, "the store sent events before its counts");
                    for event in page {
                        writer.write(&Line::Event(event))?;
                        events += 1;
                    }
                    progress.tick(events);
                }
                CutPart::Idempotency(page) => {
                    for record in page {
                        writer.write(&Line::Record(Record::Idempotency {
                            key: record.key,
                            fingerprint: record.fingerprint,
                            response: record.response,
                        }))?;
                        records += 1;
                    }
                }
            }
        }
        // The channel closed: the cut is done, or failed (its error says why).
        reader.await??;
        anyhow::ensure!(
            writer.lines > 0,
            "the store ended its cut before its counts"
        );
        anyhow::ensure!(
            events == total,
            "the store's cut counted {total} events and sent {events}"
        );
        let mut api_keys = 0;
        if let Some(keys) = &keys {
            for key in keys.keys().await? {
                writer.write(&Line::Record(Record::ApiKey { key }))?;
                api_keys += 1;
            }
        }
        Ok::<_, anyhow::Error>(api_keys)
    }
    .await;
    let api_keys = match written {
        Ok(api_keys) => api_keys,
        Err(error) => {
            writer.out.abandon();
            return Err(error);
        }
    };
    progress.report(events);
    let Writer {
        mut out,
        checksum,
        lines,
        mut buffer,
    } = writer;
    let sha256 = checksum.hex();
    let trailer = Line::Record(Record::Trailer(Trailer {
        lines,
        events,
        api_keys,
        idempotency_records: records,
        sha256: sha256.clone(),
    }));
    buffer.clear();
    serde_json::to_writer(&mut buffer, &trailer)?;
    out.write_line(&buffer)?;
    out.finish()?;
    Ok(Exported {
        events,
        aggregates,
        api_keys,
        idempotency_records: records,
        lines: lines + 1,
        sha256,
        seconds: progress.seconds(),
        events_per_second: progress.rate(events),
    })
}
