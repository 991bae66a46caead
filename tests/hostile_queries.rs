//! The cost probes of issue 13, rerun against the real service: each is refused with a stable
//! `extensions.code`, fast, and without the service's memory growing (its RSS and peak RSS from
//! `/proc/<pid>/status` before and after). Each probe prints one `probe=…` line of figures.

mod common;

use common::Server;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// How much a refused probe may raise the service's RSS or peak RSS (kB).
const MAX_GROWTH_KB: u64 = 5 * 1024;
/// How long a refusal before parsing (for length, fan-out or batch size) may take, on a debug
/// build on a busy machine (a release build takes a few milliseconds).
const FAST: Duration = Duration::from_millis(500);
/// How long a refusal of a long document that is parsed and validated first may take: the
/// parser of a debug build takes about 10 ms per KB.
const PARSED: Duration = if cfg!(debug_assertions) {
    Duration::from_millis(2_500)
} else {
    Duration::from_millis(500)
};

/// VmRSS and VmHWM (peak) of a process, in kB.
fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// What the service answered a probe.
struct Measured {
    status: u16,
    body: Value,
}

/// Posts `body` and measures the answer; asserts it came within `bound` and the memory did not
/// grow.
async fn probe(server: &Server, name: &str, body: Vec<u8>, bound: Duration) -> Measured {
    let bytes = body.len();
    let (rss_before, hwm_before) = memory(server.pid());
    let started = Instant::now();
    let (status, body) = server.post_raw(body).await;
    let took = started.elapsed();
    let (rss_after, hwm_after) = memory(server.pid());
    println!(
        "probe={name} request_bytes={bytes} status={status} millis={:.1} rss_before_kb={rss_before} \
         rss_after_kb={rss_after} hwm_before_kb={hwm_before} hwm_after_kb={hwm_after}",
        took.as_secs_f64() * 1000.0
    );
    assert!(took < bound, "{name} took {took:?}");
    assert!(
        rss_after <= rss_before + MAX_GROWTH_KB,
        "{name}: RSS {rss_before} → {rss_after} kB"
    );
    assert!(
        hwm_after <= hwm_before + MAX_GROWTH_KB,
        "{name}: peak RSS {hwm_before} → {hwm_after} kB"
    );
    Measured { status, body }
}

fn query(text: &str) -> Vec<u8> {
    json!({ "query": text }).to_string().into_bytes()
}

/// The `extensions.code` of every error of a response.
fn codes(response: &Value) -> Vec<String> {
    response["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `count` aliases of `field`, as one query.
fn aliases(count: usize, field: &str) -> String {
    let all: Vec<String> = (0..count).map(|i| format!("a{i}: {field}")).collect();
    format!("{{ {} }}", all.join(" "))
}

/// Warms the server up with a small accepted query, so later figures are its steady state.
async fn warm(server: &Server) {
    for _ in 0..3 {
        server
            .data(
                "{ inventoryItems(first: 10) { edges { node { id } } } }",
                json!({}),
            )
            .await;
    }
}

/// Runs `count` stock adjustments on one item, 100 to a mutation document.
async fn adjust_many(server: &Server, item: &str, count: usize) {
    let mut done = 0;
    while done < count {
        let n = (count - done).min(100);
        let field = format!(
            "inventoryAdjust(input: {{itemId: \"{item}\", delta: 1, reason: RECEIVED}}) {{ userErrors {{ code }} }}"
        );
        let all: Vec<String> = (0..n).map(|i| format!("a{i}: {field}")).collect();
        let data = server
            .data(&format!("mutation {{ {} }}", all.join(" ")), json!({}))
            .await;
        assert_eq!(data["a0"]["userErrors"], json!([]));
        done += n;
    }
}

#[tokio::test]
async fn fragment_fan_out_is_refused_before_it_is_expanded() {
    let server = Server::start().await;
    warm(&server).await;
    // 24 fragments, each spreading the next twice: 2^24 `__typename` once expanded.
    let mut text = String::from("query { ...F0 }\n");
    for i in 0..24 {
        text.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} }}\n",
            n = i + 1
        ));
    }
    text.push_str("fragment F24 on Query { __typename }");
    assert!(text.len() < 1_100, "{} bytes", text.len());
    let answer = probe(&server, "fan_out", query(&text), FAST).await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    assert_eq!(answer.status, 200);
    let message = answer.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("at most 10000"), "{message}");
    // The service still answers.
    server.data("{ __typename }", json!({})).await;
}

#[tokio::test]
async fn aliases_of_large_pages_are_priced_by_their_page_size() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("W1").await;
    for i in 0..50 {
        server
            .create_item(&warehouse, &format!("SKU-{i}"), 10, 1)
            .await;
    }
    warm(&server).await;
    // The probe of the issue: 1,250 aliases of a page of 500 (79 KB), refused for its length
    // before it is parsed.
    let field = "inventoryItems(first: 500) { edges { node { id sku } } }";
    let answer = probe(&server, "aliases_1250", query(&aliases(1_250, field)), FAST).await;
    assert_eq!(codes(&answer.body), ["QUERY_TOO_LARGE"], "{}", answer.body);
    // Half as many fit in the length: refused for their cost, each priced 2,001 (the
    // connection, plus edges, node, id and sku once per row of 500).
    let answer = probe(&server, "aliases_600", query(&aliases(600, field)), PARSED).await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    let message = answer.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("cost 1200600"), "{message}");
    // Few enough fields to pass the parse-time floor, but priced per row: 5 × 2,001.
    let answer = probe(&server, "aliases_5", query(&aliases(5, field)), FAST).await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    // `last` counts the same; a page of 50 by default.
    let answer = probe(
        &server,
        "last_500",
        query(&aliases(
            5,
            "inventoryItems(last: 500) { edges { node { id sku } } }",
        )),
        FAST,
    )
    .await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    let data = server
        .data(
            &aliases(2, "inventoryItems { edges { node { id sku onHand } } }"),
            json!({}),
        )
        .await;
    assert_eq!(data["a1"]["edges"].as_array().map(Vec::len), Some(50));
    // Four pages of 500 (4 × 2,001) are within the limit and answered.
    let data = server.data(&aliases(4, field), json!({})).await;
    assert_eq!(data["a0"]["edges"].as_array().map(Vec::len), Some(50));
}

#[tokio::test]
async fn batches_are_bounded_in_operations_and_in_total_cost() {
    let server = Server::start().await;
    warm(&server).await;
    // A batch of three of the alias probe: each refused on its own (for its length), and
    // three of the shorter one (for their cost).
    let field = "inventoryItems(first: 500) { edges { node { id sku } } }";
    for (name, count, code, bound) in [
        ("batch_3_aliases_1250", 1_250, "QUERY_TOO_LARGE", FAST),
        ("batch_3_aliases_600", 600, "QUERY_TOO_COMPLEX", PARSED),
    ] {
        let heavy = aliases(count, field);
        let batch: Vec<Value> = (0..3).map(|_| json!({ "query": heavy })).collect();
        let answer = probe(&server, name, json!(batch).to_string().into_bytes(), bound).await;
        let answers = answer.body.as_array().expect("a batch answer");
        assert_eq!(answers.len(), 3);
        for one in answers {
            assert_eq!(codes(one), [code], "{one}");
        }
    }
    // 20,000 operations: refused whole before any runs.
    let batch: Vec<Value> = (0..20_000)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let answer = probe(
        &server,
        "batch_20000",
        json!(batch).to_string().into_bytes(),
        FAST,
    )
    .await;
    assert_eq!(answer.status, 400);
    assert_eq!(codes(&answer.body), ["BATCH_TOO_LARGE"], "{}", answer.body);
    let message = answer.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("at most 10"), "{message}");
    // Five operations each within the limit (2,002 each) but over it together: one of them
    // is refused, the others answered.
    let medium = aliases(2, "inventoryItems(first: 500) { edges { cursor } }");
    let batch: Vec<Value> = (0..5).map(|_| json!({ "query": medium })).collect();
    let answer = probe(
        &server,
        "batch_5_medium",
        json!(batch).to_string().into_bytes(),
        FAST,
    )
    .await;
    let answers = answer.body.as_array().expect("a batch answer");
    let refused: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("errors").is_some())
        .collect();
    assert_eq!(refused.len(), 1, "{}", answer.body);
    assert_eq!(codes(refused[0]), ["BATCH_TOO_COMPLEX"], "{}", answer.body);
    // Ten small ones pass.
    let batch: Vec<Value> = (0..10)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, body) = server.post_raw(json!(batch).to_string().into_bytes()).await;
    assert_eq!(status, 200);
    assert!(
        body.as_array().is_some_and(
            |all| all.len() == 10 && all.iter().all(|a| a["data"]["__typename"] == "Query")
        ),
        "{body}"
    );
}

#[tokio::test]
async fn replays_are_priced_at_their_weight() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("W1").await;
    let item = server.create_item(&warehouse, "SKU-1", 0, 1).await;
    let current = format!("{{ inventoryItem(id: \"{item}\") {{ onHand version }} }}");
    let version = |data: &Value| data["inventoryItem"]["version"].as_u64().unwrap_or(0);
    // Adjustments until the item has 5,000 events (some adjustments add an alert event too).
    let mut now = server.data(&current, json!({})).await;
    while version(&now) < 5_000 {
        adjust_many(&server, &item, (5_000 - version(&now)) as usize).await;
        now = server.data(&current, json!({})).await;
    }
    let events = version(&now);
    // One replay of them is answered.
    let one =
        format!("{{ inventoryItemAsOf(id: \"{item}\", version: {events}) {{ onHand version }} }}");
    let data = server.data(&one, json!({})).await;
    assert_eq!(data["inventoryItemAsOf"], now["inventoryItem"]);
    warm(&server).await;
    let field = format!("inventoryItemAsOf(id: \"{item}\", version: {events}) {{ onHand }}");
    // The probe of the issue (96 KB) is refused for its length; half of it for its cost.
    let answer = probe(&server, "as_of_1000", query(&aliases(1_000, &field)), FAST).await;
    assert_eq!(codes(&answer.body), ["QUERY_TOO_LARGE"], "{}", answer.body);
    let answer = probe(&server, "as_of_500", query(&aliases(500, &field)), PARSED).await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    // Ten replays (10 × 1,001) are over too; nine are not.
    let answer = probe(&server, "as_of_10", query(&aliases(10, &field)), FAST).await;
    assert_eq!(
        codes(&answer.body),
        ["QUERY_TOO_COMPLEX"],
        "{}",
        answer.body
    );
    let data = server.data(&aliases(9, &field), json!({})).await;
    assert_eq!(data["a8"]["onHand"], now["inventoryItem"]["onHand"]);
}

#[tokio::test]
async fn a_response_over_the_size_limit_is_cut_off_with_an_error() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(temp.path(), &[("INVENTORY_MAX_RESPONSE_BYTES", "2048")]).await;
    let warehouse = server.create_warehouse("W1").await;
    for i in 0..30 {
        server
            .create_item(&warehouse, &format!("SKU-{i}"), 10, 1)
            .await;
    }
    let small = server
        .data(
            "{ inventoryItems(first: 5) { edges { node { sku } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        small["inventoryItems"]["edges"].as_array().map(Vec::len),
        Some(5)
    );
    let answer = probe(
        &server,
        "response_size",
        query("{ inventoryItems(first: 30) { edges { node { id sku productId } } } }"),
        FAST,
    )
    .await;
    assert_eq!(
        codes(&answer.body),
        ["RESPONSE_TOO_LARGE"],
        "{}",
        answer.body
    );
    assert_eq!(answer.body["data"], Value::Null);
    let message = answer.body["errors"][0]["message"].as_str().unwrap_or("");
    assert!(message.contains("2048 bytes"), "{message}");
}

#[tokio::test]
async fn configured_cost_limits_apply() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = Server::start_with(
        temp.path(),
        &[
            ("INVENTORY_MAX_QUERY_COST", "100"),
            ("INVENTORY_MAX_BATCH_OPERATIONS", "2"),
        ],
    )
    .await;
    // 1 + 50 × 2: over 100 with the default page, within it with 49 rows.
    let answer = server
        .gql("{ inventoryItems { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(codes(&answer), ["QUERY_TOO_COMPLEX"], "{answer}");
    server
        .data(
            "{ inventoryItems(first: 49) { edges { cursor } } }",
            json!({}),
        )
        .await;
    let batch: Vec<Value> = (0..3)
        .map(|_| json!({ "query": "{ __typename }" }))
        .collect();
    let (status, body) = server.post_raw(json!(batch).to_string().into_bytes()).await;
    assert_eq!(status, 400);
    assert_eq!(codes(&body), ["BATCH_TOO_LARGE"], "{body}");
}

#[tokio::test]
async fn the_same_limits_hold_over_websocket() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    let server = Server::start().await;
    let mut request = server.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let send = |message: Value| Message::text(message.to_string());
    socket
        .send(send(json!({"type": "connection_init", "payload": {}})))
        .await
        .expect("init");
    let mut fan_out = String::from("query { ...F0 } ");
    for i in 0..24 {
        fan_out.push_str(&format!(
            "fragment F{i} on Query {{ ...F{n} ...F{n} }} ",
            n = i + 1
        ));
    }
    fan_out.push_str("fragment F24 on Query { __typename }");
    let replays = aliases(10, "inventoryItemAsOf(id: \"x\", version: 1) { onHand }");
    let long = aliases(
        1_250,
        "inventoryItems(first: 500) { edges { node { id sku } } }",
    );
    let probes = [
        ("fan_out", fan_out, "QUERY_TOO_COMPLEX"),
        ("replays", replays, "QUERY_TOO_COMPLEX"),
        ("long", long, "QUERY_TOO_LARGE"),
    ];
    for (id, text, _) in &probes {
        socket
            .send(send(
                json!({"id": id, "type": "subscribe", "payload": {"query": text}}),
            ))
            .await
            .expect("subscribe");
    }
    let mut answered = std::collections::HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answered.len() < probes.len() {
        let left = deadline
            .checked_duration_since(Instant::now())
            .expect("every probe answered in time");
        let message = tokio::time::timeout(left, socket.next())
            .await
            .expect("a message in time")
            .expect("socket open")
            .expect("a message");
        let Message::Text(text) = message else {
            continue;
        };
        let message: Value = serde_json::from_str(&text).expect("json");
        if let Some(id) = message["id"].as_str() {
            answered.insert(id.to_owned(), message);
        }
    }
    for (id, _, code) in &probes {
        let message = &answered[*id];
        assert_eq!(message["type"], "error", "{id}: {message}");
        assert_eq!(
            message["payload"][0]["extensions"]["code"], *code,
            "{id}: {message}"
        );
    }
}
