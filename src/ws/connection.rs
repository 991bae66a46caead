//! One GraphQL WebSocket connection: the client's messages judged by the protocol it chose,
//! each operation run on a task of its own whose results (and its end) come back through one
//! channel to the socket, and the close frame the connection ends with.

use async_graphql::{Request, Response, ServerError, Variables};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::{close, close_message, Protocol, WsConfig};
use crate::graphql::{InventorySchema, RequestMeta};

/// A client message of either protocol (`payload` and `id` where the type has them).
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Value>,
}

/// An operation's request as both protocols carry it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OperationPayload {
    query: String,
    #[serde(default)]
    variables: Option<Value>,
    #[serde(default)]
    operation_name: Option<String>,
}

/// What an operation's task reports to the socket.
enum Event {
    Message(Value),
    Done(String),
}

/// Why the connection ends (a close frame to send), or `None` to go on.
type Verdict = Option<(u16, String)>;

pub(super) struct Connection {
    schema: InventorySchema,
    config: WsConfig,
    meta: RequestMeta,
    protocol: Protocol,
    acknowledged: bool,
    operations: HashMap<String, JoinHandle<()>>,
    events: mpsc::Sender<Event>,
    inbox: Option<mpsc::Receiver<Event>>,
}

impl Connection {
    pub(super) fn new(
        schema: InventorySchema,
        config: WsConfig,
        meta: RequestMeta,
        protocol: Protocol,
    ) -> Self {
        let (events, inbox) = mpsc::channel(64);
        Self {
            schema,
            config,
            meta,
            protocol,
            acknowledged: false,
            operations: HashMap::new(),
            events,
            inbox: Some(inbox),
        }
    }

    pub(super) async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let Some(mut inbox) = self.inbox.take() else {
            return;
        };
        let deadline = tokio::time::sleep(self.config.init_timeout);
        tokio::pin!(deadline);
        let mut keep_alive = tokio::time::interval(Duration::from_secs(10));
        let verdict: (u16, String) = loop {
            tokio::select! {
                () = &mut deadline, if !self.acknowledged => {
                    break (close::INIT_TIMEOUT, "Connection initialisation timeout".into());
                }
                _ = keep_alive.tick(), if self.acknowledged && self.protocol == Protocol::LegacyWs => {
                    if sink.send(text(&json!({"type": "ka"}))).await.is_err() {
                        break (close::NORMAL, String::new());
                    }
                }
                Some(event) = inbox.recv() => {
                    let message = match event {
                        Event::Message(message) => message,
                        Event::Done(id) => {
                            self.operations.remove(&id);
                            continue;
                        }
                    };
                    if sink.send(text(&message)).await.is_err() {
                        break (close::NORMAL, String::new());
                    }
                }
                incoming = stream.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        // The peer went away (or broke the framing): nothing to answer.
                        Some(Err(_)) | None => break (close::NORMAL, String::new()),
                    };
                    let (replies, verdict) = match message {
                        Message::Text(body) => self.on_text(body.as_str()),
                        Message::Binary(_) => (
                            Vec::new(),
                            Some((close::BAD_REQUEST, "Binary messages are not part of the protocol".into())),
                        ),
                        Message::Close(_) => (Vec::new(), Some((close::NORMAL, String::new()))),
                        Message::Ping(_) | Message::Pong(_) => (Vec::new(), None),
                    };
                    let mut failed = false;
                    for reply in replies {
                        failed |= sink.send(text(&reply)).await.is_err();
                    }
                    if let Some(verdict) = verdict {
                        break verdict;
                    }
                    if failed {
                        break (close::NORMAL, String::new());
                    }
                }
            }
        };
        for (_, task) in self.operations.drain() {
            task.abort();
        }
        let (code, reason) = verdict;
        let _ = sink.send(close_message(code, &reason)).await;
        let _ = sink.close().await;
    }

    /// Handles one client message: the messages to send back at once, and whether to close.
    fn on_text(&mut self, body: &str) -> (Vec<Value>, Verdict) {
        let message: ClientMessage = match serde_json::from_str(body) {
            Ok(message) => message,
            Err(_) => {
                return (
                    Vec::new(),
                    Some((close::BAD_REQUEST, "Invalid message received".into())),
                )
            }
        };
        match (self.protocol, message.kind.as_str()) {
            (_, "connection_init") => {
                if std::mem::replace(&mut self.acknowledged, true) {
                    return match self.protocol {
                        Protocol::TransportWs => (
                            Vec::new(),
                            Some((
                                close::TOO_MANY_INITS,
                                "Too many initialisation requests".into(),
                            )),
                        ),
                        Protocol::LegacyWs => (Vec::new(), None),
                    };
                }
                let mut replies = vec![json!({"type": "connection_ack"})];
                if self.protocol == Protocol::LegacyWs {
                    replies.push(json!({"type": "ka"}));
                }
                (replies, None)
            }
            (Protocol::TransportWs, "ping") => {
                let mut pong = json!({"type": "pong"});
                if let Some(payload) = message.payload {
                    pong["payload"] = payload;
                }
                (vec![pong], None)
            }
            (Protocol::TransportWs, "pong") => (Vec::new(), None),
            (Protocol::TransportWs, "subscribe") | (Protocol::LegacyWs, "start") => {
                self.start(message.id, message.payload)
            }
            (Protocol::TransportWs, "complete") | (Protocol::LegacyWs, "stop") => {
                if let Some(task) = message.id.and_then(|id| self.operations.remove(&id)) {
                    task.abort();
                }
                (Vec::new(), None)
            }
            (Protocol::LegacyWs, "connection_terminate") => {
                (Vec::new(), Some((close::NORMAL, String::new())))
            }
            (_, other) => (
                Vec::new(),
                Some((
                    close::BAD_REQUEST,
                    format!("Unexpected message type {}", truncate(other)),
                )),
            ),
        }
    }

    fn start(&mut self, id: Option<String>, payload: Option<Value>) -> (Vec<Value>, Verdict) {
        let Some(id) = id.filter(|id| !id.is_empty() && id.len() <= 128) else {
            return (
                Vec::new(),
                Some((close::BAD_REQUEST, "An operation needs an id".into())),
            );
        };
        if !self.acknowledged {
            return self.refuse(
                &id,
                (close::UNAUTHORIZED, "Unauthorized".into()),
                "send connection_init first",
            );
        }
        if self.operations.contains_key(&id) {
            let reason = format!("Subscriber for {} already exists", truncate(&id));
            return self.refuse(
                &id,
                (close::DUPLICATE_ID, reason),
                "an operation with this id is running",
            );
        }
        let payload: OperationPayload = match payload.map(serde_json::from_value) {
            Some(Ok(payload)) => payload,
            _ => {
                return self.refuse(
                    &id,
                    (close::BAD_REQUEST, "Invalid subscribe payload".into()),
                    "the payload is not a GraphQL request",
                )
            }
        };
        if self.operations.len() >= self.config.max_operations {
            let errors = json!([{ "message": format!("at most {} operations may run on one connection", self.config.max_operations), "extensions": {"code": "TOO_MANY_OPERATIONS"} }]);
            return (vec![self.error_message(&id, errors)], None);
        }
        let mut request = Request::new(payload.query);
        if let Some(variables) = payload.variables {
            request = request.variables(Variables::from_json(variables));
        }
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        let correlation_id = uuid::Uuid::now_v7().to_string();
        let meta = RequestMeta {
            principal: self.meta.principal.clone(),
            actor: self.meta.actor.clone(),
            correlation_id: correlation_id.clone(),
        };
        let task = tokio::spawn(run_operation(
            self.schema.clone(),
            request
                .data(meta)
                .data(crate::graphql::limits::Allowance::single(
                    self.config.limits,
                )),
            Operation {
                id: id.clone(),
                correlation_id,
            },
            self.protocol,
            self.events.clone(),
        ));
        self.operations.insert(id, task);
        (Vec::new(), None)
    }

    /// An operation refused before it runs: graphql-transport-ws closes the socket with
    /// `close`; the legacy protocol answers the operation with an `error` saying `legacy`.
    fn refuse(&self, id: &str, close: (u16, String), legacy: &str) -> (Vec<Value>, Verdict) {
        match self.protocol {
            Protocol::TransportWs => (Vec::new(), Some(close)),
            Protocol::LegacyWs => (
                vec![json!({"type": "error", "id": id, "payload": {"message": legacy}})],
                None,
            ),
        }
    }

    fn error_message(&self, id: &str, errors: Value) -> Value {
        error_message(self.protocol, id, errors)
    }
}

fn error_message(protocol: Protocol, id: &str, errors: Value) -> Value {
    match protocol {
        Protocol::TransportWs => json!({"type": "error", "id": id, "payload": errors}),
        // The legacy protocol's `error` carries one error object.
        Protocol::LegacyWs => {
            let first = errors.get(0).cloned().unwrap_or_else(|| json!({}));
            json!({"type": "error", "id": id, "payload": first})
        }
    }
}

/// An error of the request itself (it did not parse or validate): no data, and no error that
/// happened at a path during execution.
fn is_request_error(response: &Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response
            .errors
            .iter()
            .all(|e: &ServerError| e.path.is_empty())
}

/// An operation running on a socket: its id there and the correlation id its errors carry.
struct Operation {
    id: String,
    correlation_id: String,
}

async fn run_operation(
    schema: InventorySchema,
    request: Request,
    operation: Operation,
    protocol: Protocol,
    events: mpsc::Sender<Event>,
) {
    let Operation { id, correlation_id } = operation;
    let span = tracing::info_span!("graphql_ws", correlation_id = %correlation_id);
    let mut responses = schema.execute_stream(request);
    let mut first = true;
    while let Some(mut response) = responses.next().instrument(span.clone()).await {
        crate::graphql::prepare_errors(&mut response, &correlation_id);
        if std::mem::replace(&mut first, false) && is_request_error(&response) {
            let errors = serde_json::to_value(&response.errors).unwrap_or_else(|_| json!([]));
            let _ = events
                .send(Event::Message(error_message(protocol, &id, errors)))
                .await;
            let _ = events.send(Event::Done(id)).await;
            return;
        }
        let payload = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
        let kind = match protocol {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        };
        let message = json!({"type": kind, "id": id, "payload": payload});
        if events.send(Event::Message(message)).await.is_err() {
            return;
        }
    }
    let _ = events
        .send(Event::Message(json!({"type": "complete", "id": id})))
        .await;
    let _ = events.send(Event::Done(id)).await;
}

fn text(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// At most 64 characters of a client's string, for a close reason (limited to 123 bytes).
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}
