//! What goes out on a socket: text messages, close reasons within the protocol's 123 bytes,
//! and sends bounded in time, so a client that stops reading ends its connection (1008)
//! instead of holding what it asked for here; and how a failed read ends a connection.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures::SinkExt;
use serde_json::Value;
use std::time::Duration;

use super::close;

pub(super) fn text(value: &Value) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// At most 64 characters of a client's string, for a close reason (limited to 123 bytes).
pub(super) fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

/// A close reason within the protocol's 123 bytes.
pub(super) fn reason(text: &str) -> String {
    let mut reason = String::new();
    for c in text.chars() {
        if reason.len() + c.len_utf8() > 123 {
            break;
        }
        reason.push(c);
    }
    reason
}

/// Sends one message, or says how the connection ends: the peer is gone, or it has not taken
/// anything for `within` (its queue full all that time).
pub(super) async fn deliver(
    sink: &mut futures::stream::SplitSink<WebSocket, Message>,
    message: Message,
    within: Duration,
) -> Result<(), (u16, String)> {
    match tokio::time::timeout(within, sink.send(message)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err((close::NORMAL, String::new())),
        Err(_) => {
            metrics::counter!(crate::metrics::EDGE_REFUSALS, "code" => "SLOW_CONSUMER")
                .increment(1);
            tracing::warn!(
                seconds = within.as_secs_f64(),
                "dropping a WebSocket client that reads nothing"
            );
            Err((
                close::SLOW_CONSUMER,
                format!("Slow consumer: nothing read for {} ms", within.as_millis()),
            ))
        }
    }
}

/// How a failed read ends the connection: a frame or message over the limit is 1009 (the
/// library reports it only as text, "Space limit exceeded: …"); anything else means the peer
/// is gone or broke the framing.
pub(super) fn read_failure(error: &axum::Error) -> (u16, String) {
    if error.to_string().contains("Space limit exceeded") {
        (close::MESSAGE_TOO_BIG, "Message too big".into())
    } else {
        (close::NORMAL, String::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_reason_fits_the_protocol() {
        assert!(reason(&"é".repeat(200)).len() <= 123);
        assert_eq!(reason("Forbidden"), "Forbidden");
    }
}
