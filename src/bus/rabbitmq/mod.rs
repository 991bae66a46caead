//! The production event bus on RabbitMQ. Events go to a durable topic exchange as persistent
//! messages and `publish` returns only once the broker has confirmed every one of them, so the
//! outbox relay never forgets an event the broker has not taken. Durable consumers share a
//! quorum queue per group (competing instances, at-least-once, poison messages dead-lettered
//! after a bounded number of tries); each instance's live feed is its own exclusive queue.
//! A background task owns the connection and rebuilds everything after a loss.
//!
//! lapin 4 because its default runtime *is* tokio (through async-rs): the connection's
//! sockets and timers live on the service's own runtime with nothing to wire. lapin 2 and 3
//! default to async-global-executor + async-io and stay on tokio only if every
//! `ConnectionProperties` is given the `tokio-executor-trait` / `tokio-reactor-trait` shims;
//! forgetting one silently starts a second runtime. lapin's own `enable_auto_recover` is left
//! off: this adapter must also re-run its consumer loops and the live queue, fail `publish`
//! fast while disconnected and report readiness, so it owns reconnection itself.

mod codec;
mod consumer;
mod live;
mod session;
mod topology;

use async_trait::async_trait;
use lapin::options::BasicPublishOptions;
use lapin::uri::AMQPUri;
use lapin::{Channel, Confirmation};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

pub use topology::Names;

use super::{BusError, EventBus, EventHandler, LiveMessage};
use crate::projection::runner::ReadModelChanges;
use crate::store::EventEnvelope;
use session::Session;

/// Live messages buffered per subscriber before a slow one starts missing messages.
const LIVE_CAPACITY: usize = 16_384;
/// Seconds between heartbeats unless the URL says otherwise (`?heartbeat=`): a peer that
/// vanished without closing the socket is noticed within two of them, not RabbitMQ's 2 × 60 s.
const HEARTBEAT_SECS: u16 = 10;

/// Tuning of the adapter; `Default` is what production uses.
#[derive(Debug, Clone)]
pub struct RabbitConfig {
    /// Unacknowledged messages a durable consumer may hold (`basic.qos`).
    pub prefetch: u16,
    /// Deliveries of one message (first try included) before it is dead-lettered. Also the
    /// queue's `x-delivery-limit`: every instance must use the same value.
    pub max_deliveries: u32,
    /// Pause before a `Retry` is requeued, doubled per try up to `retry_delay_max`; the
    /// message keeps its prefetch slot meanwhile, so the messages behind it go on.
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
    /// Reconnection backoff: first pause, doubled per failure up to the maximum.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// How long one connection attempt (TCP, handshake, topology) may take.
    pub connect_timeout: Duration,
    /// How long `publish` / `announce` wait for the broker's confirms before giving up.
    pub confirm_timeout: Duration,
}

impl Default for RabbitConfig {
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_deliveries: 5,
            // 1 + 2 + 4 + 8 s: a blip of the projection store is ridden out, not dead-lettered.
            retry_delay: Duration::from_secs(1),
            retry_delay_max: Duration::from_secs(30),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            confirm_timeout: Duration::from_secs(10),
        }
    }
}

/// A durable consumer as registered, restarted on every new connection.
#[derive(Clone)]
struct Registration {
    queue: String,
    handler: Arc<dyn EventHandler>,
}

/// What the bus handle, the connection manager and the consumer tasks share.
struct Shared {
    uri: AMQPUri,
    names: Names,
    config: RabbitConfig,
    /// The current connection, `None` while disconnected.
    session: RwLock<Option<Arc<Session>>>,
    ready: watch::Sender<bool>,
    /// Held while a session starts its consumers, so a `consume` racing a reconnect starts
    /// exactly once.
    consumers: tokio::sync::Mutex<Vec<Registration>>,
    live: broadcast::Sender<Arc<LiveMessage>>,
    dead_letters: AtomicU64,
}

impl Shared {
    fn session(&self) -> Option<Arc<Session>> {
        crate::sync::read(&self.session).clone()
    }

    fn set_session(&self, session: Option<Arc<Session>>) {
        let ready = session.is_some();
        *crate::sync::write(&self.session) = session;
        self.ready.send_replace(ready);
    }
}

pub struct RabbitBus {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    manager: Mutex<Option<JoinHandle<()>>>,
}

fn unavailable(action: impl Into<String>, cause: impl Into<super::Cause>) -> BusError {
    BusError::unavailable(action, cause)
}

impl RabbitBus {
    /// Starts the connection manager and returns at once; the bus is ready when `is_ready`
    /// (or `wait_ready`) says so. Must be called inside a tokio runtime.
    pub fn connect(url: &str, prefix: &str) -> Result<Arc<Self>, BusError> {
        Self::connect_with(url, prefix, RabbitConfig::default())
    }

    pub fn connect_with(
        url: &str,
        prefix: &str,
        config: RabbitConfig,
    ) -> Result<Arc<Self>, BusError> {
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|error| unavailable("reading the AMQP url", error))?;
        uri.query.heartbeat.get_or_insert(HEARTBEAT_SECS);
        let runtime = tokio::runtime::Handle::try_current().map_err(|error| {
            unavailable(
                "connecting (RabbitBus::connect needs a tokio runtime)",
                error,
            )
        })?;
        let shared = Arc::new(Shared {
            uri,
            names: Names::new(prefix),
            config,
            session: RwLock::new(None),
            ready: watch::channel(false).0,
            consumers: tokio::sync::Mutex::new(Vec::new()),
            live: broadcast::channel(LIVE_CAPACITY).0,
            dead_letters: AtomicU64::new(0),
        });
        let (shutdown, stop) = watch::channel(false);
        let manager = runtime.spawn(session::manage(shared.clone(), stop));
        Ok(Arc::new(Self {
            shared,
            shutdown,
            manager: Mutex::new(Some(manager)),
        }))
    }

    /// The broker names this bus uses.
    pub fn names(&self) -> &Names {
        &self.shared.names
    }

    /// Waits until connected with the topology declared and the consumers started.
    pub async fn wait_ready(&self, within: Duration) -> Result<(), BusError> {
        let mut ready = self.shared.ready.subscribe();
        let waited = tokio::time::timeout(within, ready.wait_for(|ready| *ready))
            .await
            .map(|ready| ready.is_ok());
        match waited {
            Ok(true) => Ok(()),
            _ => Err(unavailable(
                "waiting for RabbitMQ",
                format!("not reachable within {within:?}"),
            )),
        }
    }

    /// Declares a consumer group's durable queue (and its dead-letter queue) without consuming
    /// from it, so that events published before the first consumer attaches are kept.
    pub async fn declare_queue(&self, queue: &str) -> Result<(), BusError> {
        let session = self.connected()?;
        let channel = session
            .connection
            .create_channel()
            .await
            .map_err(|e| unavailable(format!("opening a channel to declare {queue}"), e))?;
        let declared = topology::declare_durable_queue(
            &channel,
            &self.shared.names,
            queue,
            &self.shared.config,
        )
        .await
        .map_err(|e| unavailable(format!("declaring the queue {queue}"), e));
        let _ = channel.close(200, "declared".into()).await;
        declared
    }

    /// Stops the connection manager and closes the connection: unacknowledged deliveries go
    /// back to their queues, and the live queue is deleted. Dropping the bus does the same
    /// without waiting.
    pub async fn close(&self) {
        self.shutdown.send_replace(true);
        let manager = crate::sync::lock(&self.manager).take();
        if let Some(manager) = manager {
            let _ = manager.await;
        }
    }

    fn connected(&self) -> Result<Arc<Session>, BusError> {
        self.shared
            .session()
            .ok_or_else(|| unavailable("looking for the connection", "not connected to RabbitMQ"))
    }

    /// Publishes on the confirm-mode channel and waits for every confirm. With `mandatory`, a
    /// message no queue takes comes back and is an error: never report an event as delivered
    /// that nobody will consume.
    async fn send(
        &self,
        exchange: &str,
        messages: Vec<codec::Outgoing>,
        mandatory: bool,
    ) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let session = self.connected()?;
        let confirmed = tokio::time::timeout(
            self.shared.config.confirm_timeout,
            confirm_all(&session.publisher, exchange, messages, mandatory),
        )
        .await
        .unwrap_or_else(|elapsed| Err(unavailable("waiting for publisher confirms", elapsed)));
        if confirmed.is_err() && !session.publisher.status().connected() {
            // The broker closed the channel (or the connection is going): start afresh.
            session.fail("the publishing channel closed");
        }
        confirmed
    }
}

async fn confirm_all(
    channel: &Channel,
    exchange: &str,
    messages: Vec<codec::Outgoing>,
    mandatory: bool,
) -> Result<(), BusError> {
    let options = BasicPublishOptions {
        mandatory,
        ..BasicPublishOptions::default()
    };
    let mut pending = Vec::with_capacity(messages.len());
    for message in messages {
        let confirm = channel
            .basic_publish(
                exchange.into(),
                message.routing_key.as_str().into(),
                options,
                &message.body,
                message.properties,
            )
            .await
            .map_err(|e| unavailable(format!("publishing to {exchange}"), e))?;
        pending.push((message.routing_key, confirm));
    }
    for (routing_key, confirm) in pending {
        let waiting = || format!("waiting for the confirm of a message to {routing_key}");
        match confirm.await.map_err(|e| unavailable(waiting(), e))? {
            Confirmation::Ack(None) => {}
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                return Err(unavailable(
                    waiting(),
                    format!(
                        "the broker returned it: {} {}",
                        returned.reply_code, returned.reply_text
                    ),
                ));
            }
            Confirmation::Nack(None) => {
                return Err(unavailable(waiting(), "the broker refused it"));
            }
            Confirmation::NotRequested => {
                return Err(unavailable(waiting(), "publisher confirms are not enabled"));
            }
        }
    }
    Ok(())
}

#[async_trait]
impl EventBus for RabbitBus {
    async fn publish(&self, events: &[EventEnvelope]) -> Result<(), BusError> {
        let messages = events
            .iter()
            .map(codec::event)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable("encoding events", e))?;
        self.send(&self.shared.names.events, messages, true).await
    }

    async fn announce(&self, changes: ReadModelChanges) -> Result<(), BusError> {
        let items = changes.items.iter().map(codec::item);
        let allocations = changes.allocations.iter().map(codec::allocation);
        let messages = items
            .chain(allocations)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable("encoding read-model changes", e))?;
        // Not mandatory: with no instance listening there is simply nobody to tell.
        self.send(&self.shared.names.changes, messages, false).await
    }

    async fn consume(&self, queue: &str, handler: Arc<dyn EventHandler>) -> Result<(), BusError> {
        let registration = Registration {
            queue: queue.to_owned(),
            handler,
        };
        let mut consumers = self.shared.consumers.lock().await;
        if let Some(session) = self.shared.session() {
            if let Err(error) = consumer::start(&self.shared, &session, &registration).await {
                if session.connection.status().connected() {
                    // The broker refused (e.g. the queue exists with other arguments): a
                    // reconnect would not help, so the caller must hear of it.
                    return Err(unavailable(format!("consuming from {queue}"), error));
                }
                // The connection dropped meanwhile: the manager starts it on reconnect.
            }
        }
        consumers.push(registration);
        Ok(())
    }

    fn live(&self) -> broadcast::Receiver<Arc<LiveMessage>> {
        self.shared.live.subscribe()
    }

    fn dead_letters(&self) -> u64 {
        self.shared.dead_letters.load(Ordering::Relaxed)
    }

    /// The queue's ready messages (a passive declare, on a channel of its own since a failed
    /// declare closes its channel); those delivered and not yet acknowledged are not counted.
    async fn queued(&self, queue: &str) -> Option<u64> {
        let session = self.shared.session()?;
        let channel = session.connection.create_channel().await.ok()?;
        let passive = lapin::options::QueueDeclareOptions {
            passive: true,
            ..lapin::options::QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(
                self.shared.names.queue(queue).as_str().into(),
                passive,
                lapin::types::FieldTable::default(),
            )
            .await;
        let _ = channel.close(200, "counted".into()).await;
        declared.ok().map(|q| u64::from(q.message_count()))
    }

    fn is_ready(&self) -> bool {
        *self.shared.ready.borrow()
    }

    async fn close(&self) {
        RabbitBus::close(self).await;
    }
}
