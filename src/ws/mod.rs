//! GraphQL over WebSocket at `/graphql/ws`, written to the two protocols' documents rather than
//! taken from async-graphql's handler, which deviates from them where clients notice (a
//! validation error as `next` + `complete`, 1011 instead of 4401, duplicate ids ignored, no
//! `connection_init` timeout, an abnormal close on `connection_terminate`).
//!
//! - `graphql-transport-ws` (the `graphql-ws` npm client; the default when a client names
//!   none): `connection_init` within the timeout or close 4408; one only, or 4429; `subscribe`
//!   before the ack closes 4401; a second `subscribe` with an id in use closes 4409; a message
//!   that is not one of the protocol's closes 4400; an operation that fails to parse or
//!   validate is answered with one `error` message (no `complete`); `ping` gets `pong`.
//! - the legacy `graphql-ws` (subscriptions-transport-ws, Apollo's old client):
//!   `connection_init` → `connection_ack` and a keep-alive `ka` every 10 s; `start` / `data` /
//!   `error` / `complete` / `stop`; `connection_terminate` closes with 1000.
//!
//! A socket whose `Origin` is neither this service's own nor a configured CORS origin is
//! closed at once with 4403 before it reads a message (browsers send `Origin` on every
//! WebSocket, and no preflight protects it). The client authenticates in `connection_init`
//! (`{"authorization": "Bearer …"}`, or the upgrade's `Authorization` header); refused, it is
//! closed with 4403 before any `connection_ack`. Frames and messages are limited to the HTTP
//! body limit (1009 past it, refused from the frame's header, never buffered); sockets, the
//! operations of one socket and of one principal are capped (`quota`); a client that stops
//! reading is dropped with 1008 once its outgoing queue has stayed full for
//! `slow_consumer` (the queue holds a few messages, not megabytes).

mod connection;
mod frames;
mod operation;
mod quota;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::Response as HttpResponse;
use std::time::Duration;

use crate::graphql::InventorySchema;
use crate::http::admission::Admission;
use connection::Connection;
pub use quota::{SocketPermit, Sockets};

/// The protocols, by the name a client asks for in `Sec-WebSocket-Protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    TransportWs,
    LegacyWs,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::TransportWs => "graphql-transport-ws",
            Self::LegacyWs => "graphql-ws",
        }
    }

    /// The first protocol of the client's list this server speaks; `None` when it asks only
    /// for others. A client that names none gets graphql-transport-ws.
    fn choose(headers: &HeaderMap) -> Option<Self> {
        let offered: Vec<String> = headers
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|p| p.trim().to_owned())
            .filter(|p| !p.is_empty())
            .collect();
        if offered.is_empty() {
            return Some(Self::TransportWs);
        }
        offered.iter().find_map(|p| match p.as_str() {
            "graphql-transport-ws" => Some(Self::TransportWs),
            "graphql-ws" => Some(Self::LegacyWs),
            _ => None,
        })
    }
}

/// What the WebSocket endpoint is configured with.
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// How long a socket may stay open without `connection_init` (4408 after).
    pub init_timeout: Duration,
    /// Largest frame and message accepted.
    pub max_message_bytes: usize,
    /// Active operations one socket may run at once.
    pub max_operations: usize,
    /// Active operations one principal may run at once over all its sockets.
    pub max_operations_per_principal: usize,
    /// Sockets open at once.
    pub max_connections: usize,
    /// How long the outgoing queue may stay full before the socket is dropped (1008).
    pub slow_consumer: Duration,
    /// What each operation may cost (`graphql::limits`).
    pub limits: crate::graphql::limits::Limits,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            init_timeout: Duration::from_secs(3),
            max_message_bytes: crate::http::MAX_BODY_BYTES,
            max_operations: 20,
            max_operations_per_principal: 200,
            max_connections: 1_000,
            slow_consumer: Duration::from_secs(10),
            limits: crate::graphql::limits::Limits::default(),
        }
    }
}

/// What a socket learns from its upgrade request.
pub struct Handshake {
    /// Whether its `Origin` may connect (`cors::Origins::allows_socket`).
    pub origin_allowed: bool,
    /// The upgrade's `Authorization` header, used when `connection_init` carries none.
    pub authorization: Option<String>,
    /// The upgrade's `X-Actor` (heeded only for a principal that acts for others).
    pub actor: Option<String>,
    /// The upgrade's `X-Correlation-Id`, if it is a bounded token: every operation's then;
    /// otherwise each operation gets its own.
    pub correlation_id: Option<String>,
    /// The peer's address, for the failed-authentication limit.
    pub peer: Option<std::net::IpAddr>,
    pub admission: Admission,
}

/// Close codes of graphql-transport-ws (and 1000 for a normal close).
pub(crate) mod close {
    pub const NORMAL: u16 = 1000;
    /// The client did not read what it was sent (RFC 6455 "policy violation").
    pub const SLOW_CONSUMER: u16 = 1008;
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The key store could not be asked; retry later.
    pub const TRY_AGAIN_LATER: u16 = 1013;
    pub const BAD_REQUEST: u16 = 4400;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const FORBIDDEN: u16 = 4403;
    pub const SUBPROTOCOL_NOT_ACCEPTABLE: u16 = 4406;
    pub const INIT_TIMEOUT: u16 = 4408;
    pub const DUPLICATE_ID: u16 = 4409;
    pub const TOO_MANY_INITS: u16 = 4429;
}

/// Initial read and write buffer of a socket.
const SOCKET_BUFFER: usize = 8 * 1024;

/// Upgrades to a GraphQL WebSocket holding `permit` (one of `Sockets::try_open`); one from a
/// foreign origin is closed at once (4403).
pub fn upgrade(
    upgrade: WebSocketUpgrade,
    headers: &HeaderMap,
    handshake: Handshake,
    schema: InventorySchema,
    sockets: Sockets,
    permit: SocketPermit,
) -> HttpResponse {
    let chosen = Protocol::choose(headers);
    // The frame limit refuses an oversized frame from its header, before reading it. The
    // buffers start small (the library's 128 KiB each would be 256 MiB for 1,000 idle
    // sockets); a larger message still grows the read buffer as far as the limit.
    let upgrade = upgrade
        .max_frame_size(sockets.config.max_message_bytes)
        .max_message_size(sockets.config.max_message_bytes)
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER);
    let upgrade = match chosen {
        Some(protocol) => upgrade.protocols([protocol.name()]),
        None => upgrade,
    };
    upgrade.on_upgrade(move |socket| async move {
        let _open = permit;
        let refusal = match chosen {
            _ if !handshake.origin_allowed => {
                (close::FORBIDDEN, "Forbidden: this origin may not connect")
            }
            None => (
                close::SUBPROTOCOL_NOT_ACCEPTABLE,
                "Subprotocol not acceptable",
            ),
            Some(protocol) => {
                return Connection::new(schema, sockets, handshake, protocol)
                    .run(socket)
                    .await;
            }
        };
        let mut socket = socket;
        let _ = socket.send(close_message(refusal.0, refusal.1)).await;
    })
}

pub(crate) fn close_message(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from(reason.to_owned()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(protocols: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = protocols.parse() {
            headers.insert("sec-websocket-protocol", value);
        }
        headers
    }

    #[test]
    fn the_first_protocol_offered_that_the_server_speaks_is_chosen() {
        assert_eq!(
            Protocol::choose(&HeaderMap::new()),
            Some(Protocol::TransportWs)
        );
        assert_eq!(
            Protocol::choose(&offered("graphql-ws")),
            Some(Protocol::LegacyWs)
        );
        assert_eq!(
            Protocol::choose(&offered("mqtt, graphql-transport-ws, graphql-ws")),
            Some(Protocol::TransportWs)
        );
        assert_eq!(Protocol::choose(&offered("mqtt")), None);
    }
}
