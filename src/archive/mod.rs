//! Backups as JSON Lines: the file format of `export` and `import`, its streaming check, and
//! the two commands' cores over the store's archive port (`store::archive`). A file is a
//! header line, then one line per stored event (the envelope exactly as stored), then, with
//! `--include-keys`, the idempotency records and API keys, then a trailer with the SHA-256 of
//! every line before it. Nothing here holds the whole store: lines stream through, and the
//! check keeps one number per aggregate.

pub mod check;
pub mod export;
pub mod file;
pub mod import;
pub mod progress;
pub mod synthetic;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::keys::ApiKey;
use crate::store::EventEnvelope;

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The first line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Header {
    pub format_version: u32,
    /// The store exported (its kind and where it was).
    pub source: serde_json::Value,
    pub events: u64,
    pub aggregates: u64,
    /// Milliseconds since the epoch, when the export began.
    pub exported_at: i64,
    /// Whether API keys and idempotency records follow the events.
    pub include_keys: bool,
}

/// The last line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trailer {
    /// Lines before this one, the header included.
    pub lines: u64,
    pub events: u64,
    pub api_keys: u64,
    pub idempotency_records: u64,
    /// Hex SHA-256 of every line before this one, each with its newline.
    pub sha256: String,
}

/// A line that is not an event, told by its `record` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "camelCase")]
pub enum Record {
    Header(Header),
    ApiKey {
        key: ApiKey,
    },
    #[serde(rename_all = "camelCase")]
    Idempotency {
        key: String,
        fingerprint: String,
        response: serde_json::Value,
    },
    Trailer(Trailer),
}

/// One line of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Line {
    Record(Record),
    Event(EventEnvelope),
}

impl Line {
    pub fn parse(text: &str) -> Result<Self, serde_json::Error> {
        // Events are almost every line: try the envelope first, the records only if it fails.
        match serde_json::from_str::<EventEnvelope>(text) {
            Ok(event) => Ok(Line::Event(event)),
            Err(_) => serde_json::from_str::<Record>(text).map(Line::Record),
        }
    }
}

/// The running checksum of a file's lines.
#[derive(Default, Clone)]
pub struct Checksum(Sha256);

impl Checksum {
    pub fn line(&mut self, text: &[u8]) {
        self.0.update(text);
        self.0.update(b"\n");
    }

    pub fn hex(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }
}
