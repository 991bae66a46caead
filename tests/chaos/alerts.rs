//! Who heard which low-stock alert, and when. A subscriber is a `lowStockAlerts` subscription
//! (graphql-transport-ws) on one instance for one warehouse that reconnects whenever its socket
//! drops; it records each session (from its subscribe to its end) and each alert (its id is the
//! `LowStockThresholdReached` event's id). The observer is a queue of the test's own on the
//! service's event exchange: when it first saw an event is when the event was published, the
//! moment that decides whether a subscriber connected then was owed the alert (the API does not
//! replay alerts: an instance's live feed is a fresh queue after each (re)connect).

use futures::{SinkExt, StreamExt};
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::now_ms;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Default, Debug, Clone)]
pub struct Heard {
    /// (subscribed at, ended at) in ms since the epoch; the last may still be open.
    pub sessions: Vec<(i64, Option<i64>)>,
    /// Alert (event) id → when first received.
    pub alerts: HashMap<String, i64>,
    /// Alerts received more than once (allowed: at least once).
    pub repeats: u64,
}

pub struct Subscriber {
    pub instance: usize,
    pub warehouse: usize,
    pub heard: Arc<Mutex<Heard>>,
    task: tokio::task::JoinHandle<()>,
}

const SUBSCRIBE: &str =
    "subscription($w: ID) { lowStockAlerts(warehouseId: $w) { id itemId warehouseId } }";

impl Subscriber {
    pub fn start(
        instance: usize,
        url: String,
        warehouse: usize,
        warehouse_id: String,
        stop: Arc<AtomicBool>,
    ) -> Subscriber {
        let heard = Arc::new(Mutex::new(Heard::default()));
        let task = tokio::spawn(listen(url, warehouse_id, heard.clone(), stop));
        Subscriber {
            instance,
            warehouse,
            heard,
            task,
        }
    }

    pub async fn join(self) -> Heard {
        let _ = self.task.await;
        let heard = lock(&self.heard).clone();
        heard
    }
}

async fn listen(url: String, warehouse: String, heard: Arc<Mutex<Heard>>, stop: Arc<AtomicBool>) {
    let ws = format!("{}/graphql/ws", url.replacen("http", "ws", 1));
    while !stop.load(Ordering::SeqCst) {
        let Some(mut socket) = connect(&ws, &warehouse).await else {
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        };
        lock(&heard).sessions.push((now_ms(), None));
        loop {
            if stop.load(Ordering::SeqCst) {
                let _ = socket.close(None).await;
                break;
            }
            let message =
                match tokio::time::timeout(Duration::from_millis(300), socket.next()).await {
                    Err(_) => continue,
                    Ok(Some(Ok(Message::Text(text)))) => {
                        serde_json::from_str::<Value>(&text).unwrap_or(Value::Null)
                    }
                    Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
                    Ok(Some(Ok(_))) => continue,
                };
            match message["type"].as_str() {
                Some("next") => {
                    let alert = &message["payload"]["data"]["lowStockAlerts"];
                    if let Some(id) = alert["id"].as_str() {
                        let mut heard = lock(&heard);
                        if heard.alerts.contains_key(id) {
                            heard.repeats += 1;
                        } else {
                            heard.alerts.insert(id.to_owned(), now_ms());
                        }
                    }
                }
                Some("ping") => {
                    let pong = json!({"type": "pong"}).to_string();
                    let _ = socket.send(Message::text(pong)).await;
                }
                // An error or a completion ends the subscription: start a new one.
                Some("error") | Some("complete") => break,
                _ => {}
            }
        }
        if let Some(last) = lock(&heard).sessions.last_mut() {
            last.1 = Some(now_ms());
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket with the subscription sent, or None (the server is down or not ready).
async fn connect(ws: &str, warehouse: &str) -> Option<Socket> {
    let mut request = ws.into_client_request().ok()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().ok()?,
    );
    let connecting = tokio_tungstenite::connect_async(request);
    let (mut socket, _) = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .ok()?
        .ok()?;
    let init = json!({"type": "connection_init", "payload": {}}).to_string();
    socket.send(Message::text(init)).await.ok()?;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
        let Ok(Some(Ok(Message::Text(text)))) = next else {
            return None;
        };
        let message: Value = serde_json::from_str(&text).ok()?;
        if message["type"] == "connection_ack" {
            break;
        }
    }
    let subscribe = json!({"id": "1", "type": "subscribe",
        "payload": {"query": SUBSCRIBE, "variables": {"w": warehouse}}});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .ok()?;
    Some(socket)
}

/// When the observer first saw each low-stock event published, and when it was listening.
#[derive(Default, Debug, Clone)]
pub struct Published {
    pub at: HashMap<String, i64>,
    pub windows: Vec<(i64, Option<i64>)>,
}

pub struct Observer {
    pub published: Arc<Mutex<Published>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Listens on `<prefix>inventory.events` (which the service declares) until `stop`.
    pub fn start(exchange: String, stop: Arc<AtomicBool>) -> Observer {
        let published = Arc::new(Mutex::new(Published::default()));
        let task = tokio::spawn(observe(exchange, published.clone(), stop));
        Observer { published, task }
    }

    pub async fn join(self) -> Published {
        let _ = self.task.await;
        let published = lock(&self.published).clone();
        published
    }
}

async fn observe(exchange: String, published: Arc<Mutex<Published>>, stop: Arc<AtomicBool>) {
    let uri = "amqp://guest:guest@127.0.0.1:5672/%2f";
    while !stop.load(Ordering::SeqCst) {
        let Ok(Ok(connection)) = tokio::time::timeout(
            Duration::from_secs(5),
            lapin::Connection::connect(uri, lapin::ConnectionProperties::default()),
        )
        .await
        else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(mut consumer) = consume(&connection, &exchange).await else {
            let _ = connection.close(0, "".into()).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        lock(&published).windows.push((now_ms(), None));
        loop {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let next = tokio::time::timeout(Duration::from_millis(300), consumer.next()).await;
            let delivery = match next {
                Err(_) => continue,
                Ok(Some(Ok(delivery))) => delivery,
                Ok(_) => break,
            };
            let kind = delivery.properties.kind().as_ref().map(|k| k.to_string());
            if kind.as_deref() != Some("LowStockThresholdReached") {
                continue;
            }
            let body: Value = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
            if let Some(id) = body["eventId"].as_str() {
                lock(&published)
                    .at
                    .entry(id.to_owned())
                    .or_insert_with(now_ms);
            }
        }
        if let Some(last) = lock(&published).windows.last_mut() {
            last.1 = Some(now_ms());
        }
        let _ = connection.close(0, "".into()).await;
    }
}

async fn consume(connection: &lapin::Connection, exchange: &str) -> lapin::Result<lapin::Consumer> {
    let channel = connection.create_channel().await?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        ..QueueDeclareOptions::default()
    };
    let queue = channel
        .queue_declare("".into(), options, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let options = BasicConsumeOptions {
        no_ack: true,
        exclusive: true,
        ..BasicConsumeOptions::default()
    };
    channel
        .basic_consume(
            queue.name().clone(),
            "chaos-observer".into(),
            options,
            FieldTable::default(),
        )
        .await
}
