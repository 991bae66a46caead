//! A fault-injecting HTTP proxy between the service and a local DynamoDB endpoint: the paths no
//! emulator takes. For a chosen fraction of calls it answers itself in DynamoDB's own error
//! shapes (a `TransactionConflict` cancellation, throttling), holds a request past the SDK's
//! attempt timeout before forwarding it, or forwards it and then loses the reply — the commit
//! landed and its caller cannot know, the case where a retry must not apply twice. In front
//! of it sits a TCP relay that can add latency to calls and reset connections (RST) before a
//! request is passed on or after it was, so that its reply never arrives.
#![allow(dead_code)]

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Longer than the SDK's 3 s attempt timeout (`src/dynamodb` `client()`), so a held call is
/// retried by the SDK while the original is still on its way.
pub const PAST_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(3_500);
const COMMIT: &str = "TransactWriteItems";
const WRITES: [&str; 5] = [
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "BatchWriteItem",
    "TransactWriteItems",
];

/// Fractions of calls (0.0–1.0, summed in this order) that meet each fault.
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// `TransactionCanceledException` with a `TransactionConflict` reason (commits only).
    pub conflict: f64,
    pub throttling: f64,
    pub provisioned: f64,
    /// Held past the attempt timeout, then forwarded: it may land after its caller gave up.
    pub late: f64,
    /// Forwarded, then the reply is replaced by an error or held past the attempt timeout.
    pub lost_reply: f64,
}

impl Faults {
    pub const NONE: Faults = Faults {
        conflict: 0.0,
        throttling: 0.0,
        provisioned: 0.0,
        late: 0.0,
        lost_reply: 0.0,
    };

    pub fn throttle_everything() -> Faults {
        Faults {
            throttling: 1.0,
            ..Faults::NONE
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    Conflict,
    Throttling,
    Provisioned,
    Late,
    /// Forwarded; the reply replaced by a `TransactionConflict` cancellation.
    LostToConflict,
    /// Forwarded; the reply replaced by `ThrottlingException`.
    LostToThrottling,
    /// Forwarded; the reply held past the attempt timeout.
    LostToTimeout,
    /// Forwarded; the reply replaced by `ThrottlingException`, and the SDK's later attempts of
    /// the same request throttled too: the caller fails although the commit landed.
    LostForGood,
    /// Held for a while (`set_latency`), then handled as the rates say.
    Delayed,
    /// The connection reset (RST) before the request was passed on: nothing reached the store.
    ResetBeforeForward,
    /// The request passed on, then the connection reset instead of the reply.
    ResetAfterForward,
}

/// What the proxy saw and did.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Calls by operation (the `X-Amz-Target` suffix).
    pub calls: BTreeMap<String, u64>,
    pub faults: BTreeMap<Fault, u64>,
    /// Replies lost after the call was forwarded.
    pub lost_replies: u64,
    /// Of those, commits (`TransactWriteItems`) the endpoint had applied.
    pub lost_commits: u64,
    /// Commits whose very request came again (the SDK's retries).
    pub commit_retries: u64,
}

impl Stats {
    pub fn total_calls(&self) -> u64 {
        self.calls.values().sum()
    }
    pub fn total_faults(&self) -> u64 {
        self.faults.values().sum()
    }
    pub fn faulted(&self, fault: Fault) -> u64 {
        self.faults.get(&fault).copied().unwrap_or(0)
    }
}

struct Inner {
    upstream: String,
    client: reqwest::Client,
    seed: u64,
    draws: AtomicU64,
    faults: Mutex<Faults>,
    /// The next this-many commits lose their reply whatever the rates, one of each kind in turn.
    forced_lost_commits: AtomicU32,
    /// Commits seen, by a hash of their request body, to recognise the SDK's retries.
    commits_seen: Mutex<HashSet<u64>>,
    /// Requests (by body hash) to throttle on their next attempts, with how many are left.
    refused_again: Mutex<HashMap<u64, u32>>,
    /// Forwards held or running in their own tasks, which may land after their caller left.
    in_flight: AtomicU64,
    /// Every write that names this table is throttled, whatever the rates (`throttle_table`).
    throttled_table: Mutex<Option<String>>,
    /// Fraction of calls held, and the range of the hold in ms (`set_latency`).
    latency: Mutex<Option<(f64, u64, u64)>>,
    /// Chance that a chunk a client sends resets its connection (`set_resets`), in millionths.
    resets_ppm: AtomicU64,
    stats: Mutex<Stats>,
}

pub struct FaultProxy {
    pub url: String,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FaultProxy {
    /// Listens on 127.0.0.1 and forwards to `upstream`; no faults until `set`.
    pub async fn start(upstream: &str, seed: u64) -> FaultProxy {
        let front = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let url = format!("http://{}", front.local_addr().expect("proxy address"));
        // The HTTP side listens on an address of its own, behind the TCP relay.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy's HTTP side");
        let behind = listener.local_addr().expect("proxy address");
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("proxy http client"),
            seed,
            draws: AtomicU64::new(0),
            faults: Mutex::new(Faults::NONE),
            forced_lost_commits: AtomicU32::new(0),
            commits_seen: Mutex::new(HashSet::new()),
            refused_again: Mutex::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
            throttled_table: Mutex::new(None),
            latency: Mutex::new(None),
            resets_ppm: AtomicU64::new(0),
            stats: Mutex::new(Stats::default()),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let relay = inner.clone();
        let task = tokio::spawn(async move {
            let relay = tokio::spawn(async move {
                while let Ok((client, _)) = front.accept().await {
                    tokio::spawn(relay_connection(relay.clone(), client, behind));
                }
            });
            let _ = axum::serve(listener, router).await;
            relay.abort();
        });
        FaultProxy { url, inner, task }
    }

    /// Holds `fraction` of the calls (drawn per call) for `min..=max` before handling them;
    /// `None` stops it.
    pub fn set_latency(&self, latency: Option<(f64, Duration, Duration)>) {
        *lock(&self.inner.latency) = latency.map(|(fraction, min, max)| {
            let (min, max) = (min.as_millis() as u64, max.as_millis() as u64);
            (fraction, min, max.max(min))
        });
    }

    /// Resets (RST) connections: each chunk a client sends does so with chance `rate`, half of
    /// the time before the chunk is passed on and half after (its reply then never arrives).
    /// 0.0 stops it.
    pub fn set_resets(&self, rate: f64) {
        let ppm = (rate.clamp(0.0, 1.0) * 1_000_000.0) as u64;
        self.inner.resets_ppm.store(ppm, Ordering::SeqCst);
    }

    pub fn set(&self, faults: Faults) {
        *lock(&self.inner.faults) = faults;
    }

    /// Throttles every write that names `table` (a projection table, say), as DynamoDB does
    /// when a table's write capacity is spent: reads of it go through, as do the other tables'
    /// calls (as the rates say). `None` stops it.
    pub fn throttle_table(&self, table: Option<&str>) {
        *lock(&self.inner.throttled_table) = table.map(str::to_owned);
    }

    /// Makes the next `n` commits lose their reply after landing, whatever the rates.
    pub fn lose_next_commits(&self, n: u32) {
        self.inner.forced_lost_commits.store(n, Ordering::SeqCst);
    }

    pub fn stats(&self) -> Stats {
        lock(&self.inner.stats).clone()
    }

    /// Waits (at most `limit`) until no held or detached forward is still on its way, so that
    /// what the store holds afterwards is final; whether it got there.
    pub async fn quiesce(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.inner.in_flight.load(Ordering::SeqCst) > 0 {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    pub fn reset_stats(&self) {
        *lock(&self.inner.stats) = Stats::default();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Inner {
    /// A uniform draw in [0, 1), reproducible from the seed and the call's position.
    fn draw(&self) -> f64 {
        // SplitMix64: the n-th output of a generator seeded with `seed`.
        let n = self.draws.fetch_add(1, Ordering::Relaxed) + 1;
        let mut z = self
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn choose(&self, operation: &str, request: u64, body: &[u8]) -> Option<Fault> {
        if let Some(table) = lock(&self.throttled_table).as_deref() {
            if WRITES.contains(&operation) && names_table(body, table) {
                return Some(Fault::Throttling);
            }
        }
        let commit = operation == COMMIT;
        let lost = [
            Fault::LostToConflict,
            Fault::LostToThrottling,
            Fault::LostToTimeout,
            Fault::LostForGood,
        ];
        if let Some(left) = lock(&self.refused_again).get_mut(&request) {
            if *left > 0 {
                *left -= 1;
                return Some(Fault::Throttling);
            }
        }
        // Forced losses are for the service's commits (events, API keys), not the projectors'
        // transactions, whose loss a test of command retries would not see.
        if commit && !writes_projections(body) {
            let forced =
                self.forced_lost_commits
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            if let Ok(n) = forced {
                return Some(lost[n as usize % lost.len()]);
            }
        }
        let faults = *lock(&self.faults);
        let (r, pick) = (self.draw(), self.draw());
        let lost_kind = if commit {
            lost[(pick * 4.0) as usize % 4]
        } else {
            // A cancellation is only a commit's answer; other calls just lose the reply.
            lost[1 + (pick * 2.0) as usize % 2]
        };
        let mut edge = 0.0;
        for (rate, fault) in [
            (faults.conflict, Fault::Conflict),
            (faults.throttling, Fault::Throttling),
            (faults.provisioned, Fault::Provisioned),
            (faults.late, Fault::Late),
            (faults.lost_reply, lost_kind),
        ] {
            edge += rate;
            if r < edge {
                return (commit || fault != Fault::Conflict).then_some(fault);
            }
        }
        None
    }

    async fn forward(&self, headers: &HeaderMap, body: Bytes) -> Response {
        let mut headers = headers.clone();
        for name in ["host", "content-length", "connection", "transfer-encoding"] {
            headers.remove(name);
        }
        let reply = self
            .client
            .post(format!("{}/", self.upstream))
            .headers(headers)
            .body(body)
            .send()
            .await;
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
        };
        let status = reply.status();
        let mut headers = reply.headers().clone();
        for name in ["content-length", "connection", "transfer-encoding"] {
            headers.remove(name);
        }
        let body = reply.bytes().await.unwrap_or_default();
        let mut response = Response::new(Body::from(body));
        *response.status_mut() = status;
        *response.headers_mut() = headers;
        response
    }
}

/// Relays one client connection to the HTTP side, byte for byte, unless a reset is drawn.
async fn relay_connection(
    inner: Arc<Inner>,
    client: tokio::net::TcpStream,
    behind: std::net::SocketAddr,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
    let Ok(upstream) = tokio::net::TcpStream::connect(behind).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let (mut from_client, mut from_upstream) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    // Set once a chunk went on with its reply to be cut: the next bytes back reset instead.
    let mut cut_reply = false;
    // Closed whole with a zero linger: an RST, no FIN first (dropping a write half alone
    // would shut it down gracefully).
    let reset = |fault: Fault, read: OwnedReadHalf, write: OwnedWriteHalf| {
        *lock(&inner.stats).faults.entry(fault).or_default() += 1;
        if let Ok(stream) = read.reunite(write) {
            let _ = stream.set_zero_linger();
        }
    };
    loop {
        tokio::select! {
            read = client_read.read(&mut from_client) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                let ppm = inner.resets_ppm.load(Ordering::SeqCst);
                if ppm > 0 && !cut_reply && inner.draw() < ppm as f64 / 1_000_000.0 {
                    if inner.draw() < 0.5 {
                        return reset(Fault::ResetBeforeForward, client_read, client_write);
                    }
                    cut_reply = true;
                }
                if upstream_write.write_all(&from_client[..n]).await.is_err() {
                    return;
                }
            }
            read = upstream_read.read(&mut from_upstream) => {
                let n = match read { Ok(0) | Err(_) => return, Ok(n) => n };
                if cut_reply {
                    return reset(Fault::ResetAfterForward, client_read, client_write);
                }
                if client_write.write_all(&from_upstream[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Whether a request names a projection table (`…projection_…`, whatever its prefix).
fn writes_projections(body: &[u8]) -> bool {
    fn walk(value: &Value) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(key, value)| match key.as_str() {
                "TableName" => value.as_str().is_some_and(|t| t.contains("projection_")),
                _ => walk(value),
            }),
            Value::Array(values) => values.iter().any(walk),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|body| walk(&body))
}

/// Whether a request body names `table`: as its `TableName` (GetItem, PutItem, Query, one
/// entry of TransactItems...) or as a key of `RequestItems` (BatchWriteItem, BatchGetItem).
fn names_table(body: &[u8], table: &str) -> bool {
    fn walk(value: &Value, table: &str) -> bool {
        match value {
            Value::Object(map) => map.iter().any(|(key, value)| match key.as_str() {
                "TableName" => value.as_str() == Some(table),
                "RequestItems" => value.as_object().is_some_and(|t| t.contains_key(table)),
                _ => walk(value, table),
            }),
            Value::Array(values) => values.iter().any(|v| walk(v, table)),
            _ => false,
        }
    }
    serde_json::from_slice::<Value>(body).is_ok_and(|body| walk(&body, table))
}

/// A DynamoDB error reply (JSON 1.0 protocol: the code after `#` in `__type`).
fn error_reply(kind: &str, message: &str, extra: Value) -> Response {
    let mut body = json!({ "__type": kind, "message": message });
    if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    let mut response = (StatusCode::BAD_REQUEST, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn throttling() -> Response {
    error_reply(
        "com.amazon.coral.availability#ThrottlingException",
        "Rate of requests exceeds the allowed throughput.",
        Value::Null,
    )
}

fn provisioned() -> Response {
    error_reply(
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.",
        Value::Null,
    )
}

/// The cancellation DynamoDB sends when another transaction holds an item: one reason per
/// `TransactItems` entry, `TransactionConflict` on one of them (the one `pick` names).
fn conflict(request: &[u8], pick: f64) -> Response {
    let entries = serde_json::from_slice::<Value>(request)
        .ok()
        .and_then(|r| r["TransactItems"].as_array().map(Vec::len))
        .unwrap_or(1)
        .max(1);
    let hit = (pick * entries as f64) as usize % entries;
    let codes: Vec<&str> = (0..entries)
        .map(|i| {
            if i == hit {
                "TransactionConflict"
            } else {
                "None"
            }
        })
        .collect();
    let reasons: Vec<Value> = codes
        .iter()
        .map(|code| match *code {
            "None" => json!({ "Code": "None" }),
            code => json!({ "Code": code, "Message": "Transaction is ongoing for the item" }),
        })
        .collect();
    error_reply(
        "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        &format!(
            "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
            codes.join(", ")
        ),
        json!({ "CancellationReasons": reasons }),
    )
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 16 * 1024 * 1024).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.rsplit('.').next())
        .unwrap_or("unknown")
        .to_owned();
    let request = {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut hasher);
        hasher.finish()
    };
    let held = lock(&inner.latency).and_then(|(fraction, min, max)| {
        (inner.draw() < fraction)
            .then(|| Duration::from_millis(min + (inner.draw() * (max - min + 1) as f64) as u64))
    });
    if let Some(hold) = held {
        *lock(&inner.stats).faults.entry(Fault::Delayed).or_default() += 1;
        tokio::time::sleep(hold).await;
    }
    let fault = inner.choose(&operation, request, &body);
    let retried = operation == COMMIT && !lock(&inner.commits_seen).insert(request);
    {
        let mut stats = lock(&inner.stats);
        *stats.calls.entry(operation.clone()).or_default() += 1;
        stats.commit_retries += u64::from(retried);
        if let Some(fault) = fault {
            *stats.faults.entry(fault).or_default() += 1;
        }
    }
    let Some(fault) = fault else {
        return inner.forward(&parts.headers, body).await;
    };
    // Forwards run in their own task: a caller that gives up cannot cancel what the endpoint
    // is about to receive, exactly as on a real network.
    let forward = {
        let inner = inner.clone();
        let headers = parts.headers.clone();
        let body = body.clone();
        move |hold: Duration| {
            inner.in_flight.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let reply = inner.forward(&headers, body).await;
                inner.in_flight.fetch_sub(1, Ordering::SeqCst);
                reply
            })
        }
    };
    match fault {
        Fault::Conflict => conflict(&body, inner.draw()),
        Fault::Throttling => throttling(),
        Fault::Provisioned => provisioned(),
        Fault::Late => forward(PAST_ATTEMPT_TIMEOUT)
            .await
            .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response()),
        lost => {
            let Ok(reply) = forward(Duration::ZERO).await else {
                return StatusCode::BAD_GATEWAY.into_response();
            };
            {
                let mut stats = lock(&inner.stats);
                stats.lost_replies += 1;
                if operation == COMMIT && reply.status() == StatusCode::OK {
                    stats.lost_commits += 1;
                }
            }
            match lost {
                Fault::LostToConflict => conflict(&body, inner.draw()),
                Fault::LostToThrottling => throttling(),
                Fault::LostForGood => {
                    // The SDK makes three attempts in all (`src/dynamodb` `client()`).
                    lock(&inner.refused_again).insert(request, 2);
                    throttling()
                }
                _ => {
                    tokio::time::sleep(PAST_ATTEMPT_TIMEOUT).await;
                    reply
                }
            }
        }
    }
}
