//! The outbox relay: publishes committed events and forgets an outbox row only after the bus
//! confirmed it. A crash between the two publishes the row again (at-least-once); downstream
//! checkpoints absorb the duplicate. Several relays may run at once for the same reason.
//! The removal of one published batch overlaps the publication of the next (at most one is in
//! flight), so the bus does not wait for the store's durable delete between batches.
//!
//! The relay may linger before publishing a batch that is not full, until its oldest event is
//! `linger` old, so that the commits right behind it go out in the same batch: the projectors
//! then fold them into one write per row (group commit; no event waits longer than `linger`).
//! On the embedded store that only adds latency (a write is cheap), so it lingers there for
//! 0 ms; on DynamoDB every request is billed, and a few milliseconds of projection lag buy
//! fewer of them (see `--relay-linger-ms`). A full batch goes at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::EventBus;
use crate::store::EventStore;

const BATCH: usize = 256;

/// Runs until `shutdown` turns true and the outbox is empty (or `drain_deadline` has passed
/// since shutdown began).
pub async fn run(
    store: Arc<dyn EventStore>,
    bus: Arc<dyn EventBus>,
    mut shutdown: watch::Receiver<bool>,
    drain_deadline: Duration,
    linger: Duration,
) {
    // How long the batch now pending has waited for company.
    let mut lingered = Duration::ZERO;
    let mut failures: u32 = 0;
    let mut stats_due = tokio::time::Instant::now();
    let mut stop_by: Option<tokio::time::Instant> = None;
    // The batch being removed from the outbox, by id, while the next one is published.
    let mut removing: Option<(HashSet<String>, JoinHandle<()>)> = None;
    loop {
        if *shutdown.borrow() && stop_by.is_none() {
            stop_by = Some(tokio::time::Instant::now() + drain_deadline);
        }
        if stop_by.is_some_and(|deadline| tokio::time::Instant::now() >= deadline) {
            tracing::warn!(
                "outbox relay stopped before draining; the rest is published on restart"
            );
            finish(removing).await;
            return;
        }
        if tokio::time::Instant::now() >= stats_due {
            stats_due = tokio::time::Instant::now() + STATS_EVERY;
            record_outbox_stats(&*store, &*bus).await;
        }
        let in_flight = removing.as_ref().map_or(0, |(ids, _)| ids.len());
        let pending = match store.outbox_pending(BATCH + in_flight).await {
            Ok(pending) => pending
                .into_iter()
                .filter(|entry| {
                    !removing
                        .as_ref()
                        .is_some_and(|(ids, _)| ids.contains(&entry.id))
                })
                .take(BATCH)
                .collect::<Vec<_>>(),
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "cannot read the outbox");
                tokio::time::sleep(backoff(failures)).await;
                continue;
            }
        };
        if pending.is_empty() {
            if removing.is_some() {
                finish(removing.take()).await;
                continue;
            }
            if stop_by.is_some() {
                return;
            }
            tokio::select! {
                _ = store.outbox_wait() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        // At most `linger` in all for one batch, whatever the events' clocks say.
        if let Some(wait) = linger_left(&pending, linger) {
            let wait = wait.min(linger.saturating_sub(lingered));
            if !wait.is_zero() && pending.len() < BATCH && stop_by.is_none() {
                lingered += wait;
                tokio::time::sleep(wait).await;
                continue;
            }
        }
        lingered = Duration::ZERO;
        let envelopes: Vec<_> = pending.iter().map(|entry| entry.envelope.clone()).collect();
        if let Err(error) = bus.publish(&envelopes).await {
            failures += 1;
            let error = super::chain(&error);
            tracing::warn!(%error, pending = pending.len(), "publish failed; will retry");
            tokio::time::sleep(backoff(failures)).await;
            continue;
        }
        failures = 0;
        metrics::counter!(crate::metrics::PUBLISHED).increment(pending.len() as u64);
        finish(removing.take()).await;
        let ids: Vec<String> = pending.iter().map(|entry| entry.id.clone()).collect();
        let task = {
            let store = store.clone();
            let ids = ids.clone();
            tokio::spawn(async move {
                if let Err(error) = store.outbox_remove(&ids).await {
                    // The events were published; they will be published again, harmlessly.
                    tracing::warn!(%error, "cannot clear published outbox rows");
                }
            })
        };
        removing = Some((ids.into_iter().collect(), task));
    }
}

/// How much longer a batch that is not full may wait for company: until its oldest event
/// (by its commit timestamp) is `linger` old. `None` once it is.
fn linger_left(pending: &[crate::store::OutboxEntry], linger: Duration) -> Option<Duration> {
    if linger.is_zero() {
        return None;
    }
    let oldest = pending.iter().map(|e| e.envelope.timestamp).min()?;
    let age = (crate::application::now_ms() - oldest).max(0) as u64;
    linger
        .checked_sub(Duration::from_millis(age))
        .filter(|left| !left.is_zero())
}

/// Waits for the removal in flight, if any.
async fn finish(removing: Option<(HashSet<String>, JoinHandle<()>)>) {
    if let Some((_, task)) = removing {
        if let Err(error) = task.await {
            tracing::warn!(%error, "outbox removal task failed");
        }
    }
}

/// How often outbox depth and age are measured.
const STATS_EVERY: Duration = Duration::from_secs(1);

async fn record_outbox_stats(store: &dyn EventStore, bus: &dyn EventBus) {
    match store.outbox_stats().await {
        Ok((depth, oldest)) => {
            let age = oldest.map_or(0.0, |t| {
                (crate::application::now_ms() - t).max(0) as f64 / 1000.0
            });
            crate::metrics::record_outbox(depth, age);
        }
        Err(error) => tracing::debug!(%error, "cannot measure the outbox"),
    }
    metrics::gauge!(crate::metrics::DEAD_LETTERS).set(bus.dead_letters() as f64);
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis(50u64 << failures.min(6))
}
