//! The check every backup passes before `import` writes anything, one line at a time: the
//! header first and of a known format; every event one the domain knows (type, schema
//! version, shape) with each aggregate's sequence numbers contiguous from 1 and its type
//! unchanged; API keys and idempotency records only if the header says so; the trailer last,
//! with the line and event counts and the SHA-256 of every line before it; the header's counts
//! right. The first problem is reported with its line number. Memory: one entry per aggregate.

use std::collections::HashMap;
use uuid::Uuid;

use super::{Checksum, Header, Line, Record, Trailer, FORMAT_VERSION};
use crate::domain::AggregateType;

/// The first thing wrong with a file, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct Problem {
    pub line: u64,
    pub message: String,
}

/// What a file that passed holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub header: Header,
    pub trailer: Trailer,
    /// Every line, the trailer included.
    pub lines: u64,
}

#[derive(Default)]
pub struct Check {
    line: u64,
    checksum: Checksum,
    header: Option<Header>,
    streams: HashMap<Uuid, (AggregateType, u64)>,
    events: u64,
    api_keys: u64,
    idempotency_records: u64,
    trailer: Option<Trailer>,
}

impl Check {
    fn problem(&self, message: impl Into<String>) -> Problem {
        Problem {
            line: self.line,
            message: message.into(),
        }
    }

    /// Checks the next line; returns it parsed.
    pub fn line(&mut self, text: &str) -> Result<Line, Problem> {
        self.line += 1;
        if self.trailer.is_some() {
            return Err(self.problem("a line after the trailer"));
        }
        let line = Line::parse(text)
            .map_err(|e| self.problem(format!("not an export line (event or record): {e}")))?;
        match (&line, &self.header) {
            (Line::Record(Record::Header(header)), None) => {
                if header.format_version != FORMAT_VERSION {
                    return Err(self.problem(format!(
                        "format version {} is not known (this build reads {FORMAT_VERSION})",
                        header.format_version
                    )));
                }
                self.header = Some(header.clone());
            }
            (_, None) => return Err(self.problem("the first line is not an export header")),
            (Line::Record(Record::Header(_)), Some(_)) => {
                return Err(self.problem("a second header"))
            }
            (Line::Event(event), Some(_)) => {
                event.check_known().map_err(|m| self.problem(m))?;
                let (kind, last) = self
                    .streams
                    .entry(event.aggregate_id)
                    .or_insert((event.aggregate_type, 0));
                if *kind != event.aggregate_type {
                    let message = format!(
                        "aggregate {} was a {kind} and is now a {}",
                        event.aggregate_id, event.aggregate_type
                    );
                    return Err(self.problem(message));
                }
                if event.sequence_number != *last + 1 {
                    let message = format!(
                        "aggregate {}: sequence number {} where {} was next (its sequence numbers must run 1, 2, 3…)",
                        event.aggregate_id,
                        event.sequence_number,
                        *last + 1
                    );
                    return Err(self.problem(message));
                }
                *last = event.sequence_number;
                self.events += 1;
            }
            (Line::Record(Record::ApiKey { .. } | Record::Idempotency { .. }), Some(header))
                if !header.include_keys =>
            {
                return Err(self.problem(
                    "an API key or idempotency record in an export made without --include-keys",
                ))
            }
            (Line::Record(Record::ApiKey { .. }), Some(_)) => self.api_keys += 1,
            (Line::Record(Record::Idempotency { .. }), Some(_)) => self.idempotency_records += 1,
            (Line::Record(Record::Trailer(trailer)), Some(_)) => {
                let expected = Trailer {
                    lines: self.line - 1,
                    events: self.events,
                    api_keys: self.api_keys,
                    idempotency_records: self.idempotency_records,
                    sha256: self.checksum.clone().hex(),
                };
                if trailer.sha256 != expected.sha256 {
                    return Err(self.problem(format!(
                        "checksum mismatch: the trailer says {}, the lines before it hash to {}",
                        trailer.sha256, expected.sha256
                    )));
                }
                if *trailer != expected {
                    return Err(self.problem(format!(
                        "the trailer's counts {trailer:?} are not the file's {expected:?}"
                    )));
                }
                self.trailer = Some(trailer.clone());
                return Ok(line);
            }
        }
        self.checksum.line(text.as_bytes());
        Ok(line)
    }

    /// The end of the file: complete, and the header's counts right.
    pub fn finish(self) -> Result<Checked, Problem> {
        let (Some(header), Some(trailer)) = (self.header.clone(), self.trailer.clone()) else {
            return Err(Problem {
                line: self.line + 1,
                message: "the file ends without its trailer (truncated?)".into(),
            });
        };
        if header.events != self.events || header.aggregates != self.streams.len() as u64 {
            return Err(Problem {
                line: 1,
                message: format!(
                    "the header counts {} events of {} aggregates; the file holds {} of {}",
                    header.events,
                    header.aggregates,
                    self.events,
                    self.streams.len()
                ),
            });
        }
        Ok(Checked {
            header,
            trailer,
            lines: self.line,
        })
    }
}

/// Checks a whole file.
pub fn check_file(input: &mut dyn std::io::BufRead) -> Result<Checked, Problem> {
    let mut check = Check::default();
    let mut text = String::new();
    loop {
        text.clear();
        match input.read_line(&mut text) {
            Ok(0) => return check.finish(),
            Ok(_) => {}
            Err(e) => {
                return Err(Problem {
                    line: check.line + 1,
                    message: format!("cannot be read: {e}"),
                })
            }
        }
        let line = text.strip_suffix('\n').unwrap_or(&text);
        check.line(line)?;
    }
}
