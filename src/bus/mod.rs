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

/// What lies under a bus or handler error: the broker client's, a consumer's, or a plain
/// message when the bus itself noticed (a nack, a timeout).
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Error)]
pub enum BusError {
    /// The bus could not take or hand on the events now; the relay tries again.
    #[error("event bus unavailable while {action}")]
    Unavailable {
        action: String,
        #[source]
        source: Cause,
    },
}

impl BusError {
    /// Unavailable while doing `action` (said as "while publishing events", ...).
    pub fn unavailable(action: impl Into<String>, source: impl Into<Cause>) -> Self {
        Self::Unavailable {
            action: action.into(),
            source: source.into(),
        }
    }
}

#[derive(Debug, Error)]
pub enum HandlerError {
    /// Try again later (e.g. the projection store is down).
    #[error("the consumer could not handle the events for now")]
    Retry(#[source] Cause),
    /// This message can never be applied: dead-letter it and go on.
    #[error("the consumer can never handle the events")]
    Reject(#[source] Cause),
}

/// An error and its causes on one line (`outer: inner: innermost`), for logs.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
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

    /// Messages waiting in a durable queue for a consumer to take them, when the bus keeps
    /// such a queue and can tell now (`None` for the in-process bus, whose `publish` hands
    /// events straight to the consumer: what waits for it is in the outbox).
    async fn queued(&self, _queue: &str) -> Option<u64> {
        None
    }

    fn is_ready(&self) -> bool;

    /// Lets consumers finish the message in hand and closes connections (graceful shutdown).
    async fn close(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn a_bus_error_says_what_the_bus_was_doing_and_keeps_the_cause() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let error = BusError::unavailable("publishing to inventory.events", cause);
        assert_eq!(
            error.to_string(),
            "event bus unavailable while publishing to inventory.events"
        );
        let source = error.source().expect("a cause");
        assert_eq!(source.to_string(), "reset by peer");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert_eq!(
            chain(&error),
            "event bus unavailable while publishing to inventory.events: reset by peer"
        );
    }

    #[test]
    fn a_handler_error_keeps_its_kind_and_its_cause() {
        let retry = HandlerError::Retry(Box::new(std::fmt::Error));
        assert!(matches!(retry, HandlerError::Retry(_)));
        assert!(retry.source().is_some_and(|s| s.is::<std::fmt::Error>()));
        let reject = HandlerError::Reject("not an event envelope".into());
        assert_eq!(
            chain(&reject),
            "the consumer can never handle the events: not an event envelope"
        );
    }
}
