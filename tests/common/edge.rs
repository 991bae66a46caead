//! Helpers for the edge tests (tests/edge_*.rs): raw TCP for what no well-behaved client
//! sends (trickled headers, lying bodies, foreign `Host`), WebSockets opened with chosen
//! headers and socket buffers, the server's resident memory, and timing.

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::Server;

pub type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// `127.0.0.1:PORT` of the server.
pub fn authority(server: &Server) -> String {
    server
        .url
        .strip_prefix("http://")
        .unwrap_or(&server.url)
        .to_owned()
}

pub async fn tcp(server: &Server) -> TcpStream {
    TcpStream::connect(authority(server))
        .await
        .expect("connect")
}

/// Reads until the server closes the connection (or `limit` passes): what it sent, and
/// whether it closed (EOF or reset) rather than the limit running out.
pub async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let deadline = Instant::now() + limit;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return (String::from_utf8_lossy(&received).into_owned(), false);
        };
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return (String::from_utf8_lossy(&received).into_owned(), true)
            }
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
        }
    }
}

/// One raw HTTP/1.1 exchange: `request` as written, the whole answer as text.
pub async fn raw(server: &Server, request: &str) -> String {
    let mut stream = tcp(server).await;
    stream.write_all(request.as_bytes()).await.expect("write");
    read_until_closed(&mut stream, Duration::from_secs(10))
        .await
        .0
}

/// The status code of a raw HTTP answer.
pub fn status_of(answer: &str) -> u16 {
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

/// The server's resident memory, in KiB (`VmRSS` of /proc/<pid>/status).
pub fn rss_kib(server: &Server) -> u64 {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", server.pid())).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

/// A WebSocket to the server with extra upgrade headers and, when given, a small receive
/// buffer (so a client that stops reading fills up soon); the subprotocol is
/// graphql-transport-ws unless a header names another.
pub async fn websocket(
    server: &Server,
    headers: &[(&str, &str)],
    receive_buffer: Option<u32>,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = server.ws_url().into_client_request().expect("request");
    let fields = request.headers_mut();
    fields.insert(
        "sec-websocket-protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName =
            name.parse().expect("header name");
        fields.insert(name, value.parse().expect("header value"));
    }
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let address = authority(server).parse().expect("address");
    let stream = socket.connect(address).await.expect("connect");
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(socket, _)| socket)
}

pub async fn send(socket: &mut Socket, message: Value) {
    socket
        .send(Message::text(message.to_string()))
        .await
        .expect("send");
}

/// `connection_init` with `payload`, then the next message (the ack, or whatever came).
pub async fn init(socket: &mut Socket, payload: Value) -> Reply {
    send(
        socket,
        json!({"type": "connection_init", "payload": payload}),
    )
    .await;
    next(socket, Duration::from_secs(10)).await
}

/// What the server sent next.
#[derive(Debug)]
pub enum Reply {
    Json(Value),
    Closed(Option<(u16, String)>),
    /// Nothing within the wait.
    Silent,
}

pub async fn next(socket: &mut Socket, wait: Duration) -> Reply {
    let deadline = Instant::now() + wait;
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Reply::Silent;
        };
        match tokio::time::timeout(left, socket.next()).await {
            Err(_) => return Reply::Silent,
            Ok(None) | Ok(Some(Err(_))) => return Reply::Closed(None),
            Ok(Some(Ok(Message::Text(text)))) => {
                return Reply::Json(serde_json::from_str(&text).unwrap_or(Value::Null))
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return Reply::Closed(
                    frame.map(|CloseFrame { code, reason }| (u16::from(code), reason.to_string())),
                )
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Reads past data messages to the close (or `wait`): the close code, if one came, and how
/// many messages were read before it.
pub async fn close_code(socket: &mut Socket, wait: Duration) -> (Option<u16>, usize) {
    let deadline = Instant::now() + wait;
    let mut messages = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(socket, left).await {
            Reply::Json(_) => messages += 1,
            Reply::Closed(frame) => return (frame.map(|(code, _)| code), messages),
            Reply::Silent => return (None, messages),
        }
    }
}

/// A `subscribe` of graphql-transport-ws.
pub fn subscribe(id: &str, query: &str) -> Value {
    json!({"id": id, "type": "subscribe", "payload": {"query": query}})
}

/// The error code of an `error` message for `id`, if that is what `reply` is.
pub fn error_code(reply: &Reply, id: &str) -> Option<String> {
    match reply {
        Reply::Json(message) if message["type"] == "error" && message["id"] == id => message
            ["payload"][0]["extensions"]["code"]
            .as_str()
            .map(str::to_owned),
        _ => None,
    }
}

/// A gauge or counter of the server's `/metrics` (summed over its labels), 0 when absent.
pub async fn metric(server: &Server, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub const CREATE: &str = "mutation($code: String!) { warehouseCreate(input: {name: \"W\", code: $code}) { warehouse { id } userErrors { code } } }";

pub async fn start(env: &[(&str, &str)]) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(dir.path(), env).await;
    (server, dir)
}

/// Every warehouse code, read once a warehouse created after everything before it is
/// projected (so anything committed earlier is there too).
pub async fn codes_after_control(server: &Server) -> Vec<String> {
    server.create_warehouse("CONTROL").await;
    let data = server
        .eventually(
            "{ warehouses(first: 500) { edges { node { code } } } }",
            json!({}),
            |data| data.to_string().contains("CONTROL"),
        )
        .await;
    data["warehouses"]["edges"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|edge| edge["node"]["code"].as_str().map(str::to_owned))
        .collect()
}

pub fn post(server: &Server) -> reqwest::RequestBuilder {
    reqwest::Client::new().post(format!("{}/graphql", server.url))
}

pub fn create_body(code: &str) -> String {
    json!({ "query": CREATE, "variables": { "code": code } }).to_string()
}
