//! Start-up catch-up: before an instance calls itself ready, the projections it serves are
//! brought level with the store. A projection file deleted or cut short (a crash before its
//! last writes reached the disk, an old copy restored) is refilled from the stored events through
//! the live projector's own runner, so checkpoints skip what is there and gaps are filled.
//! Whether the whole store must be read for that is the [`Coverage`] port's call.

pub mod dynamodb;

use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

use super::layout::Layout;
use super::runner::ProjectionRunner;
use super::switch::Switchboard;
use super::ProjectionError;
use crate::store::EventStore;

/// Events read from the store per page of a catch-up.
pub const PAGE_SIZE: usize = 5_000;
/// How often progress goes to the log while catching up.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// The longest pause before trying again after the store or the projections failed.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What a storage technology can tell about its projection tables without reading the store.
#[async_trait]
pub trait Coverage: Send + Sync + 'static {
    /// `Some(token)` naming the tables that serve under `layout` when a catch-up must read the
    /// store; `None` when the last finished catch-up covered exactly these tables, so the live
    /// path (durable writes before the outbox row goes) has kept them complete since.
    async fn needed(&self, layout: &Layout) -> Result<Option<String>, ProjectionError>;

    /// Records that a catch-up over the tables `token` names ran to its end.
    async fn covered(&self, token: &str) -> Result<(), ProjectionError>;
}

/// The embedded store's answer: always read the store. A projection file is one `rm` or one
/// restored copy away from missing rows while its checkpoints look fine, and nothing outside the
/// file could tell; reading the local store is cheap next to that (see the README's figure).
pub struct EveryStart;

#[async_trait]
impl Coverage for EveryStart {
    async fn needed(&self, _layout: &Layout) -> Result<Option<String>, ProjectionError> {
        Ok(Some(String::new()))
    }

    async fn covered(&self, _token: &str) -> Result<(), ProjectionError> {
        Ok(())
    }
}

/// Where an instance's catch-up stands; `/health/ready` is 503 until it is `Done`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    /// Finding out whether the store must be read.
    Checking,
    /// Reading the store: events read so far, of about `total` (when the store can tell).
    Reading { events: u64, total: Option<u64> },
    /// Level with the store as of start-up; the live projector keeps it so.
    Done { events: u64, seconds: f64 },
}

/// A handle on one instance's catch-up, for readiness and tests.
#[derive(Clone)]
pub struct CatchUpStatus(watch::Receiver<Progress>);

impl CatchUpStatus {
    /// A status that is done already (for a service that has nothing to catch up).
    pub fn done() -> Self {
        let (_, receiver) = watch::channel(Progress::Done {
            events: 0,
            seconds: 0.0,
        });
        Self(receiver)
    }

    pub fn progress(&self) -> Progress {
        *self.0.borrow()
    }

    pub fn is_done(&self) -> bool {
        matches!(self.progress(), Progress::Done { .. })
    }

    /// Waits until the catch-up is done (or its task is gone).
    pub async fn wait(&mut self) -> Progress {
        let _ = self
            .0
            .wait_for(|p| matches!(p, Progress::Done { .. }))
            .await;
        self.progress()
    }
}

/// Starts the catch-up in the background; it retries with backoff until it has finished.
pub fn spawn(
    store: Arc<dyn EventStore>,
    projections: Arc<Switchboard>,
    coverage: Arc<dyn Coverage>,
) -> (CatchUpStatus, tokio::task::JoinHandle<()>) {
    let (sender, receiver) = watch::channel(Progress::Checking);
    let task = tokio::spawn(async move {
        let mut cursor = None;
        let mut backoff = Duration::from_millis(100);
        let started = Instant::now();
        loop {
            match run(
                &store,
                &projections,
                &*coverage,
                &sender,
                &mut cursor,
                started,
            )
            .await
            {
                Ok(()) => return,
                Err(error) => {
                    tracing::warn!(%error, retry_in = ?backoff, "projection catch-up failed; trying again");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    });
    (CatchUpStatus(receiver), task)
}

/// One attempt, resuming at `cursor` (the page after the last one applied by an earlier try).
async fn run(
    store: &Arc<dyn EventStore>,
    projections: &Switchboard,
    coverage: &dyn Coverage,
    progress: &watch::Sender<Progress>,
    cursor: &mut Option<String>,
    started: Instant,
) -> Result<(), ProjectionError> {
    let layout = projections.routing().await?.layout.clone();
    let Some(token) = coverage.needed(&layout).await? else {
        tracing::info!("projections cover the stored events; nothing to catch up");
        progress.send_replace(Progress::Done {
            events: 0,
            seconds: started.elapsed().as_secs_f64(),
        });
        return Ok(());
    };
    let total = store.count_events().await.ok();
    let mut events = match *progress.borrow() {
        Progress::Reading { events, .. } => events,
        _ => 0,
    };
    tracing::info!(
        stored = ?total,
        "projections catching up from the store (checkpoints skip what they hold)"
    );
    let mut logged = Instant::now();
    loop {
        let page = store
            .read_all(cursor.clone(), PAGE_SIZE)
            .await
            .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
        let read = page.events.len() as u64;
        // Every generation a live projector writes: the serving ones and one being rebuilt.
        let routing = projections.write_routing().await?;
        for target in routing.targets() {
            ProjectionRunner::new(store.clone(), target.clone())
                .handle(page.events.clone())
                .await?;
        }
        events += read;
        progress.send_replace(Progress::Reading { events, total });
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            let seconds = started.elapsed().as_secs_f64();
            tracing::info!(
                events,
                stored = ?total,
                events_per_second = (events as f64 / seconds.max(1e-9)).round(),
                "projection catch-up in progress"
            );
        }
        match page.next {
            Some(next) => *cursor = Some(next),
            None => break,
        }
    }
    coverage.covered(&token).await?;
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        events,
        seconds,
        events_per_second = (events as f64 / seconds.max(1e-9)).round(),
        "projections caught up with the store"
    );
    progress.send_replace(Progress::Done { events, seconds });
    Ok(())
}
