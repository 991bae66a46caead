//! The client side, as real clients do it: GraphQL over HTTP through one shared keep-alive
//! client, subscriptions over WebSocket (graphql-transport-ws), and a closed-loop load driver
//! that warms up, then records each operation's latency and outcome.

use anyhow::Context as _;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// One GraphQL endpoint over the shared HTTP client.
#[derive(Clone)]
pub struct Gql {
    http: reqwest::Client,
    url: String,
}

impl Gql {
    pub fn new(http: reqwest::Client, base: &str) -> Self {
        Self {
            http,
            url: format!("{base}/graphql"),
        }
    }

    /// The whole response (data and errors).
    pub async fn post(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await?;
        Ok(response.json().await?)
    }

    /// `data` of a response that must have no errors.
    pub async fn data(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self.post(query, variables).await?;
        if let Some(errors) = response.get("errors") {
            anyhow::bail!("GraphQL errors: {errors}");
        }
        Ok(response["data"].clone())
    }

    /// Runs a mutation and classifies its outcome; `field` is the mutation's name.
    pub async fn command(&self, query: &str, variables: Value, field: &str) -> Outcome {
        match self.post(query, variables).await {
            Ok(response) => classify(&response, field),
            Err(error) => Outcome::Failed(format!("transport: {error}")),
        }
    }
}

/// What happened to one command.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Applied; the payload.
    Ok(Value),
    /// Refused by a business rule that load cannot avoid (INSUFFICIENT_STOCK).
    Rejected,
    /// Lost a race the service did not absorb (VERSION_CONFLICT, CONTENTION).
    Conflict(String),
    /// Anything else: another user error, a GraphQL error, a transport error.
    Failed(String),
}

fn classify(response: &Value, field: &str) -> Outcome {
    if let Some(errors) = response.get("errors").and_then(Value::as_array) {
        let code = errors
            .first()
            .and_then(|e| e["extensions"]["code"].as_str())
            .unwrap_or("UNKNOWN");
        return if code == "CONTENTION" {
            Outcome::Conflict(code.into())
        } else {
            Outcome::Failed(format!("{code}: {}", Value::Array(errors.clone())))
        };
    }
    let payload = &response["data"][field];
    match payload["userErrors"].as_array().and_then(|e| e.first()) {
        None if !payload.is_null() => Outcome::Ok(payload.clone()),
        None => Outcome::Failed(format!("no payload: {response}")),
        Some(error) => match error["code"].as_str().unwrap_or_default() {
            "INSUFFICIENT_STOCK" => Outcome::Rejected,
            "VERSION_CONFLICT" => Outcome::Conflict("VERSION_CONFLICT".into()),
            code => Outcome::Failed(format!("{code}: {error}")),
        },
    }
}

/// What a closed-loop run measured (only operations started after the warm-up).
#[derive(Default)]
pub struct Tally {
    pub latencies: Vec<Duration>,
    pub ok: u64,
    pub rejected: u64,
    pub conflicts: u64,
    pub failed: u64,
    pub seconds: f64,
    pub first_failures: Vec<String>,
}

impl Tally {
    pub fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 {
            self.ok as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn add(&mut self, outcome: &Outcome, latency: Duration) {
        self.latencies.push(latency);
        match outcome {
            Outcome::Ok(_) => self.ok += 1,
            Outcome::Rejected => self.rejected += 1,
            Outcome::Conflict(reason) | Outcome::Failed(reason) => {
                if matches!(outcome, Outcome::Conflict(_)) {
                    self.conflicts += 1;
                }
                self.failed += 1;
                if self.first_failures.len() < 3 {
                    self.first_failures.push(reason.chars().take(300).collect());
                }
            }
        }
    }
}

/// `clients` concurrent clients, each issuing `op(client, n)` back to back: first for
/// `warmup` (not recorded), then for `measure`. Operations started before the end complete;
/// the measured time runs from the end of the warm-up to the last completion.
pub async fn closed_loop<F, Fut>(
    clients: usize,
    warmup: Duration,
    measure: Duration,
    op: F,
) -> Tally
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let op = Arc::new(op);
    let start = Instant::now() + warmup;
    let end = start + measure;
    let mut tasks = Vec::new();
    for client in 0..clients {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut last = start;
            let mut n = 0u64;
            loop {
                let began = Instant::now();
                if began >= end {
                    break;
                }
                let outcome = op(client, n).await;
                n += 1;
                if began >= start {
                    let done = Instant::now();
                    tally.add(&outcome, done - began);
                    last = last.max(done);
                }
            }
            (tally, last)
        }));
    }
    let mut total = Tally::default();
    let mut last = start;
    for task in tasks {
        if let Ok((tally, done)) = task.await {
            total.latencies.extend(tally.latencies);
            total.ok += tally.ok;
            total.rejected += tally.rejected;
            total.conflicts += tally.conflicts;
            total.failed += tally.failed;
            for f in tally.first_failures {
                if total.first_failures.len() < 3 {
                    total.first_failures.push(f);
                }
            }
            last = last.max(done);
        }
    }
    total.seconds = (last - start).as_secs_f64();
    total
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One subscription over graphql-transport-ws.
pub struct Subscription {
    socket: Socket,
}

impl Subscription {
    pub async fn open(base: &str, query: &str, variables: Value) -> anyhow::Result<Self> {
        let url = format!("{}/graphql/ws", base.replacen("http", "ws", 1));
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("websocket")?;
        socket
            .send(Message::text(
                json!({"type": "connection_init", "payload": {}}).to_string(),
            ))
            .await?;
        loop {
            let message = next_json(&mut socket)
                .await
                .context("connection closed before connection_ack")?;
            if message["type"] == "connection_ack" {
                break;
            }
        }
        socket
            .send(Message::text(
                json!({"id": "1", "type": "subscribe", "payload": {"query": query, "variables": variables}})
                    .to_string(),
            ))
            .await?;
        Ok(Self { socket })
    }

    /// The next `data` with the instant it arrived; None when the socket closes or nothing
    /// arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<anyhow::Result<(Instant, Value)>> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = tokio::time::timeout(left, next_json(&mut self.socket))
                .await
                .ok()??;
            let received = Instant::now();
            match message["type"].as_str().unwrap_or_default() {
                "next" => {
                    let payload = &message["payload"];
                    if let Some(errors) = payload.get("errors") {
                        return Some(Err(anyhow::anyhow!("subscription error: {errors}")));
                    }
                    return Some(Ok((received, payload["data"].clone())));
                }
                "error" => return Some(Err(anyhow::anyhow!("subscription error: {message}"))),
                "ping" => {
                    let _ = self
                        .socket
                        .send(Message::text(json!({"type": "pong"}).to_string()))
                        .await;
                }
                _ => {}
            }
        }
    }
}

async fn next_json(socket: &mut Socket) -> Option<Value> {
    while let Some(message) = socket.next().await {
        match message.ok()? {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
    None
}
