//! The two phases of a batch for one projector, whatever its rows: first where each
//! aggregate's row stands (known in this batch, hinted, or read) and whether its events reach a
//! gap; then, up to the batch's earliest gap, each aggregate's events written by the projector's
//! own `write`, several aggregates at once.

use futures::{StreamExt, TryStreamExt};
use std::collections::BTreeSet;
use uuid::Uuid;

use super::hints::{Cached, Rows};
use crate::projection::batch::{plan, streams, Stream};
use crate::projection::layout::ProjectionName;
use crate::projection::ProjectionError;
use crate::store::EventEnvelope;

/// What one projector made of one aggregate's events in a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Progress {
    /// Whether the projector's row (or rows) changed.
    pub(super) changed: bool,
    /// The batch index of the first event it could not apply, and its checkpoint, when it
    /// stopped at a gap.
    pub(super) gap: Option<(usize, u64)>,
}

/// How many aggregates of one batch a projector reads or writes at once.
pub(super) const ROWS_IN_FLIGHT: usize = 16;

/// One aggregate's events in a batch, and where its projector's row stood before them.
pub(super) struct Pending<'a, V> {
    pub(super) id: Uuid,
    pub(super) stream: Stream<'a>,
    pub(super) start: Option<Cached<V>>,
    pub(super) gap: Option<(usize, u64)>,
}

/// Where one aggregate's row stands before a batch, and whether its events reach a gap: a
/// row known in this batch decides; a remembered hint (or, for an aggregate's first event,
/// the hint that there is no row yet) is kept if its plan needs no read; otherwise `read`.
async fn resolve<V>(
    start: Option<Cached<V>>,
    stream: &Stream<'_>,
    last: fn(&V) -> u64,
    read: impl std::future::Future<Output = Result<Option<V>, ProjectionError>>,
) -> Result<(Option<Cached<V>>, Option<(usize, u64)>), ProjectionError> {
    let first = stream.first().map_or(0, |(_, e)| e.sequence_number);
    match start {
        Some(Cached::Known(row)) => {
            let gap = plan(row.as_ref().map_or(0, last), stream).gap;
            return Ok((Some(Cached::Known(row)), gap));
        }
        Some(Cached::Remembered(row)) if !plan(last(&row), stream).needs_read() => {
            return Ok((Some(Cached::Remembered(row)), None));
        }
        None if first == 1 && !plan(0, stream).needs_read() => return Ok((None, None)),
        _ => {}
    }
    let row = read.await?;
    let gap = plan(row.as_ref().map_or(0, last), stream).gap;
    Ok((Some(Cached::Known(row)), gap))
}

/// The first phase of a batch for one projector: each aggregate's starting row (reads only
/// where nothing known or hinted will do, several at once) and its gap, if any.
pub(super) async fn resolve_all<'a, V, F>(
    events: &'a [EventEnvelope],
    projector: ProjectionName,
    rows: &mut Rows<V>,
    last: fn(&V) -> u64,
    read: impl Fn(Uuid) -> F,
) -> Result<Vec<Pending<'a, V>>, ProjectionError>
where
    V: Clone,
    F: std::future::Future<Output = Result<Option<V>, ProjectionError>>,
{
    let mut work = Vec::new();
    for (id, stream) in streams(events, projector) {
        let start = rows.get(&id);
        let read = read(id);
        work.push(async move {
            let (start, gap) = resolve(start, &stream, last, read).await?;
            Ok::<_, ProjectionError>(Pending {
                id,
                stream,
                start,
                gap,
            })
        });
    }
    futures::stream::iter(work)
        .buffered(ROWS_IN_FLIGHT)
        .try_collect()
        .await
}

/// The second phase: each aggregate's events before `cutoff` (the batch's earliest gap)
/// written by `write`, several aggregates at once. Returns the aggregates whose rows changed.
pub(super) async fn write_all<'a, V, F>(
    rows: &mut Rows<V>,
    pending: Vec<Pending<'a, V>>,
    cutoff: usize,
    write: impl Fn(Uuid, Stream<'a>, Option<Cached<V>>) -> F,
) -> Result<BTreeSet<Uuid>, ProjectionError>
where
    V: Clone,
    F: std::future::Future<Output = Result<(Uuid, Option<V>, Progress), ProjectionError>>,
{
    let mut work = Vec::new();
    for Pending {
        id, stream, start, ..
    } in pending
    {
        let stream: Stream<'a> = stream.into_iter().filter(|(i, _)| *i < cutoff).collect();
        if stream.is_empty() {
            rows.put_back(id, start);
        } else {
            work.push(write(id, stream, start));
        }
    }
    let done: Vec<(Uuid, Option<V>, Progress)> = futures::stream::iter(work)
        .buffer_unordered(ROWS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut changed = BTreeSet::new();
    for (id, row, progress) in done {
        if progress.gap.is_some() {
            // Only a row that went back (a table emptied under us) can open a gap now.
            return Err(ProjectionError::Unavailable(format!(
                "the projection row of {id} moved back during a batch; retry"
            )));
        }
        if progress.changed {
            changed.insert(id);
        }
        rows.insert(id, row);
    }
    Ok(changed)
}
