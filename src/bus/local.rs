//! The embedded bus: in-process, with the same contract as the broker. A publish hands the
//! events to every durable consumer and waits for each to finish, so "confirmed" means
//! "projected": if the process dies first, the outbox row is still there and is delivered again
//! on restart (the projectors drop the duplicate).

use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{broadcast, RwLock};

use super::{BusError, EventBus, EventHandler, HandlerError, LiveMessage};
use crate::projection::runner::ReadModelChanges;
use crate::store::EventEnvelope;

/// Live messages buffered per subscriber before a slow one starts missing messages.
const LIVE_CAPACITY: usize = 16_384;

pub struct LocalBus {
    consumers: RwLock<Vec<(String, Arc<dyn EventHandler>)>>,
    live: broadcast::Sender<Arc<LiveMessage>>,
    dead_letters: AtomicU64,
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalBus {
    pub fn new() -> Self {
        Self {
            consumers: RwLock::new(Vec::new()),
            live: broadcast::channel(LIVE_CAPACITY).0,
            dead_letters: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl EventBus for LocalBus {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), BusError> {
        // Live subscribers first: an alert need not wait for the projections. If a consumer
        // then fails, the relay publishes again and subscribers may see an event twice
        // (at-least-once, as with the broker; each carries its sequence number).
        for event in events {
            // No receivers is fine: nobody is subscribed right now.
            let _ = self.live.send(Arc::new(LiveMessage::Event(event.clone())));
        }
        for (queue, handler) in self.consumers.read().await.iter() {
            match handler.handle(events).await {
                Ok(()) => {}
                Err(HandlerError::Retry(cause)) => {
                    return Err(BusError::unavailable(
                        format!("delivering to the {queue} consumer"),
                        cause,
                    ));
                }
                Err(HandlerError::Reject(cause)) => {
                    self.dead_letters.fetch_add(1, Ordering::Relaxed);
                    let reason = super::chain(&*cause);
                    tracing::error!(queue, %reason, events = events.len(), "dead-lettered a message");
                }
            }
        }
        Ok(())
    }

    async fn announce(&self, changes: ReadModelChanges) -> Result<(), BusError> {
        for item in changes.items {
            let _ = self.live.send(Arc::new(LiveMessage::ItemChanged(item)));
        }
        for allocation in changes.allocations {
            let _ = self
                .live
                .send(Arc::new(LiveMessage::AllocationChanged(allocation)));
        }
        Ok(())
    }

    async fn consume(&self, queue: &str, handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        self.consumers
            .write()
            .await
            .push((queue.to_owned(), handler));
        Ok(())
    }

    fn live(&self) -> broadcast::Receiver<Arc<LiveMessage>> {
        self.live.subscribe()
    }

    fn dead_letters(&self) -> u64 {
        self.dead_letters.load(Ordering::Relaxed)
    }

    fn is_ready(&self) -> bool {
        true
    }
}
