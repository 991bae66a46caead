//! Replay: rebuilds projections from every stored event into a fresh generation of tables while
//! the API keeps serving the old ones, then switches readers over and drops the old tables.
//!
//! Why nothing is lost or applied twice: once the rebuild is recorded in the layout, every live
//! projector applies each new event to the new generation as well; the scan of the store starts
//! only when every live process has acknowledged that layout or been fenced (`lease`), so an
//! event is either older than the scan (and the scan reads it) or delivered afterwards (and a
//! live projector applies it). Both may happen;
//! the per-aggregate checkpoints make the second a no-op, and a projector that meets an event
//! before the scan reached its aggregate fills the gap from the store. Progress (the scan's
//! cursor) is saved after each applied page, so an interrupted rebuild resumes where it was.

mod control;

pub use control::{RebuildControl, RebuildState, RebuildStatus};

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::layout::{Layout, Phase, ProjectionName, Rebuild};
use super::lease::{self, AckError};
use super::runner::ProjectionRunner;
use super::switch::Switchboard;
use super::{Cause, ProjectionStore};
use crate::application::now_ms;
use crate::store::EventStore;

#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// What to rebuild; empty resumes the rebuild in progress.
    pub projections: Vec<ProjectionName>,
    /// Events read from the store per page.
    pub page_size: usize,
    /// Pause between pages, to leave room for live traffic.
    pub throttle: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            projections: Vec::new(),
            page_size: 5_000,
            throttle: Duration::ZERO,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The request cannot be served as it stands (another rebuild runs, nothing to resume...).
    #[error("{0}")]
    Refused(String),
    /// The event store or the projection tables failed; the rebuild can be resumed.
    #[error(transparent)]
    Failed(Failure),
}

/// What the rebuild was doing when a store failed it, and the store's error as `source()`.
#[derive(Debug, thiserror::Error)]
#[error("the projection rebuild failed while {doing}")]
pub struct Failure {
    doing: &'static str,
    #[source]
    cause: Cause,
}

fn failed<E: Into<Cause>>(doing: &'static str) -> impl FnOnce(E) -> ReplayError {
    move |cause| {
        ReplayError::Failed(Failure {
            doing,
            cause: cause.into(),
        })
    }
}

/// An error with its causes, as one line (for the rebuild's status and the log).
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// How often progress is saved (and reported) at most.
const SAVE_EVERY: Duration = Duration::from_millis(500);

/// Rebuilds `options.projections` (or resumes the rebuild in progress), calling `report` as it
/// goes; returns the finished rebuild.
pub async fn replay(
    store: Arc<dyn EventStore>,
    board: &Switchboard,
    options: ReplayOptions,
    mut report: impl FnMut(&Rebuild) + Send,
) -> Result<Rebuild, ReplayError> {
    let generations = board.generations();
    let mut layout = load(board).await?;
    let wanted = sorted(options.projections.clone());
    let now = now_ms();
    let mut rebuild = match layout.building.clone() {
        Some(mut running) if wanted.is_empty() || wanted == running.projections => {
            tracing::info!(
                generation = running.generation,
                events_done = running.events_done,
                "resuming the projection rebuild"
            );
            running.resumed_at = now;
            running.resumed_at_events = running.events_done;
            running
        }
        Some(running) => {
            return Err(ReplayError::Refused(format!(
                "a rebuild of {} (generation {}) is in progress: resume it first, or abandon it",
                names(&running.projections),
                running.generation
            )))
        }
        None if wanted.is_empty() => {
            return Err(ReplayError::Refused(
                "no rebuild is in progress: name the projections to rebuild".into(),
            ))
        }
        None => {
            let generation = layout.next_generation();
            // The tables exist before any projector is told about them.
            open(board, generation, &wanted).await?;
            Rebuild::new(generation, wanted, store.count_events().await.ok(), now)
        }
    };
    layout.building = Some(rebuild.clone());
    save(board, &mut layout).await?;
    report(&rebuild);
    // Every live projector writes the new generation too before the scan reads the store.
    acknowledged(board, &layout).await?;

    let target = open(board, rebuild.generation, &rebuild.projections).await?;
    let runner = ProjectionRunner::new(store.clone(), target);
    let mut saved = Instant::now();
    loop {
        let page = store
            .read_all(rebuild.cursor.clone(), options.page_size)
            .await
            .map_err(failed("reading the stored events"))?;
        let count = page.events.len() as u64;
        runner
            .handle(page.events)
            .await
            .map_err(failed("applying stored events to the new tables"))?;
        rebuild.events_done += count;
        rebuild.updated_at = now_ms();
        let Some(next) = page.next else { break };
        rebuild.cursor = Some(next);
        if saved.elapsed() >= SAVE_EVERY {
            // Writes go on meanwhile: the total moves too.
            if let Ok(total) = store.count_events().await {
                rebuild.events_total = Some(total);
            }
            layout.building = Some(rebuild.clone());
            save(board, &mut layout).await?;
            report(&rebuild);
            saved = Instant::now();
        }
        if !options.throttle.is_zero() {
            tokio::time::sleep(options.throttle).await;
        }
    }

    // Caught up: switch readers and live projectors to the new generation.
    let before = layout.clone();
    rebuild.phase = Phase::Done;
    rebuild.cursor = None;
    rebuild.updated_at = now_ms();
    for projection in &rebuild.projections {
        layout.active.insert(*projection, rebuild.generation);
    }
    layout.building = None;
    layout.last = Some(rebuild.clone());
    save(board, &mut layout).await?;
    report(&rebuild);
    tracing::info!(
        generation = rebuild.generation,
        events = rebuild.events_done,
        "projections rebuilt and switched over"
    );

    // Drop the old tables once no live process reads or writes them any more.
    before_retiring(board, &layout).await?;
    for projection in &rebuild.projections {
        let generation = before.generation_of(*projection);
        generations
            .retire(*projection, generation)
            .await
            .map_err(failed("dropping the replaced tables"))?;
    }
    Ok(rebuild)
}

/// Stops the rebuild in progress and drops its tables.
pub async fn abandon(board: &Switchboard) -> Result<Option<Rebuild>, ReplayError> {
    let mut layout = load(board).await?;
    let Some(rebuild) = layout.building.take() else {
        return Ok(None);
    };
    save(board, &mut layout).await?;
    before_retiring(board, &layout).await?;
    for projection in &rebuild.projections {
        board
            .generations()
            .retire(*projection, rebuild.generation)
            .await
            .map_err(failed("dropping the abandoned tables"))?;
    }
    Ok(Some(rebuild))
}

/// The tables of `projections` in `generation` (created if missing), as one target.
async fn open(
    board: &Switchboard,
    generation: u32,
    projections: &[ProjectionName],
) -> Result<Arc<dyn ProjectionStore>, ReplayError> {
    let generations = board.generations();
    for projection in projections {
        generations
            .open(*projection, generation, true)
            .await
            .map_err(failed("creating the new tables"))?;
    }
    let parts: Vec<_> = projections.iter().map(|p| (*p, generation)).collect();
    generations
        .target(&parts)
        .await
        .map_err(failed("opening the new tables"))
}

/// Writes the layout (compare-and-set) and routes this process by it at once.
async fn save(board: &Switchboard, layout: &mut Layout) -> Result<(), ReplayError> {
    let generations = board.generations();
    let written = generations
        .save_layout(layout)
        .await
        .map_err(failed("saving the projection layout"))?;
    let mut ours = layout.clone();
    ours.revision += 1;
    // A write whose reply was lost may have been retried and refused by its own condition:
    // it stands if the stored record is exactly ours.
    if !written && load(board).await? != ours {
        return Err(ReplayError::Refused(
            "the projection layout was changed by another process (another rebuild?); \
             this rebuild stops here and can be resumed"
                .into(),
        ));
    }
    *layout = ours;
    board
        .changed()
        .await
        .map_err(failed("routing by the new layout"))?;
    Ok(())
}

/// Waits until every live process routes by `layout` (or has been fenced); a process that keeps
/// its lease but does not follow stops the rebuild, named, and the rebuild can be resumed.
async fn acknowledged(board: &Switchboard, layout: &Layout) -> Result<(), ReplayError> {
    match followed(board, layout).await {
        Err(AckError::NotAcknowledged(laggards)) => Err(ReplayError::Refused(format!(
            "{laggards}; this rebuild stops here and can be resumed"
        ))),
        Err(AckError::Store(error)) => Err(failed(WAITING)(error)),
        Ok(()) => Ok(()),
    }
}

/// Waits as `acknowledged` does before tables are dropped, but a laggard does not keep them:
/// the switch has been made, and a process still writing the dropped tables fails loudly
/// (and is reported stalled) rather than filling tables nobody reads.
async fn before_retiring(board: &Switchboard, layout: &Layout) -> Result<(), ReplayError> {
    match followed(board, layout).await {
        Err(AckError::NotAcknowledged(laggards)) => {
            tracing::warn!(%laggards, "dropping the replaced tables anyway");
            Ok(())
        }
        Err(AckError::Store(error)) => Err(failed(WAITING)(error)),
        Ok(()) => Ok(()),
    }
}

const WAITING: &str = "waiting for live projectors to follow";

/// The handshake itself, logged when every live projector follows.
async fn followed(board: &Switchboard, layout: &Layout) -> Result<(), AckError> {
    let started = Instant::now();
    let fenced =
        lease::acknowledged(&*board.generations(), layout.revision, lease::ACK_TIMEOUT).await?;
    tracing::info!(
        revision = layout.revision,
        fenced = fenced.len(),
        waited_ms = started.elapsed().as_millis() as u64,
        "every live projector routes by the new layout"
    );
    Ok(())
}

async fn load(board: &Switchboard) -> Result<Layout, ReplayError> {
    board
        .generations()
        .load_layout()
        .await
        .map_err(failed("reading the projection layout"))
}

/// Projections in their canonical order, each once (as a rebuild records them).
fn sorted(mut projections: Vec<ProjectionName>) -> Vec<ProjectionName> {
    projections.sort();
    projections.dedup();
    projections
}

fn names(projections: &[ProjectionName]) -> String {
    let names: Vec<_> = projections.iter().map(|p| p.as_str()).collect();
    names.join(", ")
}
