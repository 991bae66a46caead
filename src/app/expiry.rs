//! The expiry sweeper: every instance polls the read model's index of open deadlines and
//! cancels what is due through the ordinary command path (`Commands::expire_allocation`).
//! Nothing is kept in memory: the deadlines live in the events and the allocation projection,
//! so a restart or a crash loses none. The read model only says where to look; the command
//! decides on the stored allocation and commits conditioned on its version, so an allocation
//! confirmed meanwhile is left alone and, of several instances sweeping at once, one cancels.

use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use crate::application::{now_ms, CommandError, Commands, Outcome};
use crate::domain::DomainError;
use crate::projection::ReadModel;

/// Most allocations one sweep asks for; a full batch that expired something is followed by
/// another sweep at once, so a backlog drains without waiting for the next tick.
const BATCH: usize = 100;

/// Expiries of one sweep in flight at once (each is a commit on its item's queue).
const IN_FLIGHT: usize = 8;

pub(super) struct Sweeper {
    pub commands: Arc<Commands>,
    pub read: Arc<dyn ReadModel>,
    pub interval: Duration,
}

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
struct Swept {
    found: usize,
    expired: usize,
}

impl Sweeper {
    /// Sweeps every `interval` until `stopping` turns true; a sweep under way finishes first,
    /// so its commits are in the outbox before the relay drains it.
    pub async fn run(self, mut stopping: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = stopping.changed() => {}
            }
            if *stopping.borrow() {
                return;
            }
            loop {
                let swept = self.sweep().await;
                if swept.found < BATCH || swept.expired == 0 || *stopping.borrow() {
                    break;
                }
            }
        }
    }

    async fn sweep(&self) -> Swept {
        let now = now_ms();
        let due = match self.read.due_allocations(now, BATCH).await {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(error = %crate::error::Report(&error), "cannot look for allocations past their deadline; trying again next tick");
                return Swept::default();
            }
        };
        let found = due.len();
        let expired = futures::stream::iter(due)
            .map(|id| async move { (id, self.commands.expire_allocation(id).await) })
            .buffer_unordered(IN_FLIGHT)
            .filter(|(id, result)| std::future::ready(report(*id, result)))
            .count()
            .await;
        Swept { found, expired }
    }
}

/// Logs (and measures) one expiry; true when the allocation is now expired.
fn report(id: uuid::Uuid, result: &Result<Outcome, CommandError>) -> bool {
    match result {
        Ok(Outcome::Allocation { allocation, .. }) => {
            let state = &allocation.current;
            if let Some(deadline) = state.state.expires_at {
                // The cancel's commit time, also for a first result replayed to a retry.
                let late = (state.updated_at - deadline).max(0) as f64 / 1000.0;
                metrics::histogram!(crate::metrics::EXPIRY_DELAY).record(late);
            }
            tracing::info!(%id, "allocation expired");
            true
        }
        Ok(_) => false,
        // Confirmed, cancelled or expired by another instance since the read model was
        // written: the stored state decided, and nothing changed.
        Err(CommandError::Rejected(
            error @ (DomainError::InvalidStateTransition { .. } | DomainError::NotFound { .. }),
        )) => {
            tracing::debug!(%id, %error, "allocation not expired");
            false
        }
        Err(error) => {
            tracing::warn!(%id, error = %crate::error::Report(error), "allocation not expired; trying again next tick");
            false
        }
    }
}
