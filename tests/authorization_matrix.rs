//! Every mutation × every kind of caller, over HTTP and over WebSocket, against the real
//! server with API keys made by its own `api-key create`: anonymous (with anonymous access
//! off), viewer, operator, admin, and an operator scoped to another warehouse. Each is allowed
//! or refused as the roles say; after every refusal the store is exactly as before.

mod common;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use common::{backend_env, Server, BINARY};

/// `inventory-service api-key create`, on the server's store; the secret is the last line.
fn create_key(server: &Server, name: &str, role: &str, warehouse: Option<&str>) -> String {
    let mut command = std::process::Command::new(BINARY);
    command
        .args([
            "api-key",
            "create",
            "--name",
            name,
            "--role",
            role,
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .envs(backend_env(&server.data_dir));
    if let Some(warehouse) = warehouse {
        command.args(["--warehouse", warehouse]);
    }
    let output = command.output().expect("run api-key create");
    assert!(output.status.success(), "api-key create: {output:?}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .expect("a secret")
        .trim()
        .to_owned()
}

struct Caller {
    name: &'static str,
    key: Option<String>,
    /// The highest role it has; `None` for anonymous.
    role: Option<u8>,
    scoped_elsewhere: bool,
}

const VIEWER: u8 = 1;
const OPERATOR: u8 = 2;
const ADMIN: u8 = 3;

async fn post(server: &Server, key: Option<&str>, query: &str, variables: &Value) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .post(format!("{}/graphql", server.url))
        .json(&json!({ "query": query, "variables": variables }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("POST /graphql");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A mutation over graphql-transport-ws: its result payload, or the close code that refused
/// the connection.
async fn over_socket(
    server: &Server,
    key: Option<&str>,
    query: &str,
    variables: &Value,
) -> Result<Value, u16> {
    let mut request = server.ws_url().into_client_request().expect("request");
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().expect("header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket");
    let payload = match key {
        Some(key) => json!({ "authorization": format!("Bearer {key}") }),
        None => json!({}),
    };
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": payload}).to_string(),
        ))
        .await
        .expect("init");
    let mut subscribed = false;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(15), socket.next())
            .await
            .expect("an answer in time");
        let text = match message {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return Err(frame.map_or(1005, |f| u16::from(f.code)))
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(1006),
        };
        let message: Value = serde_json::from_str(text.as_str()).expect("JSON");
        match message["type"].as_str() {
            Some("connection_ack") if !subscribed => {
                subscribed = true;
                socket
                    .send(Message::text(
                        json!({"id": "m", "type": "subscribe",
                               "payload": {"query": query, "variables": variables}})
                        .to_string(),
                    ))
                    .await
                    .expect("subscribe");
            }
            Some("next") => return Ok(message["payload"].clone()),
            Some("error") => return Ok(json!({ "errors": message["payload"] })),
            _ => {}
        }
    }
}

/// What an admin sees of the store once the projections have settled (the same twice in a
/// row): counts of every kind, and the streams of the targets (read from the store itself).
async fn store_state(server: &Server, admin: &str, targets: &[String]) -> Value {
    let mut last = read_state(server, admin, targets).await;
    loop {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let now = read_state(server, admin, targets).await;
        if now == last {
            return now;
        }
        last = now;
    }
}

async fn read_state(server: &Server, admin: &str, targets: &[String]) -> Value {
    let (_, counts) = post(
        server,
        Some(admin),
        "{ warehouses(includeInactive: true) { totalCount }
           inventoryItems { totalCount } allocations { totalCount } }",
        &json!({}),
    )
    .await;
    let mut streams = Vec::new();
    for target in targets {
        let (_, events) = post(
            server,
            Some(admin),
            "query($id: ID!) { events(aggregateId: $id) { totalCount } }",
            &json!({ "id": target }),
        )
        .await;
        streams.push(events["data"]["events"]["totalCount"].clone());
    }
    json!({ "counts": counts["data"], "streams": streams })
}

/// One mutation's case: its document, the role it needs, and fresh targets made by an admin.
struct Case {
    mutation: &'static str,
    needs: u8,
    document: &'static str,
}

const CASES: &[Case] = &[
    Case { mutation: "warehouseCreate", needs: ADMIN, document: "mutation($code: String!) { warehouseCreate(input: {name: \"N\", code: $code}) { warehouse { id } userErrors { code } } }" },
    Case { mutation: "warehouseUpdate", needs: ADMIN, document: "mutation($warehouse: ID!) { warehouseUpdate(input: {id: $warehouse, name: \"Renamed\"}) { warehouse { id } userErrors { code } } }" },
    Case { mutation: "warehouseDeactivate", needs: ADMIN, document: "mutation($warehouse: ID!) { warehouseDeactivate(input: {id: $warehouse, reason: \"closed\"}) { warehouse { id } userErrors { code } } }" },
    Case { mutation: "inventoryItemCreate", needs: OPERATOR, document: "mutation($warehouse: ID!, $code: String!) { inventoryItemCreate(input: {warehouseId: $warehouse, sku: $code, productId: \"P\"}) { inventoryItem { id } userErrors { code } } }" },
    Case { mutation: "inventoryAdjust", needs: OPERATOR, document: "mutation($item: ID!) { inventoryAdjust(input: {itemId: $item, delta: 5, reason: RECEIVED}) { inventoryItem { id } userErrors { code } } }" },
    Case { mutation: "inventorySetOnHand", needs: OPERATOR, document: "mutation($item: ID!) { inventorySetOnHand(input: {itemId: $item, quantity: 40, reason: CYCLE_COUNT}) { inventoryItem { id } userErrors { code } } }" },
    Case { mutation: "inventoryBulkAdjust", needs: OPERATOR, document: "mutation($item: ID!) { inventoryBulkAdjust(input: {adjustments: [{itemId: $item, delta: 5, reason: RECEIVED}, {itemId: $item, delta: -2, reason: SOLD}]}) { results { index } userErrors { code } } }" },
    Case { mutation: "inventoryItemUpdateReorderSettings", needs: OPERATOR, document: "mutation($item: ID!) { inventoryItemUpdateReorderSettings(input: {itemId: $item, reorderThreshold: 3}) { inventoryItem { id } userErrors { code } } }" },
    Case { mutation: "inventoryItemDeactivate", needs: ADMIN, document: "mutation($item: ID!) { inventoryItemDeactivate(input: {itemId: $item, reason: \"gone\"}) { inventoryItem { id } userErrors { code } } }" },
    Case { mutation: "allocationCreate", needs: OPERATOR, document: "mutation($item: ID!, $code: String!) { allocationCreate(input: {orderId: $code, itemId: $item, quantity: 1}) { allocation { id } userErrors { code } } }" },
    Case { mutation: "allocationConfirm", needs: OPERATOR, document: "mutation($created: ID!) { allocationConfirm(input: {id: $created}) { allocation { id } userErrors { code } } }" },
    Case { mutation: "allocationCancel", needs: OPERATOR, document: "mutation($created: ID!) { allocationCancel(input: {id: $created, reason: \"r\"}) { allocation { id } userErrors { code } } }" },
    Case { mutation: "allocationFulfill", needs: OPERATOR, document: "mutation($confirmed: ID!) { allocationFulfill(input: {id: $confirmed}) { allocation { id } userErrors { code } } }" },
    Case { mutation: "transferCreate", needs: OPERATOR, document: "mutation($item: ID!, $destination: ID!) { transferCreate(input: {fromItemId: $item, toWarehouseId: $destination, quantity: 1}) { transfer { id } userErrors { code } } }" },
    Case { mutation: "transferShip", needs: OPERATOR, document: "mutation($transfer: ID!) { transferShip(input: {id: $transfer}) { transfer { id } userErrors { code } } }" },
    Case { mutation: "transferReceive", needs: OPERATOR, document: "mutation($shipped: ID!) { transferReceive(input: {id: $shipped, quantityReceived: 1}) { transfer { id } userErrors { code } } }" },
    Case { mutation: "transferCancel", needs: OPERATOR, document: "mutation($transfer: ID!) { transferCancel(input: {id: $transfer, reason: \"r\"}) { transfer { id } userErrors { code } } }" },
    Case { mutation: "projectionRebuildStart", needs: ADMIN, document: "mutation { projectionRebuildStart(input: {projections: [WAREHOUSES]}) { rebuild { generation } userErrors { code } } }" },
];

/// Fresh targets in warehouse A: a warehouse, an item, a created and a confirmed allocation, a
/// destination warehouse and two transfers to it, one created and one shipped.
async fn targets(server: &Server, admin: &str, n: usize) -> Value {
    let code = format!("M{n}");
    let data = |v: (u16, Value)| v.1["data"].clone();
    let warehouse = data(
        post(server, Some(admin), "mutation($code: String!) { warehouseCreate(input: {name: \"T\", code: $code}) { warehouse { id } } }", &json!({"code": code})).await,
    )["warehouseCreate"]["warehouse"]["id"]
        .clone();
    let item = data(post(server, Some(admin), "mutation($w: ID!) { inventoryItemCreate(input: {warehouseId: $w, sku: \"S\", productId: \"P\", initialQuantity: 50}) { inventoryItem { id } } }", &json!({"w": warehouse})).await)["inventoryItemCreate"]["inventoryItem"]["id"].clone();
    let allocate = "mutation($i: ID!) { allocationCreate(input: {orderId: \"o\", itemId: $i, quantity: 2}) { allocation { id } } }";
    let created = data(post(server, Some(admin), allocate, &json!({"i": item})).await)
        ["allocationCreate"]["allocation"]["id"]
        .clone();
    let confirmed = data(post(server, Some(admin), allocate, &json!({"i": item})).await)
        ["allocationCreate"]["allocation"]["id"]
        .clone();
    post(
        server,
        Some(admin),
        "mutation($a: ID!) { allocationConfirm(input: {id: $a}) { allocation { id } } }",
        &json!({"a": confirmed}),
    )
    .await;
    let destination = data(
        post(server, Some(admin), "mutation($code: String!) { warehouseCreate(input: {name: \"D\", code: $code}) { warehouse { id } } }", &json!({"code": format!("{code}D")})).await,
    )["warehouseCreate"]["warehouse"]["id"]
        .clone();
    let send = "mutation($i: ID!, $d: ID!) { transferCreate(input: {fromItemId: $i, toWarehouseId: $d, quantity: 2}) { transfer { id } } }";
    let transfer = data(
        post(
            server,
            Some(admin),
            send,
            &json!({"i": item, "d": destination}),
        )
        .await,
    )["transferCreate"]["transfer"]["id"]
        .clone();
    let shipped = data(
        post(
            server,
            Some(admin),
            send,
            &json!({"i": item, "d": destination}),
        )
        .await,
    )["transferCreate"]["transfer"]["id"]
        .clone();
    post(
        server,
        Some(admin),
        "mutation($t: ID!) { transferShip(input: {id: $t}) { transfer { id } } }",
        &json!({"t": shipped}),
    )
    .await;
    json!({ "code": format!("{code}X"), "warehouse": warehouse, "item": item,
            "created": created, "confirmed": confirmed, "destination": destination,
            "transfer": transfer, "shipped": shipped })
}

fn ids(targets: &Value) -> Vec<String> {
    [
        "warehouse",
        "item",
        "created",
        "confirmed",
        "destination",
        "transfer",
        "shipped",
    ]
    .iter()
    .filter_map(|k| targets[k].as_str().map(str::to_owned))
    .collect()
}

/// The code a refusal carries, or `None` when the mutation ran.
fn refusal(result: &Result<Value, u16>, mutation: &str) -> Option<String> {
    match result {
        Err(close) => Some(format!("close {close}")),
        Ok(body) => {
            let error = body["errors"][0]["extensions"]["code"].as_str();
            match error {
                Some(code) => Some(code.to_owned()),
                None => {
                    let payload = &body["data"][mutation];
                    assert_eq!(payload["userErrors"], json!([]), "{mutation}: {body}");
                    None
                }
            }
        }
    }
}

#[tokio::test]
async fn every_mutation_is_allowed_or_refused_by_role_and_scope_over_http_and_websocket() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_with(dir.path(), &[("INVENTORY_ANONYMOUS_ROLE", "none")]).await;
    server.until_ready().await;
    let admin = create_key(&server, "matrix-admin", "admin", None);
    let (_, elsewhere) = post(&server, Some(&admin), "mutation { warehouseCreate(input: {name: \"B\", code: \"ELSEWHERE\"}) { warehouse { id } } }", &json!({})).await;
    let elsewhere = elsewhere["data"]["warehouseCreate"]["warehouse"]["id"]
        .as_str()
        .expect("warehouse B")
        .to_owned();
    let callers = [
        Caller {
            name: "anonymous",
            key: None,
            role: None,
            scoped_elsewhere: false,
        },
        Caller {
            name: "viewer",
            key: Some(create_key(&server, "matrix-viewer", "viewer", None)),
            role: Some(VIEWER),
            scoped_elsewhere: false,
        },
        Caller {
            name: "operator",
            key: Some(create_key(&server, "matrix-operator", "operator", None)),
            role: Some(OPERATOR),
            scoped_elsewhere: false,
        },
        Caller {
            name: "admin",
            key: Some(admin.clone()),
            role: Some(ADMIN),
            scoped_elsewhere: false,
        },
        Caller {
            name: "operator-elsewhere",
            key: Some(create_key(
                &server,
                "matrix-elsewhere",
                "operator",
                Some(&elsewhere),
            )),
            role: Some(OPERATOR),
            scoped_elsewhere: true,
        },
    ];
    let mut n = 0;
    let mut table = Vec::new();
    // Targets (and the store's state) are made afresh only after a mutation ran: a refusal
    // leaves both as they were.
    let mut unchanged: Option<(Value, Value)> = None;
    for transport in ["http", "websocket"] {
        for case in CASES {
            for caller in &callers {
                n += 1;
                let (vars, before) = match unchanged.take() {
                    Some(kept) => kept,
                    None => {
                        let vars = targets(&server, &admin, n).await;
                        let state = store_state(&server, &admin, &ids(&vars)).await;
                        (vars, state)
                    }
                };
                let key = caller.key.as_deref();
                let result = match transport {
                    "http" => {
                        let (status, body) = post(&server, key, case.document, &vars).await;
                        if caller.role.is_none() {
                            assert_eq!(status, 401, "anonymous over HTTP: {body}");
                        }
                        Ok(body)
                    }
                    _ => over_socket(&server, key, case.document, &vars).await,
                };
                let allowed =
                    caller.role.is_some_and(|r| r >= case.needs) && !caller.scoped_elsewhere;
                let refused = refusal(&result, case.mutation);
                table.push(format!(
                    "{transport:9} {:36} {:18} {}",
                    case.mutation,
                    caller.name,
                    refused.as_deref().unwrap_or("allowed")
                ));
                if allowed {
                    assert_eq!(
                        refused, None,
                        "{transport} {} as {}: {result:?}",
                        case.mutation, caller.name
                    );
                    continue;
                }
                let expected = match (caller.role, transport) {
                    (None, "websocket") => "close 4403",
                    (None, _) => "UNAUTHENTICATED",
                    _ => "FORBIDDEN",
                };
                assert_eq!(
                    refused.as_deref(),
                    Some(expected),
                    "{transport} {} as {}: {result:?}",
                    case.mutation,
                    caller.name
                );
                let after = store_state(&server, &admin, &ids(&vars)).await;
                assert_eq!(
                    before, after,
                    "{transport} {} as {} changed the store",
                    case.mutation, caller.name
                );
                unchanged = Some((vars, after));
            }
        }
    }
    eprintln!("{}", table.join("\n"));
    server.terminate();
}

#[tokio::test]
async fn x_actor_does_not_reach_the_events_and_the_actor_is_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_with(dir.path(), &[("INVENTORY_ANONYMOUS_ROLE", "none")]).await;
    server.until_ready().await;
    let admin = create_key(&server, "spoof-admin", "admin", None);
    let client = reqwest::Client::new();
    let body: Value = client
        .post(format!("{}/graphql", server.url))
        .bearer_auth(&admin)
        .header("X-Actor", "admin@corp (CFO)")
        .header("X-Correlation-Id", "<script>alert(1)</script>")
        .json(&json!({"query": "mutation { warehouseCreate(input: {name: \"S\", code: \"SPOOF\"}) { warehouse { id } } }"}))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    let id = body["data"]["warehouseCreate"]["warehouse"]["id"]
        .as_str()
        .expect("created")
        .to_owned();
    let (_, events) = post(
        &server,
        Some(&admin),
        "query($id: ID!) { events(aggregateId: $id) { edges { node { metadata { actor correlationId } } } } }",
        &json!({ "id": id }),
    )
    .await;
    let metadata = &events["data"]["events"]["edges"][0]["node"]["metadata"];
    eprintln!("metadata of the spoofing attempt: {metadata}");
    assert_eq!(metadata["actor"], "spoof-admin", "{events}");
    let text = metadata.to_string();
    assert!(
        !text.contains("CFO") && !text.contains("<script>"),
        "{text}"
    );
    server.terminate();
}
