//! One GraphQL WebSocket connection: the client's messages judged by the protocol it chose,
//! `connection_init` authenticated before the ack, each operation run on a task of its own
//! (within the socket's, the principal's and the rate limits) whose results (and its end) come
//! back through one short queue to the socket, and the close frame the connection ends with.
//! A send that cannot complete within `slow_consumer` ends the connection (1008): the client
//! has stopped reading, and what it asked for would otherwise wait here.

use async_graphql::{Request, Variables};
use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::frames::{deliver, read_failure, reason, text, truncate};
use super::operation::{error_message, run_operation, Event, Operation};
use super::{close, close_message, Handshake, Protocol, Sockets};
use crate::graphql::{InventorySchema, RequestMeta};
use crate::http::admission::Refused;

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

/// How many messages wait for the socket: with each operation's task holding at most one more
/// while it waits for room, a client that stops reading holds a few events' worth here, and
/// the store is read no further than that (`graphql::subscription` pages its catch-up).
const QUEUE: usize = 16;

/// How long the close frame may take to go out to a client that may not be reading.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why the connection ends (a close frame to send), or `None` to go on.
type Verdict = Option<(u16, String)>;

pub(super) struct Connection {
    schema: InventorySchema,
    sockets: Sockets,
    handshake: Handshake,
    protocol: Protocol,
    /// Who the socket runs as, once `connection_init` was authenticated (and acknowledged).
    meta: Option<RequestMeta>,
    operations: HashMap<String, JoinHandle<()>>,
    events: mpsc::Sender<Event>,
    inbox: Option<mpsc::Receiver<Event>>,
}

impl Connection {
    pub(super) fn new(
        schema: InventorySchema,
        sockets: Sockets,
        handshake: Handshake,
        protocol: Protocol,
    ) -> Self {
        let (events, inbox) = mpsc::channel(QUEUE);
        Self {
            schema,
            sockets,
            handshake,
            protocol,
            meta: None,
            operations: HashMap::new(),
            events,
            inbox: Some(inbox),
        }
    }

    fn acknowledged(&self) -> bool {
        self.meta.is_some()
    }

    pub(super) async fn run(mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let Some(mut inbox) = self.inbox.take() else {
            return;
        };
        let slow = self.sockets.config.slow_consumer;
        let deadline = tokio::time::sleep(self.sockets.config.init_timeout);
        tokio::pin!(deadline);
        let mut keep_alive = tokio::time::interval(Duration::from_secs(10));
        let verdict: (u16, String) = loop {
            tokio::select! {
                () = &mut deadline, if !self.acknowledged() => {
                    break (close::INIT_TIMEOUT, "Connection initialisation timeout".into());
                }
                _ = keep_alive.tick(), if self.acknowledged() && self.protocol == Protocol::LegacyWs => {
                    if let Err(end) = deliver(&mut sink, text(&json!({"type": "ka"})), slow).await {
                        break end;
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
                    if let Err(end) = deliver(&mut sink, Message::Text(Utf8Bytes::from(message)), slow).await {
                        break end;
                    }
                }
                incoming = stream.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => break read_failure(&error),
                        // The peer went away: nothing to answer.
                        None => break (close::NORMAL, String::new()),
                    };
                    let (replies, verdict) = match message {
                        Message::Text(body) => self.on_text(body.as_str()).await,
                        Message::Binary(_) => (
                            Vec::new(),
                            Some((close::BAD_REQUEST, "Binary messages are not part of the protocol".into())),
                        ),
                        Message::Close(_) => (Vec::new(), Some((close::NORMAL, String::new()))),
                        Message::Ping(_) | Message::Pong(_) => (Vec::new(), None),
                    };
                    let mut ended = None;
                    for reply in replies {
                        if let Err(end) = deliver(&mut sink, text(&reply), slow).await {
                            ended = Some(end);
                            break;
                        }
                    }
                    if let Some(verdict) = verdict {
                        break verdict;
                    }
                    if let Some(end) = ended {
                        break end;
                    }
                }
            }
        };
        for (_, task) in self.operations.drain() {
            task.abort();
        }
        let (code, reason) = verdict;
        // A client that reads nothing would hold these forever; dropping the socket closes it.
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.send(close_message(code, &reason))).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, sink.close()).await;
    }

    /// Handles one client message: the messages to send back at once, and whether to close.
    async fn on_text(&mut self, body: &str) -> (Vec<Value>, Verdict) {
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
            (_, "connection_init") => self.init(message.payload).await,
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
        let Some(meta) = self.meta.clone() else {
            return self.refuse(
                &id,
                (close::UNAUTHORIZED, "Unauthorized".into()),
                "send connection_init first",
            );
        };
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
        let max = self.sockets.config.max_operations;
        if self.operations.len() >= max {
            let message = format!("at most {max} operations may run on one connection");
            return (
                vec![self.refusal(&id, TOO_MANY_OPERATIONS, message, None)],
                None,
            );
        }
        let principal = &meta.principal;
        let Some(slot) = self.sockets.try_run(&principal.name) else {
            let message = format!(
                "at most {} operations may run at once for {} (over all its connections)",
                self.sockets.config.max_operations_per_principal, principal.name
            );
            return (
                vec![self.refusal(&id, TOO_MANY_OPERATIONS, message, None)],
                None,
            );
        };
        if let Err(refused) = self.handshake.admission.admit(principal) {
            let retry = refused.retry_after_secs();
            return (
                vec![self.refusal(&id, refused.code(), refused.message(), retry)],
                None,
            );
        }
        let mut request = Request::new(payload.query);
        if let Some(variables) = payload.variables {
            request = request.variables(Variables::from_json(variables));
        }
        if let Some(name) = payload.operation_name {
            request = request.operation_name(name);
        }
        let correlation_id = self
            .handshake
            .correlation_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
        let meta = RequestMeta {
            correlation_id: correlation_id.clone(),
            ..meta
        };
        let task = tokio::spawn(run_operation(
            self.schema.clone(),
            request
                .data(meta)
                .data(crate::graphql::limits::Allowance::single(
                    self.sockets.config.limits,
                )),
            Operation {
                id: id.clone(),
                correlation_id,
                slot,
            },
            self.protocol,
            self.events.clone(),
        ));
        self.operations.insert(id, task);
        (Vec::new(), None)
    }

    /// `connection_init`: authenticates the payload's `authorization` (or the upgrade's
    /// `Authorization` header) and acknowledges, or closes: 4403 when refused, 1013 when the
    /// key store cannot be asked. A second one closes with 4429 (graphql-transport-ws) or is
    /// ignored (graphql-ws).
    async fn init(&mut self, payload: Option<Value>) -> (Vec<Value>, Verdict) {
        if self.acknowledged() {
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
        let authorization =
            authorization(payload.as_ref()).or_else(|| self.handshake.authorization.clone());
        let admission = &self.handshake.admission;
        match admission
            .authenticate(authorization.as_deref(), self.handshake.peer)
            .await
        {
            Ok(principal) => {
                let actor = crate::auth::actor(&principal, self.handshake.actor.as_deref());
                self.meta = Some(RequestMeta {
                    principal,
                    actor,
                    correlation_id: String::new(),
                });
                let mut replies = vec![json!({"type": "connection_ack"})];
                if self.protocol == Protocol::LegacyWs {
                    replies.push(json!({"type": "ka"}));
                }
                (replies, None)
            }
            Err(refused) => {
                let close = match refused {
                    Refused::Unavailable => (
                        close::TRY_AGAIN_LATER,
                        "Try again later: the key store is unavailable".to_owned(),
                    ),
                    _ => (
                        close::FORBIDDEN,
                        reason(&format!("Forbidden: {}", refused.message())),
                    ),
                };
                let replies = match self.protocol {
                    Protocol::TransportWs => Vec::new(),
                    Protocol::LegacyWs => vec![json!({
                        "type": "connection_error",
                        "payload": { "message": refused.message(), "extensions": { "code": refused.code() } },
                    })],
                };
                (replies, Some(close))
            }
        }
    }

    /// An operation refused with an error of this code (counted in `/metrics`).
    fn refusal(&self, id: &str, code: &'static str, message: String, retry: Option<u64>) -> Value {
        metrics::counter!(crate::metrics::EDGE_REFUSALS, "code" => code).increment(1);
        let mut extensions = json!({ "code": code });
        if let Some(seconds) = retry {
            extensions["retryAfter"] = json!(seconds);
        }
        self.error_message(
            id,
            json!([{ "message": message, "extensions": extensions }]),
        )
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

const TOO_MANY_OPERATIONS: &str = "TOO_MANY_OPERATIONS";

/// The credentials of a `connection_init` payload: `authorization` (any case), at the top or
/// under `headers` as some clients send it. A value that is not a string is passed on as text,
/// to be refused, never ignored into anonymous access.
fn authorization(payload: Option<&Value>) -> Option<String> {
    let find = |object: &serde_json::Map<String, Value>| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| match value {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
    };
    let object = payload?.as_object()?;
    find(object).or_else(|| object.get("headers")?.as_object().and_then(find))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_in_the_init_payload() {
        let given = |payload: Value| authorization(Some(&payload));
        assert_eq!(
            given(json!({"authorization": "Bearer a"})).as_deref(),
            Some("Bearer a")
        );
        assert_eq!(
            given(json!({"Authorization": "Bearer b"})).as_deref(),
            Some("Bearer b")
        );
        assert_eq!(
            given(json!({"headers": {"authorization": "Bearer c"}})).as_deref(),
            Some("Bearer c")
        );
        assert_eq!(given(json!({"authorization": 5})).as_deref(), Some("5"));
        assert_eq!(given(json!({})), None);
        assert_eq!(authorization(None), None);
    }
}
