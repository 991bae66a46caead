//! One operation on a socket, run on a task of its own: its results go to the socket's queue
//! as JSON text, one at a time (so a socket that takes nothing stops the operation, and a
//! catch-up stops reading the store), then its end; a request that never executed (it did not
//! parse or validate) is one `error` message. The task holds the operation's slot among its
//! principal's operations until it ends or is aborted.

use async_graphql::{Request, Response, ServerError};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tracing::Instrument;

use super::quota::OperationSlot;
use super::Protocol;
use crate::graphql::InventorySchema;

/// What an operation's task reports to the socket: a message as sent (JSON text, the
/// smallest form to hold while the queue waits), or its end.
pub(super) enum Event {
    Message(String),
    Done(String),
}

pub(super) fn error_message(protocol: Protocol, id: &str, errors: Value) -> Value {
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

/// An operation running on a socket: its id there, the correlation id its errors carry, and
/// its slot among its principal's operations (given back when the task ends or is aborted).
pub(super) struct Operation {
    pub(super) id: String,
    pub(super) correlation_id: String,
    pub(super) slot: OperationSlot,
}

pub(super) async fn run_operation(
    schema: InventorySchema,
    request: Request,
    operation: Operation,
    protocol: Protocol,
    events: mpsc::Sender<Event>,
) {
    let Operation {
        id,
        correlation_id,
        slot: _slot,
    } = operation;
    let span = tracing::info_span!("graphql_ws", correlation_id = %correlation_id);
    let mut responses = schema.execute_stream(request);
    let mut first = true;
    while let Some(mut response) = responses.next().instrument(span.clone()).await {
        crate::graphql::prepare_errors(&mut response, &correlation_id);
        if std::mem::replace(&mut first, false) && is_request_error(&response) {
            let errors = serde_json::to_value(&response.errors).unwrap_or_else(|_| json!([]));
            let _ = events
                .send(Event::Message(
                    error_message(protocol, &id, errors).to_string(),
                ))
                .await;
            let _ = events.send(Event::Done(id)).await;
            return;
        }
        let payload = serde_json::to_value(&response).unwrap_or_else(|_| json!({}));
        let kind = match protocol {
            Protocol::TransportWs => "next",
            Protocol::LegacyWs => "data",
        };
        let message = json!({"type": kind, "id": id, "payload": payload}).to_string();
        if events.send(Event::Message(message)).await.is_err() {
            return;
        }
    }
    let _ = events
        .send(Event::Message(
            json!({"type": "complete", "id": id}).to_string(),
        ))
        .await;
    let _ = events.send(Event::Done(id)).await;
}
