//! The shared test harness: starts the real `inventory-service` binary on a random port with a
//! temporary data directory, and talks to it like a client does — GraphQL over HTTP and
//! subscriptions over WebSocket. Also runs the `verify` command (projections vs. a replay).
#![allow(dead_code)]

pub mod edge;
pub mod fault_proxy;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

pub const BINARY: &str = env!("CARGO_BIN_EXE_inventory-service");

/// Which storage the server under test uses: `INVENTORY_TEST_BACKEND=dynamodb` (with
/// `INVENTORY_TEST_DYNAMODB_ENDPOINT`) runs the same tests on DynamoDB; the default is SQLite.
pub fn backend_env(data_dir: &Path) -> Vec<(String, String)> {
    let mut env = match std::env::var("INVENTORY_TEST_BACKEND").as_deref() {
        Ok("dynamodb") => {
            let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT").expect(
                "INVENTORY_TEST_DYNAMODB_ENDPOINT must name the endpoint (scripts/dynamodb-local.sh start prints one)",
            );
            // One table set per data directory, so a restarted server finds its own tables.
            let name = data_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let prefix: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
            vec![
                ("INVENTORY_STORE".into(), "dynamodb".into()),
                ("INVENTORY_DYNAMODB_ENDPOINT".into(), endpoint),
                ("INVENTORY_TABLE_PREFIX".into(), format!("t{prefix}_")),
                ("INVENTORY_MIGRATE".into(), "true".into()),
            ]
        }
        _ => vec![("INVENTORY_STORE".into(), "sqlite".into())],
    };
    // `INVENTORY_TEST_BUS=rabbitmq` runs the same tests through the broker.
    if std::env::var("INVENTORY_TEST_BUS").as_deref() == Ok("rabbitmq") {
        env.push(("INVENTORY_BUS".into(), "rabbitmq".into()));
        env.push((
            "INVENTORY_BUS_PREFIX".into(),
            format!("{}.", prefix_of(data_dir)),
        ));
    }
    env
}

/// The storage a test opens through the library, in-process: SQLite in `data_dir`, or DynamoDB
/// with `INVENTORY_TEST_BACKEND=dynamodb` (and `INVENTORY_TEST_DYNAMODB_ENDPOINT`) on tables of
/// its own, named by `prefix` and a fresh id.
pub fn library_storage(
    data_dir: &Path,
    prefix: &str,
    snapshot_every: u64,
) -> inventory_service::config::StorageConfig {
    use inventory_service::config::{StorageConfig, StoreKind};
    let dynamodb = std::env::var("INVENTORY_TEST_BACKEND").as_deref() == Ok("dynamodb");
    StorageConfig {
        store: if dynamodb {
            StoreKind::Dynamodb
        } else {
            StoreKind::Sqlite
        },
        data_dir: data_dir.to_owned(),
        dynamodb_endpoint: dynamodb.then(|| {
            std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
                .expect("INVENTORY_TEST_DYNAMODB_ENDPOINT names the endpoint")
        }),
        table_prefix: format!("{prefix}{}_", uuid::Uuid::now_v7().simple()),
        migrate: dynamodb,
        dynamodb_report_capacity: false,
        outbox_shards: 4,
        snapshot_every,
    }
}

/// A name unique to a data directory, shared by every server started on it.
pub fn prefix_of(data_dir: &Path) -> String {
    let name = data_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = name.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("t{clean}")
}

pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    client: reqwest::Client,
}

impl Server {
    /// A fresh server on a fresh data directory.
    pub async fn start() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_on(temp.path()).await;
        server._temp = Some(temp);
        server
    }

    /// A server on an existing data directory (e.g. after a crash).
    pub async fn start_on(data_dir: &Path) -> Server {
        Server::start_with(data_dir, &[]).await
    }

    /// A server on a data directory with extra environment (bus, test hooks).
    pub async fn start_with(data_dir: &Path, extra: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, "127.0.0.1:0", extra, Stdio::inherit()).await
    }

    /// A server on `listen` (e.g. the address of one just killed, to restart it in place).
    pub async fn start_listening(data_dir: &Path, listen: &str, extra: &[(&str, &str)]) -> Server {
        Server::spawn(data_dir, listen, extra, Stdio::inherit()).await
    }

    /// `start_with`, its log (standard error) written to `log` for the test to read.
    pub async fn start_logging_to(data_dir: &Path, extra: &[(&str, &str)], log: &Path) -> Server {
        let file = std::fs::File::create(log).expect("create the server's log file");
        Server::spawn(data_dir, "127.0.0.1:0", extra, Stdio::from(file)).await
    }

    /// A server on `listen` (`127.0.0.1:0` for any port), its log appended to `log`, given
    /// `wait` to print its address (a loaded machine, a slow store).
    pub async fn start_appending_log(
        data_dir: &Path,
        listen: &str,
        extra: &[(&str, &str)],
        log: &Path,
        wait: Duration,
    ) -> Server {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the server's log file");
        Server::spawn_within(data_dir, listen, extra, Stdio::from(file), wait).await
    }

    async fn spawn(data_dir: &Path, listen: &str, extra: &[(&str, &str)], stderr: Stdio) -> Server {
        Server::spawn_within(data_dir, listen, extra, stderr, Duration::from_secs(30)).await
    }

    async fn spawn_within(
        data_dir: &Path,
        listen: &str,
        extra: &[(&str, &str)],
        stderr: Stdio,
        wait: Duration,
    ) -> Server {
        let mut child = Command::new(BINARY)
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .envs(backend_env(data_dir))
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start inventory-service");
        let stdout = child.stdout.take().expect("stdout");
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        let line = tokio::time::timeout(wait, line)
            .await
            .expect("server printed its address in time")
            .expect("join")
            .expect("read stdout");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_owned();
        Server {
            child,
            url,
            data_dir: data_dir.to_owned(),
            _temp: None,
            client: reqwest::Client::new(),
        }
    }

    /// The server process's id (for its `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `/health/ready` polled until 200 (30 s at most; it is 503 while the projections catch
    /// up with the store at start-up); returns its body.
    pub async fn until_ready(&self) -> Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let response = self
                .client
                .get(format!("{}/health/ready", self.url))
                .send()
                .await
                .expect("ready");
            let status = response.status().as_u16();
            let body: Value = response.json().await.expect("json");
            if status == 200 {
                return body;
            }
            assert_eq!(status, 503, "ready answers 200 or 503: {body}");
            assert!(std::time::Instant::now() < deadline, "never ready: {body}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn ws_url(&self) -> String {
        format!("{}/graphql/ws", self.url.replacen("http", "ws", 1))
    }

    /// The whole GraphQL response (data and errors).
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.client
            .post(format!("{}/graphql", self.url))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json response")
    }

    /// `data` of a response that must have no errors.
    pub async fn data(&self, query: &str, variables: Value) -> Value {
        let response = self.gql(query, variables).await;
        assert!(
            response.get("errors").is_none(),
            "unexpected errors: {response}"
        );
        response["data"].clone()
    }

    pub async fn post_raw(&self, body: Vec<u8>) -> (u16, Value) {
        self.try_post_raw(body).await.expect("request")
    }

    pub async fn try_post_raw(&self, body: Vec<u8>) -> Result<(u16, Value), reqwest::Error> {
        let response = self
            .client
            .post(format!("{}/graphql", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().expect("wait")
    }

    /// Polls `inventory-service verify` until the projections equal a replay of the store;
    /// returns the last differences (empty when consistent).
    pub async fn settle_and_verify(&self) -> Vec<String> {
        verify_until_consistent(&self.data_dir).await
    }

    // --- fixtures ---

    pub async fn create_warehouse(&self, code: &str) -> String {
        let data = self
            .data(
                "mutation($code: String!) { warehouseCreate(input: {name: \"Warehouse\", code: $code}) {
                    warehouse { id } userErrors { code message } } }",
                json!({ "code": code }),
            )
            .await;
        assert_eq!(data["warehouseCreate"]["userErrors"], json!([]));
        data["warehouseCreate"]["warehouse"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub async fn create_item(
        &self,
        warehouse_id: &str,
        sku: &str,
        quantity: i64,
        threshold: i64,
    ) -> String {
        let data = self
            .data(
                "mutation($w: ID!, $sku: String!, $q: Int!, $t: Int!) {
                    inventoryItemCreate(input: {warehouseId: $w, sku: $sku, productId: \"P\",
                        initialQuantity: $q, reorderThreshold: $t, reorderQuantity: 25}) {
                    inventoryItem { id } userErrors { code message } } }",
                json!({ "w": warehouse_id, "sku": sku, "q": quantity, "t": threshold }),
            )
            .await;
        assert_eq!(data["inventoryItemCreate"]["userErrors"], json!([]));
        data["inventoryItemCreate"]["inventoryItem"]["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub async fn adjust(&self, item_id: &str, delta: i64, reason: &str) -> Value {
        self.data(
            "mutation($i: ID!, $d: Int!, $r: AdjustmentReason!) {
                inventoryAdjust(input: {itemId: $i, delta: $d, reason: $r}) {
                inventoryItem { onHand allocated available version lowStock } userErrors { code field message } } }",
            json!({ "i": item_id, "d": delta, "r": reason }),
        )
        .await["inventoryAdjust"]
            .clone()
    }

    /// `inventory-service api-key create` on this server's store; returns the secret.
    pub fn create_key(&self, name: &str, role: &str) -> String {
        let output = Command::new(BINARY)
            .args([
                "api-key",
                "create",
                "--name",
                name,
                "--role",
                role,
                "--data-dir",
            ])
            .arg(&self.data_dir)
            .envs(backend_env(&self.data_dir))
            .output()
            .expect("run api-key create");
        assert!(output.status.success(), "api-key create: {output:?}");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .expect("a secret")
            .trim()
            .to_owned()
    }

    /// Polls a query until `done` holds for its data, or panics after 10 s.
    pub async fn eventually(
        &self,
        query: &str,
        variables: Value,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let data = self.data(query, variables.clone()).await;
            if done(&data) {
                return data;
            }
            assert!(
                Instant::now() < deadline,
                "condition never held; last data: {data}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn verify_until_consistent(data_dir: &Path) -> Vec<String> {
    verify_until_consistent_with(data_dir, backend_env(data_dir)).await
}

/// `inventory-service verify` with these settings, polled until consistent (15 s at most).
pub async fn verify_until_consistent_with(
    data_dir: &Path,
    env: Vec<(String, String)>,
) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let output = tokio::process::Command::new(BINARY)
            .arg("verify")
            .arg("--data-dir")
            .arg(data_dir)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("RUST_LOG", "error")
            .output()
            .await
            .expect("run verify");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|_| {
            panic!(
                "verify printed {:?}",
                String::from_utf8_lossy(&output.stdout)
            )
        });
        if report["consistent"] == json!(true) || Instant::now() > deadline {
            return report["differences"]
                .as_array()
                .map(|d| d.iter().map(|v| v.to_string()).collect())
                .unwrap_or_default();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One GraphQL subscription over WebSocket.
pub struct Subscription {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    legacy: bool,
}

impl Subscription {
    /// Subscribes with graphql-transport-ws (or the legacy graphql-ws when `legacy`), and waits
    /// briefly so the server has registered the subscription before the caller acts.
    pub async fn open(
        server: &Server,
        query: &str,
        variables: Value,
        legacy: bool,
    ) -> Subscription {
        let mut request = server.ws_url().into_client_request().expect("request");
        let protocol = if legacy {
            "graphql-ws"
        } else {
            "graphql-transport-ws"
        };
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().expect("header"));
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket");
        socket
            .send(Message::text(
                json!({"type": "connection_init", "payload": {}}).to_string(),
            ))
            .await
            .expect("init");
        loop {
            let message = next_json(&mut socket).await.expect("ack");
            if message["type"] == "connection_ack" {
                break;
            }
        }
        let start = if legacy { "start" } else { "subscribe" };
        socket
            .send(Message::text(
                json!({"id": "1", "type": start, "payload": {"query": query, "variables": variables}}).to_string(),
            ))
            .await
            .expect("subscribe");
        tokio::time::sleep(Duration::from_millis(300)).await;
        Subscription { socket, legacy }
    }

    /// The next `data` delivered, or None if nothing arrives within `wait`.
    pub async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let message = tokio::time::timeout(left, next_json(&mut self.socket))
                .await
                .ok()??;
            let kind = message["type"].as_str().unwrap_or_default();
            match kind {
                "next" | "data" => {
                    let payload = &message["payload"];
                    assert!(
                        payload.get("errors").is_none(),
                        "subscription error: {payload}"
                    );
                    return Some(payload["data"].clone());
                }
                "error" => panic!("subscription error: {message}"),
                "ping" => {
                    let _ = self
                        .socket
                        .send(Message::text(json!({"type": "pong"}).to_string()))
                        .await;
                }
                _ => {}
            }
            let _ = self.legacy;
        }
    }
}

async fn next_json(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<Value> {
    while let Some(message) = socket.next().await {
        match message.ok()? {
            Message::Text(text) => return serde_json::from_str(&text).ok(),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
    None
}
