//! Whether the live projector keeps up. The projector reports each batch it takes and how it
//! ended; a watcher looks, every second, at what waits for it (this instance's outbox, the
//! broker's queue, a batch in hand, a batch that failed). Work that has waited `--projector-stall-seconds` with no batch
//! applied is a stall: `/health/ready` answers 503 with the reason, `inventory_projector_stalled`
//! is 1, and one error line says so. The next batch applied ends it (one line again), as does
//! nothing seen waiting for as long (a message the broker dead-lettered leaves nothing to wait).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

use crate::bus::EventBus;
use crate::store::EventStore;

/// How often the watcher looks (more often when the limit is shorter than 4 s).
const TICK: Duration = Duration::from_secs(1);

/// What one look at the projector found changed.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Stalled(String),
    Recovered(String),
}

/// The projector as the watcher sees it; every method takes the time it happens at.
#[derive(Debug, Default)]
struct State {
    /// Batches being applied right now.
    in_hand: usize,
    /// Batches failed since the last one applied, and the last error.
    failures: u64,
    last_error: Option<String>,
    /// What waited at the last look: events in the outbox, messages ready in the queue.
    outbox: u64,
    queued: u64,
    /// Since the last batch applied: when work was first seen waiting, and last seen.
    waiting_since: Option<Instant>,
    last_seen: Option<Instant>,
    /// Set while stalled: the reason readiness gives.
    stalled: Option<String>,
}

impl State {
    fn seen_waiting(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
        self.last_seen = Some(now);
    }

    fn taking(&mut self, now: Instant) {
        self.in_hand += 1;
        self.seen_waiting(now);
    }

    fn failed(&mut self, error: String, now: Instant) {
        self.in_hand = self.in_hand.saturating_sub(1);
        self.failures += 1;
        self.last_error = Some(error);
        self.seen_waiting(now);
    }

    /// A batch applied: progress, so whatever waited has not waited in vain.
    fn applied(&mut self) -> Option<Change> {
        self.in_hand = self.in_hand.saturating_sub(1);
        self.failures = 0;
        self.last_error = None;
        self.waiting_since = None;
        self.last_seen = None;
        self.stalled.take().map(|_| {
            Change::Recovered("the projector applied a batch; it is progressing again".into())
        })
    }

    /// One look, with `outbox` events waiting there and `queued` messages ready in the
    /// broker's queue: how long work has waited without progress, and what changed.
    fn check(
        &mut self,
        (outbox, queued): (u64, u64),
        limit: Duration,
        now: Instant,
    ) -> (Duration, Option<Change>) {
        self.outbox = outbox;
        self.queued = queued;
        if outbox > 0 || queued > 0 || self.in_hand > 0 {
            self.seen_waiting(now);
        }
        // Evidence as old as the limit is stale: nothing waits any more (nor was applied).
        if self
            .last_seen
            .is_some_and(|seen| now.duration_since(seen) >= limit)
        {
            self.waiting_since = None;
            self.last_seen = None;
        }
        let waited = self
            .waiting_since
            .map_or(Duration::ZERO, |since| now.duration_since(since));
        if waited < limit || self.waiting_since.is_none() {
            let change = self.stalled.take().map(|_| {
                Change::Recovered(
                    "nothing has waited for the projector for as long as the limit; \
                     it is no longer stalled"
                        .into(),
                )
            });
            return (waited, change);
        }
        let reason = self.reason(waited);
        let change = self
            .stalled
            .is_none()
            .then(|| Change::Stalled(reason.clone()));
        self.stalled = Some(reason);
        (waited, change)
    }

    fn reason(&self, waited: Duration) -> String {
        let mut what = Vec::new();
        if self.outbox > 0 {
            what.push(format!("{} events wait in the outbox", self.outbox));
        }
        if self.queued > 0 {
            what.push(format!("{} messages wait in the queue", self.queued));
        }
        if self.in_hand > 0 {
            what.push(format!("{} batch(es) in hand", self.in_hand));
        }
        if self.failures > 0 {
            what.push(format!("{} batch(es) failed", self.failures));
        }
        let mut reason = format!(
            "projector stalled: no batch applied for {} s while work waits ({})",
            waited.as_secs(),
            what.join(", ")
        );
        if let Some(error) = &self.last_error {
            reason.push_str(&format!("; last error: {error}"));
        }
        reason
    }
}

/// A handle on the live projector's progress, shared by the projector, the watcher and
/// readiness. A limit of zero turns the watch off.
#[derive(Clone)]
pub struct ProjectorHealth {
    state: Arc<Mutex<State>>,
    limit: Duration,
}

impl ProjectorHealth {
    pub fn new(limit: Duration) -> Self {
        Self {
            state: Arc::default(),
            limit,
        }
    }

    /// The projector took a batch.
    pub fn taking(&self) {
        crate::sync::lock(&self.state).taking(Instant::now());
    }

    /// The batch it took is applied.
    pub fn applied(&self) {
        let change = crate::sync::lock(&self.state).applied();
        if change.is_some() {
            metrics::gauge!(crate::metrics::PROJECTOR_STALLED).set(0.0);
            metrics::gauge!(crate::metrics::PROJECTOR_WAITING).set(0.0);
        }
        report(change);
    }

    /// The batch it took failed (it comes again).
    pub fn failed(&self, error: &(dyn std::error::Error + 'static)) {
        let error = crate::bus::chain(error);
        crate::sync::lock(&self.state).failed(error, Instant::now());
    }

    /// Why the projector is stalled, while it is.
    pub fn stalled(&self) -> Option<String> {
        crate::sync::lock(&self.state).stalled.clone()
    }

    fn check(&self, waiting: (u64, u64)) {
        if self.limit.is_zero() {
            return;
        }
        let (waited, change) =
            crate::sync::lock(&self.state).check(waiting, self.limit, Instant::now());
        let stalled = matches!(change, Some(Change::Stalled(_))) || self.stalled().is_some();
        metrics::gauge!(crate::metrics::PROJECTOR_STALLED).set(if stalled { 1.0 } else { 0.0 });
        metrics::gauge!(crate::metrics::PROJECTOR_WAITING).set(waited.as_secs_f64());
        report(change);
    }

    /// Looks at the projector consuming `queue` every second (or a quarter of the limit)
    /// until aborted.
    pub fn watch(
        &self,
        store: Arc<dyn EventStore>,
        bus: Arc<dyn EventBus>,
        queue: &str,
    ) -> JoinHandle<()> {
        let queue = queue.to_owned();
        let health = self.clone();
        let tick = TICK.min(self.limit / 4).max(Duration::from_millis(50));
        tokio::spawn(async move {
            if health.limit.is_zero() {
                return;
            }
            let mut ticks = tokio::time::interval(tick);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // An outbox that cannot be read says nothing either way; the other evidence
                // (batches in hand, failures) still counts.
                let outbox = match store.outbox_stats().await {
                    Ok((depth, _)) => depth,
                    Err(error) => {
                        tracing::debug!(%error, "cannot measure the outbox for the stall watch");
                        crate::sync::lock(&health.state).outbox
                    }
                };
                // The same for a broker that cannot answer now (it is not ready then anyway).
                let queued = match bus.queued(&queue).await {
                    Some(queued) => queued,
                    None => crate::sync::lock(&health.state).queued,
                };
                health.check((outbox, queued));
            }
        })
    }
}

/// Once per change: a stall is an error, its end a warning.
fn report(change: Option<Change>) {
    match change {
        Some(Change::Stalled(reason)) => tracing::error!("{reason}"),
        Some(Change::Recovered(reason)) => tracing::warn!("projector stall over: {reason}"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(30);

    fn at(start: Instant, seconds: u64) -> Instant {
        start + Duration::from_secs(seconds)
    }

    #[test]
    fn an_idle_projector_with_nothing_waiting_never_stalls() {
        let (mut state, t0) = (State::default(), Instant::now());
        for s in [0, 31, 100, 1000] {
            assert_eq!(
                state.check((0, 0), LIMIT, at(t0, s)),
                (Duration::ZERO, None)
            );
        }
        assert!(state.stalled.is_none());
    }

    #[test]
    fn events_waiting_in_the_outbox_with_no_batch_applied_stall_once_then_recover_on_progress() {
        let (mut state, t0) = (State::default(), Instant::now());
        assert_eq!(state.check((5, 0), LIMIT, at(t0, 0)).1, None);
        state.taking(at(t0, 1));
        state.failed("throttled".into(), at(t0, 2));
        assert_eq!(state.check((5, 0), LIMIT, at(t0, 29)).1, None, "not yet");
        let (waited, change) = state.check((5, 0), LIMIT, at(t0, 30));
        assert_eq!(waited, LIMIT);
        let Some(Change::Stalled(reason)) = change else {
            panic!("stalled at the limit: {change:?}");
        };
        assert!(
            reason.contains("5 events wait in the outbox") && reason.contains("throttled"),
            "{reason}"
        );
        // Said once, however often it is looked at.
        assert_eq!(state.check((5, 0), LIMIT, at(t0, 31)).1, None);
        assert!(state.stalled.is_some());
        state.taking(at(t0, 40));
        assert!(matches!(state.applied(), Some(Change::Recovered(_))));
        assert!(state.stalled.is_none());
        // Work keeps flowing with progress: no stall however long it lasts.
        for s in (41..200).step_by(10) {
            state.taking(at(t0, s));
            assert_eq!(state.check((3, 0), LIMIT, at(t0, s + 5)).1, None);
            assert_eq!(state.applied(), None);
        }
    }

    #[test]
    fn messages_ready_in_the_queue_that_no_batch_takes_stall() {
        // A consumer that takes nothing: no batch in hand, none failed, the queue fills.
        let (mut state, t0) = (State::default(), Instant::now());
        assert_eq!(state.check((0, 4), LIMIT, at(t0, 0)).1, None);
        assert!(matches!(
            state.check((0, 9), LIMIT, at(t0, 30)).1,
            Some(Change::Stalled(reason)) if reason.contains("9 messages wait in the queue")
        ));
    }

    #[test]
    fn a_batch_in_hand_that_never_returns_stalls() {
        let (mut state, t0) = (State::default(), Instant::now());
        state.taking(at(t0, 0));
        assert_eq!(state.check((0, 0), LIMIT, at(t0, 10)).1, None);
        assert!(matches!(
            state.check((0, 0), LIMIT, at(t0, 30)).1,
            Some(Change::Stalled(reason)) if reason.contains("1 batch(es) in hand")
        ));
    }

    #[test]
    fn a_stall_whose_evidence_is_gone_for_as_long_as_the_limit_ends() {
        // A broker's consumer: deliveries failed until they were dead-lettered, then nothing.
        let (mut state, t0) = (State::default(), Instant::now());
        for s in [0, 1, 3, 7, 15] {
            state.taking(at(t0, s));
            state.failed("unavailable".into(), at(t0, s));
        }
        assert!(matches!(
            state.check((0, 0), LIMIT, at(t0, 31)).1,
            Some(Change::Stalled(_))
        ));
        assert_eq!(
            state.check((0, 0), LIMIT, at(t0, 44)).1,
            None,
            "still stalled"
        );
        assert!(matches!(
            state.check((0, 0), LIMIT, at(t0, 45)).1,
            Some(Change::Recovered(_))
        ));
        assert_eq!(
            state.check((0, 0), LIMIT, at(t0, 100)),
            (Duration::ZERO, None)
        );
    }
}
