//! The event bus port. `publish` returns only once the bus has taken responsibility for the
//! events (a publisher confirm), which is when the outbox relay may forget them. Durable
//! consumers (projectors) get every event at least once; `live` is this instance's fan-out of
//! events and read-model changes for GraphQL subscriptions.

pub mod local;
pub mod rabbitmq;
pub mod relay;

use async_trait::async_trait;
use std::sync::Arc;
use thiserror::Error;
use tokio::sync::broadcast;

use crate::projection::runner::ReadModelChanges;
use crate::projection::{AllocationView, ItemView};
use crate::store::EventEnvelope;

/// What live subscribers of one instance receive.
#[derive(Debug, Clone)]
pub enum LiveMessage {
    Event(EventEnvelope),
    ItemChanged(ItemView),
    AllocationChanged(AllocationView),
}

#[derive(Debug, Error)]
pub enum BusError {
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
}

#[derive(Debug, Error)]
pub enum HandlerError {
    /// Try again later (e.g. the projection store is down).
    #[error("{0}")]
    Retry(String),
    /// This message can never be applied: dead-letter it and go on.
    #[error("{0}")]
    Reject(String),
}

/// A durable consumer: gets each published event at least once, in per-aggregate order.
#[async_trait]
pub trait EventHandler: Send + Sync + 'static {
    async fn handle(&self, events: &[EventEnvelope]) -> Result<(), HandlerError>;
}

#[async_trait]
pub trait EventBus: Send + Sync + 'static {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), BusError>;

    /// Tells every instance's live subscribers about rows a projector has just written.
    async fn announce(&self, changes: ReadModelChanges) -> Result<(), BusError>;

    /// Attaches a durable consumer under a queue name.
    async fn consume(&self, queue: &str, handler: Arc<dyn EventHandler>) -> Result<(), BusError>;

    /// This instance's live feed.
    fn live(&self) -> broadcast::Receiver<Arc<LiveMessage>>;

    /// Messages given up on (dead-lettered) since start.
    fn dead_letters(&self) -> u64;

    fn is_ready(&self) -> bool;

    /// Lets consumers finish the message in hand and closes connections (graceful shutdown).
    async fn close(&self) {}
}
