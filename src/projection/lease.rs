//! The layout handshake: how a replay knows that every live projector routes by a layout
//! change before it relies on it, without waiting a fixed time.
//!
//! Each process that runs live projectors holds a *lease*: a heartbeat row beside the layout
//! record naming the process, the layout revision it routes by, and when the row lapses. It
//! renews the row while it runs (`Switchboard::join`) and at once when it routes by a new
//! revision. A replay that changed the layout waits (`acknowledged`) until every row either
//! names that revision or a later one, or has lapsed.
//!
//! A process whose lease lapsed — paused, starved, cut off from the store — is *fenced*: it may
//! have missed the change, so it re-reads the layout and renews its row before its next
//! projection write (`Switchboard::write_routing`), and the replay proceeds without it. Why that
//! suffices: a live projector writes only events it received before it last proved its lease
//! (a check that precedes the write), and the replay's scan of the store begins after that
//! lease was acknowledged or lapsed, so any event such a write misses in the new tables is one
//! the scan reads.
//!
//! Clocks: a process stops trusting its lease `MARGIN` before the expiry it wrote, measured on
//! its own monotonic clock from before the write; a replay takes a row as lapsed `MARGIN` after
//! that expiry on its wall clock. Machines whose clocks differ by less than twice `MARGIN`
//! agree on who is fenced.

use std::time::{Duration, Instant};
use uuid::Uuid;

use super::switch::Generations;
use super::ProjectionError;
use crate::application::now_ms;

/// How long a heartbeat row holds without renewal.
pub const LEASE: Duration = Duration::from_secs(10);
/// A process renews its row when less than this is left of it.
pub const RENEW_BEFORE: Duration = Duration::from_secs(5);
/// The allowance for clock skew between machines and for the time a heartbeat write takes.
pub const MARGIN: Duration = Duration::from_secs(2);
/// How long a replay waits for a live process (one that keeps renewing) to acknowledge a
/// layout change before it names it and gives up.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a replay re-reads the heartbeat rows while it waits.
const POLL: Duration = Duration::from_millis(200);

/// One process's heartbeat row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub process: Uuid,
    /// Who it is, for people: host and process id.
    pub label: String,
    /// The layout revision the process routes its projection writes by.
    pub revision: u64,
    /// When the row lapses unless renewed (milliseconds since the epoch).
    pub expires_at: i64,
}

impl Heartbeat {
    /// Whether a reader at `now` (wall clock, ms) takes the row as lapsed.
    pub fn lapsed(&self, now: i64) -> bool {
        now > self.expires_at + MARGIN.as_millis() as i64
    }
}

/// A renewed lease, as its process sees it.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub(super) beat: Heartbeat,
    /// Until when (this process's monotonic clock) its projection writes may rely on it.
    pub(super) trusted_until: Instant,
}

impl Held {
    /// The lease a heartbeat written at `started` (before the write was sent) gives.
    pub(super) fn new(beat: Heartbeat, started: Instant) -> Self {
        Self {
            beat,
            trusted_until: started + LEASE - MARGIN,
        }
    }

    pub(super) fn trusted(&self) -> bool {
        Instant::now() < self.trusted_until
    }

    /// Whether the row should be written again now: it names an older revision, or little
    /// of it is left.
    pub(super) fn due(&self, revision: u64) -> bool {
        self.beat.revision != revision
            || self.trusted_until.saturating_duration_since(Instant::now()) < RENEW_BEFORE - MARGIN
    }
}

/// Who this process is, in its heartbeat row: the host name and the process id.
pub fn label() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{host} pid {}", std::process::id())
}

/// Live processes that did not acknowledge a layout change in time.
#[derive(Debug)]
pub struct NotAcknowledged {
    pub wanted: u64,
    pub laggards: Vec<Heartbeat>,
    pub waited: Duration,
}

impl std::fmt::Display for NotAcknowledged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let laggards: Vec<_> = self
            .laggards
            .iter()
            .map(|b| format!("{} (revision {})", b.label, b.revision))
            .collect();
        write!(
            f,
            "{} did not acknowledge layout revision {} within {}s though their leases are \
             live (unable to open the new tables? their logs say why)",
            laggards.join(", "),
            self.wanted,
            self.waited.as_secs_f64()
        )
    }
}

impl std::error::Error for NotAcknowledged {}

/// Waits until every live process routes by `revision` or later; lapsed rows are fenced out
/// (and removed, unless their process renewed them meanwhile). Returns the processes fenced.
pub async fn acknowledged(
    generations: &dyn Generations,
    revision: u64,
    timeout: Duration,
) -> Result<Vec<Heartbeat>, AckError> {
    let started = Instant::now();
    let mut fenced = Vec::new();
    loop {
        let now = now_ms();
        let mut waiting = Vec::new();
        for beat in generations.heartbeats().await? {
            if beat.lapsed(now) {
                generations.forget(&beat).await?;
                if beat.revision < revision {
                    tracing::warn!(
                        process = %beat.label,
                        revision = beat.revision,
                        wanted = revision,
                        "a projector's layout lease lapsed before it acknowledged the change: \
                         fenced, it re-reads the layout before it projects again"
                    );
                    fenced.push(beat);
                }
            } else if beat.revision < revision {
                waiting.push(beat);
            }
        }
        if waiting.is_empty() {
            return Ok(fenced);
        }
        if started.elapsed() >= timeout {
            return Err(AckError::NotAcknowledged(NotAcknowledged {
                wanted: revision,
                laggards: waiting,
                waited: timeout,
            }));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AckError {
    #[error(transparent)]
    NotAcknowledged(NotAcknowledged),
    #[error(transparent)]
    Store(#[from] ProjectionError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::sqlite::SqliteGenerations;

    fn beat(revision: u64, expires_at: i64) -> Heartbeat {
        Heartbeat {
            process: Uuid::now_v7(),
            label: format!("test {revision}"),
            revision,
            expires_at,
        }
    }

    #[test]
    fn a_row_lapses_a_margin_after_its_expiry() {
        let row = beat(1, 10_000);
        assert!(!row.lapsed(10_000));
        assert!(!row.lapsed(10_000 + MARGIN.as_millis() as i64));
        assert!(row.lapsed(10_001 + MARGIN.as_millis() as i64));
    }

    #[test]
    fn a_lease_is_due_for_renewal_on_a_new_revision_or_near_its_end() {
        let fresh = Held::new(beat(3, 0), Instant::now());
        assert!(fresh.trusted());
        assert!(!fresh.due(3));
        assert!(fresh.due(4));
        let old = Held::new(beat(3, 0), Instant::now() - (LEASE - RENEW_BEFORE));
        assert!(old.due(3));
        let lapsed = Held::new(beat(3, 0), Instant::now() - LEASE);
        assert!(!lapsed.trusted());
    }

    #[tokio::test]
    async fn a_replay_passes_acknowledged_and_lapsed_rows_and_names_a_live_laggard() {
        let dir = tempfile::tempdir().expect("temp dir");
        let generations = SqliteGenerations::open(dir.path()).expect("open");
        let now = now_ms();
        let current = beat(5, now + 10_000);
        let lapsed = beat(2, now - 60_000);
        generations.beat(&current).await.expect("beat");
        generations.beat(&lapsed).await.expect("beat");

        let fenced = acknowledged(&generations, 5, ACK_TIMEOUT)
            .await
            .expect("acknowledged");
        assert_eq!(fenced, vec![lapsed.clone()]);
        let rows = generations.heartbeats().await.expect("rows");
        assert_eq!(rows, vec![current.clone()], "the lapsed row is gone");

        // A row renewed after it was read is kept: `forget` removes only what it saw.
        let mut renewed = current.clone();
        renewed.expires_at += 1;
        generations.beat(&renewed).await.expect("renew");
        generations.forget(&current).await.expect("forget");
        assert_eq!(
            generations.heartbeats().await.expect("rows"),
            vec![renewed.clone()]
        );

        // A live row that names an older revision holds the replay back, then is named.
        let error = acknowledged(&generations, 6, Duration::from_millis(300))
            .await
            .expect_err("a live laggard");
        let AckError::NotAcknowledged(error) = error else {
            panic!("not a laggard: {error}");
        };
        assert_eq!(error.laggards, vec![renewed.clone()]);
        assert!(error.to_string().contains(&renewed.label), "{error}");
    }
}
