//! The connection manager: one task that connects, declares the topology, starts the live
//! queue and every registered consumer, publishes the session (only then is the bus ready),
//! and on any loss tears it all down and starts over with backoff. Each session is all or
//! nothing: a consumer whose channel dies takes the whole connection with it, so that no part
//! of the topology is silently left without a consumer.

use futures::StreamExt;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties, Event};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use super::{consumer, live, topology, Shared};

/// How often the manager looks at the connection's state, besides lapin's error events.
const HEALTH_CHECK: Duration = Duration::from_millis(250);
/// How long a clean close may take before the connection is simply dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
/// A session that lasted this long was healthy: the next loss starts the backoff afresh.
const STABLE: Duration = Duration::from_secs(10);
/// How long a shutdown waits for the deliveries being handled to finish and be acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One connection and what lives on it.
pub(super) struct Session {
    pub connection: Connection,
    /// In confirm mode; shared by every publisher (each confirm is awaited on its own).
    pub publisher: Channel,
    failed: Notify,
    reason: Mutex<Option<String>>,
    /// Turns true when the bus shuts down: consumers finish the delivery in hand and stop.
    closing: watch::Sender<bool>,
    consumers: Mutex<Vec<JoinHandle<()>>>,
}

impl Session {
    /// Tells the manager this session is broken (a consumer or channel stopped).
    pub fn fail(&self, reason: &str) {
        let mut slot = crate::sync::lock(&self.reason);
        slot.get_or_insert_with(|| reason.to_owned());
        // A stored permit: a failure reported before the manager waits is not lost.
        self.failed.notify_one();
    }

    /// Resolves with the reason once the connection (or a part of the session) is gone.
    async fn lost(&self) -> String {
        let mut events = std::pin::pin!(self.connection.events_listener());
        let mut health = tokio::time::interval(HEALTH_CHECK);
        loop {
            tokio::select! {
                _ = self.failed.notified() => {
                    let reason = crate::sync::lock(&self.reason).clone();
                    return reason.unwrap_or_else(|| "the session failed".into());
                }
                event = events.next() => match event {
                    Some(Event::Error(error)) => return error.to_string(),
                    Some(_) => {}
                    None => return "the connection's event stream ended".into(),
                },
                _ = health.tick() => {
                    if !self.connection.status().connected() {
                        return "the connection closed".into();
                    }
                    if !self.publisher.status().connected() {
                        return "the publishing channel closed".into();
                    }
                }
            }
        }
    }

    /// For consumers: resolves when the bus is shutting down.
    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    pub fn add_consumer(&self, task: JoinHandle<()>) {
        crate::sync::lock(&self.consumers).push(task);
    }

    /// Closes the connection; with `drain`, first lets every consumer finish (and acknowledge)
    /// the delivery it is handling, so a clean shutdown hands nothing back half done.
    async fn close(&self, drain: bool) {
        self.closing.send_replace(true);
        if drain {
            let tasks = std::mem::take(&mut *crate::sync::lock(&self.consumers));
            let all = futures::future::join_all(tasks);
            if tokio::time::timeout(DRAIN_TIMEOUT, all).await.is_err() {
                tracing::warn!("closing RabbitMQ with deliveries still being handled");
            }
        }
        if self.connection.status().connected() {
            let closing = self.connection.close(200, "bye".into());
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, closing).await;
        }
    }
}

/// Runs until `stop` turns true or its sender is dropped.
pub(super) async fn manage(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let config = shared.config.clone();
    let exchange = shared.names.events.clone();
    let mut delay = config.reconnect_min;
    let mut failures: u32 = 0;
    let mut connected_before = false;
    loop {
        // Not raced against `stop`: a half-built session must be closed, not dropped, or its
        // consumer tasks would keep the connection open. `establish` is bounded by timeouts.
        let attempt = establish(&shared).await;
        if *stop.borrow() || stop.has_changed().is_err() {
            if let Ok(session) = attempt {
                shared.set_session(None);
                session.close(true).await;
            }
            return;
        }
        match attempt {
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, failures, retry_in = ?delay, %exchange, "cannot connect to RabbitMQ");
            }
            Ok(session) => {
                if connected_before {
                    tracing::info!(after_failures = failures, %exchange, "reconnected to RabbitMQ");
                } else {
                    tracing::info!(%exchange, "connected to RabbitMQ");
                }
                connected_before = true;
                failures = 0;
                let started = Instant::now();
                let stopping = tokio::select! {
                    reason = session.lost() => {
                        tracing::warn!(%reason, %exchange, "lost the RabbitMQ connection; reconnecting");
                        false
                    }
                    _ = stopped(&mut stop) => true,
                };
                // Not ready from here on: `publish` fails fast until the next session is up.
                shared.set_session(None);
                session.close(stopping).await;
                if stopping {
                    return;
                }
                // Only a session that held for a while resets the backoff, so a session that
                // breaks as soon as it is up cannot make the manager spin.
                if started.elapsed() >= STABLE {
                    delay = config.reconnect_min;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped(&mut stop) => return,
        }
        delay = (delay * 2).min(config.reconnect_max);
    }
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    // An error means the bus was dropped: stop too.
    let _ = stop.wait_for(|stop| *stop).await;
}

async fn establish(shared: &Arc<Shared>) -> Result<Arc<Session>, String> {
    let within = shared.config.connect_timeout;
    let properties = ConnectionProperties::default()
        .with_connection_name(format!("inventory-service ({})", shared.names.events).into());
    let connecting = Connection::connect_uri(shared.uri.clone(), properties);
    let connection = match tokio::time::timeout(within, connecting).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => return Err(error.to_string()),
        Err(_) => return Err(format!("no connection within {within:?}")),
    };
    let publisher = match tokio::time::timeout(within, connection.create_channel()).await {
        Ok(Ok(channel)) => channel,
        failed => {
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "bye".into())).await;
            return Err(match failed {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out opening a channel".into(),
            });
        }
    };
    let session = Arc::new(Session {
        connection,
        publisher,
        failed: Notify::new(),
        reason: Mutex::new(None),
        closing: watch::channel(false).0,
        consumers: Mutex::new(Vec::new()),
    });
    match tokio::time::timeout(within, start(shared, &session)).await {
        Ok(Ok(())) => Ok(session),
        failed => {
            shared.set_session(None);
            session.close(false).await;
            Err(match failed {
                Ok(Err(error)) => error.to_string(),
                _ => "timed out declaring the topology".into(),
            })
        }
    }
}

async fn start(shared: &Arc<Shared>, session: &Arc<Session>) -> lapin::Result<()> {
    session
        .publisher
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    topology::declare_exchanges(&session.publisher, &shared.names).await?;
    live::start(shared, session).await?;
    let consumers = shared.consumers.lock().await;
    for registration in consumers.iter() {
        consumer::start(shared, session, registration).await?;
    }
    shared.set_session(Some(session.clone()));
    Ok(())
}
