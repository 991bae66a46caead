//! Transfers between warehouses over GraphQL against the real server, on the backend
//! `backend_env` selects (and the bus `INVENTORY_TEST_BUS` does): a transfer's whole life
//! (reserved, shipped, received short) with the destination item created on the way, the
//! low-stock alert of its reservation, a retried create, its events in the history, the
//! movement report and `inventoryItemAsOf`; a cancel; 64 concurrent transfers and allocations
//! against 10 units; and random interleavings after which every item's reserved counts equal
//! the open allocations and transfers.

mod common;

use common::{Server, Subscription};
use futures::future::join_all;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

const TRANSFER: &str =
    "transfer { id status fromItemId toItemId quantity quantityReceived shortfall }
    fromItem { id onHand allocated available incoming lowStock }
    toItem { id sku warehouseId onHand allocated incoming }
    userErrors { code field message }";

fn create(from: &str, to_warehouse: &str, quantity: i64, key: Option<&str>) -> (String, Value) {
    (
        format!(
            "mutation($f: ID!, $w: ID!, $q: Int!, $k: String) {{
                transferCreate(input: {{fromItemId: $f, toWarehouseId: $w, quantity: $q,
                    reference: \"TO-1\", idempotencyKey: $k}}) {{ {TRANSFER} }} }}"
        ),
        json!({ "f": from, "w": to_warehouse, "q": quantity, "k": key }),
    )
}

async fn transfer_create(server: &Server, from: &str, to: &str, quantity: i64) -> Value {
    let (query, variables) = create(from, to, quantity, None);
    server.gql(&query, variables).await["data"]["transferCreate"].clone()
}

async fn step(server: &Server, mutation: &str, input: Value) -> Value {
    let query = format!(
        "mutation($input: {}Input!) {{ {mutation}(input: $input) {{ {TRANSFER} }} }}",
        capitalised(mutation)
    );
    server.data(&query, json!({ "input": input })).await[mutation].clone()
}

fn capitalised(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

fn id_of(payload: &Value) -> String {
    payload["transfer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("a transfer: {payload}"))
        .to_owned()
}

#[tokio::test]
async fn a_transfer_reserves_ships_and_arrives_short_everywhere_it_should_show() {
    let server = Server::start().await;
    let from_warehouse = server.create_warehouse("T-FROM").await;
    let to_warehouse = server.create_warehouse("T-TO").await;
    let source = server.create_item(&from_warehouse, "SKU-T", 20, 5).await;
    let mut alerts = Subscription::open(
        &server,
        "subscription($w: ID) { lowStockAlerts(warehouseId: $w) { itemId available threshold } }",
        json!({ "w": from_warehouse }),
        false,
    )
    .await;

    // Created: 16 reserved at the source, whose available (4) falls below its threshold (5).
    let (query, variables) = create(&source, &to_warehouse, 16, Some("t-1"));
    let created = server.data(&query, variables.clone()).await["transferCreate"].clone();
    assert_eq!(created["userErrors"], json!([]), "{created}");
    assert_eq!(created["transfer"]["status"], "CREATED");
    assert_eq!(
        created["fromItem"],
        json!({ "id": source, "onHand": 20, "allocated": 16, "available": 4, "incoming": 0, "lowStock": true })
    );
    // The destination item did not exist: it is the same SKU, new, at the destination.
    let destination = created["toItem"]["id"]
        .as_str()
        .expect("to item")
        .to_owned();
    assert_eq!(created["toItem"]["sku"], "SKU-T");
    assert_eq!(created["toItem"]["warehouseId"], json!(to_warehouse));
    assert_eq!(created["transfer"]["toItemId"], json!(destination));
    let alert = alerts.next(Duration::from_secs(5)).await.expect("an alert");
    assert_eq!(alert["lowStockAlerts"]["itemId"], json!(source));
    assert_eq!(alert["lowStockAlerts"]["available"], 4);

    // Retried with its key: the first result, nothing applied twice.
    let again = server.data(&query, variables).await["transferCreate"].clone();
    assert_eq!(again["transfer"], created["transfer"]);
    assert_eq!(again["fromItem"]["allocated"], 16);

    // Cannot be received before it ships.
    let transfer = id_of(&created);
    let early = step(
        &server,
        "transferReceive",
        json!({ "id": transfer, "quantityReceived": 16 }),
    )
    .await;
    assert_eq!(early["userErrors"][0]["code"], "INVALID_STATE_TRANSITION");

    // Shipped: gone from the source, incoming at the destination.
    let shipped = step(&server, "transferShip", json!({ "id": transfer })).await;
    assert_eq!(shipped["userErrors"], json!([]), "{shipped}");
    assert_eq!(shipped["transfer"]["status"], "SHIPPED");
    assert_eq!(
        (
            &shipped["fromItem"]["onHand"],
            &shipped["fromItem"]["allocated"]
        ),
        (&json!(4), &json!(0))
    );
    assert_eq!(shipped["toItem"]["incoming"], 16);
    let cancel_late = step(
        &server,
        "transferCancel",
        json!({ "id": transfer, "reason": "too late" }),
    )
    .await;
    assert_eq!(
        cancel_late["userErrors"][0]["code"],
        "INVALID_STATE_TRANSITION"
    );

    // More than was shipped cannot arrive; 14 of 16 do.
    let too_many = step(
        &server,
        "transferReceive",
        json!({ "id": transfer, "quantityReceived": 17 }),
    )
    .await;
    assert_eq!(too_many["userErrors"][0]["code"], "INVALID_INPUT");
    let received = step(
        &server,
        "transferReceive",
        json!({ "id": transfer, "quantityReceived": 14 }),
    )
    .await;
    assert_eq!(received["userErrors"], json!([]), "{received}");
    assert_eq!(
        received["transfer"],
        json!({ "id": transfer, "status": "RECEIVED", "fromItemId": source,
            "toItemId": destination, "quantity": 16, "quantityReceived": 14, "shortfall": 2 })
    );
    assert_eq!(
        (
            &received["toItem"]["onHand"],
            &received["toItem"]["incoming"]
        ),
        (&json!(14), &json!(0))
    );

    // The read models: the transfer under both warehouses, by id, under the items.
    for warehouse in [&from_warehouse, &to_warehouse] {
        let listed = server
            .eventually(
                "query($w: ID!) { transfers(warehouseId: $w, status: RECEIVED) { totalCount edges { node { id status } } } }",
                json!({ "w": warehouse }),
                |d| d["transfers"]["totalCount"] == 1,
            )
            .await;
        assert_eq!(
            listed["transfers"]["edges"][0]["node"]["id"],
            json!(transfer)
        );
    }
    let by_id = server
        .data(
            "query($t: ID!, $i: ID!) { transfer(id: $t) { status shortfall }
                inventoryItem(id: $i) { incoming onHand transfers { totalCount } } }",
            json!({ "t": transfer, "i": destination }),
        )
        .await;
    assert_eq!(
        by_id,
        json!({ "transfer": { "status": "RECEIVED", "shortfall": 2 },
            "inventoryItem": { "incoming": 0, "onHand": 14, "transfers": { "totalCount": 1 } } })
    );

    // History and movement report of both items.
    let history = |item: String| {
        let server = &server;
        async move {
            server
                .data(
                    "query($i: ID!) { inventoryHistory(itemId: $i) { edges { node { reason delta quantityAfter reference } } } }",
                    json!({ "i": item }),
                )
                .await["inventoryHistory"]["edges"]
                .as_array()
                .expect("edges")
                .iter()
                .map(|e| e["node"].clone())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        history(source.clone()).await.last(),
        Some(
            &json!({ "reason": "transfer_shipped", "delta": -16, "quantityAfter": 4, "reference": transfer })
        )
    );
    assert_eq!(
        history(destination.clone()).await.last(),
        Some(
            &json!({ "reason": "transfer_received", "delta": 14, "quantityAfter": 14, "reference": transfer })
        )
    );
    let report = |item: String| {
        let server = &server;
        async move {
            server
                .data(
                    "query($i: ID!) { stockMovementReport(itemId: $i) { totals { received removed allocated net } } }",
                    json!({ "i": item }),
                )
                .await["stockMovementReport"]["totals"]
                .clone()
        }
    };
    assert_eq!(
        report(source.clone()).await,
        json!({ "received": 20, "removed": 16, "allocated": 16, "net": 4 })
    );
    assert_eq!(
        report(destination.clone()).await,
        json!({ "received": 14, "removed": 0, "allocated": 0, "net": 14 })
    );
    // As of the shipment (the destination's version 2: created, then incoming).
    let as_of = server
        .data(
            "query($i: ID!) { inventoryItemAsOf(id: $i, version: 2) { onHand incoming } }",
            json!({ "i": destination }),
        )
        .await;
    assert_eq!(
        as_of["inventoryItemAsOf"],
        json!({ "onHand": 0, "incoming": 16 })
    );
    // A second transfer to the same warehouse finds the destination item.
    let second = transfer_create(&server, &source, &to_warehouse, 1).await;
    assert_eq!(second["toItem"]["id"], json!(destination), "{second}");
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn a_cancelled_transfer_releases_its_reservation() {
    let server = Server::start().await;
    let from_warehouse = server.create_warehouse("C-FROM").await;
    let to_warehouse = server.create_warehouse("C-TO").await;
    let source = server.create_item(&from_warehouse, "SKU-C", 10, 0).await;
    let existing = server.create_item(&to_warehouse, "SKU-C", 3, 0).await;

    let created = transfer_create(&server, &source, &to_warehouse, 7).await;
    assert_eq!(created["userErrors"], json!([]), "{created}");
    assert_eq!(created["toItem"]["id"], json!(existing));
    let refused = transfer_create(&server, &source, &to_warehouse, 4).await;
    assert_eq!(refused["userErrors"][0]["code"], "INSUFFICIENT_STOCK");
    let same = transfer_create(&server, &source, &from_warehouse, 1).await;
    assert_eq!(same["userErrors"][0]["code"], "INVALID_INPUT");
    assert_eq!(
        same["userErrors"][0]["field"],
        json!(["input", "toWarehouseId"])
    );

    let cancelled = step(
        &server,
        "transferCancel",
        json!({ "id": id_of(&created), "reason": "plan changed" }),
    )
    .await;
    assert_eq!(cancelled["userErrors"], json!([]), "{cancelled}");
    assert_eq!(cancelled["transfer"]["status"], "CANCELLED");
    assert_eq!(cancelled["fromItem"]["allocated"], 0);
    assert_eq!(cancelled["toItem"]["incoming"], 0);
    let ship = step(&server, "transferShip", json!({ "id": id_of(&created) })).await;
    assert_eq!(ship["userErrors"][0]["code"], "INVALID_STATE_TRANSITION");
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

const ALLOCATE: &str = "mutation($i: ID!, $q: Int!, $o: String!) {
    allocationCreate(input: {orderId: $o, itemId: $i, quantity: $q}) {
        allocation { id } userErrors { code } } }";

#[tokio::test]
async fn sixty_four_concurrent_transfers_and_allocations_take_exactly_ten_units() {
    let server = Server::start().await;
    let from_warehouse = server.create_warehouse("R-FROM").await;
    let to_warehouse = server.create_warehouse("R-TO").await;
    let source = server.create_item(&from_warehouse, "SKU-R", 10, 0).await;

    let transfers = (0..32).map(|_| transfer_create(&server, &source, &to_warehouse, 1));
    let allocations = (0..32).map(|n| {
        let server = &server;
        let source = &source;
        async move {
            server
                .data(
                    ALLOCATE,
                    json!({ "i": source, "q": 1, "o": format!("race-{n}") }),
                )
                .await["allocationCreate"]
                .clone()
        }
    });
    let (transfers, allocations) = futures::join!(join_all(transfers), join_all(allocations));
    let won_transfers: Vec<&Value> = transfers
        .iter()
        .filter(|t| t["userErrors"] == json!([]))
        .collect();
    let won_allocations = allocations
        .iter()
        .filter(|a| a["userErrors"] == json!([]))
        .count();
    eprintln!(
        "64 concurrent: {} transfers and {won_allocations} allocations succeeded",
        won_transfers.len()
    );
    assert_eq!(won_transfers.len() + won_allocations, 10);
    for lost in transfers.iter().chain(&allocations) {
        if lost["userErrors"] != json!([]) {
            assert_eq!(
                lost["userErrors"][0]["code"], "INSUFFICIENT_STOCK",
                "{lost}"
            );
        }
    }
    // One destination item, however many transfers created it at once.
    let destinations: std::collections::BTreeSet<&Value> = won_transfers
        .iter()
        .map(|t| &t["transfer"]["toItemId"])
        .collect();
    assert!(destinations.len() <= 1, "{destinations:?}");
    let item = server
        .eventually(
            "query($i: ID!) { inventoryItem(id: $i) { onHand allocated available } }",
            json!({ "i": source }),
            |d| d["inventoryItem"]["allocated"] == 10,
        )
        .await;
    assert_eq!(
        item["inventoryItem"],
        json!({ "onHand": 10, "allocated": 10, "available": 0 })
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

/// A small deterministic generator (xorshift), so a failing interleaving can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[tokio::test]
async fn reserved_and_incoming_always_equal_the_open_allocations_and_transfers() {
    let server = Server::start().await;
    let warehouses = [
        server.create_warehouse("D-1").await,
        server.create_warehouse("D-2").await,
    ];
    let mut items = Vec::new();
    for warehouse in &warehouses {
        items.push(server.create_item(warehouse, "SKU-D", 30, 3).await);
    }
    let seed = 0x5eed_u64 ^ std::process::id() as u64;
    eprintln!("interleaving seed {seed}");
    let mut dice = Dice(seed | 1);
    // Rounds of 12 concurrent commands, each on a random item and a random open entity.
    let mut open_transfers: Vec<String> = Vec::new();
    let mut open_allocations: Vec<String> = Vec::new();
    for _ in 0..8 {
        let mut calls = Vec::new();
        for _ in 0..12 {
            let side = dice.roll(2) as usize;
            let quantity = 1 + dice.roll(4) as i64;
            let (query, variables, kind) = match dice.roll(7) {
                0 | 1 => {
                    let (q, v) = create(&items[side], &warehouses[1 - side], quantity, None);
                    (q, v, "transferCreate")
                }
                2 if !open_transfers.is_empty() => {
                    let id = &open_transfers[dice.roll(open_transfers.len() as u64) as usize];
                    (
                        format!("mutation($i: ID!) {{ transferShip(input: {{id: $i}}) {{ {TRANSFER} }} }}"),
                        json!({ "i": id }),
                        "transferShip",
                    )
                }
                3 if !open_transfers.is_empty() => {
                    let id = &open_transfers[dice.roll(open_transfers.len() as u64) as usize];
                    (
                        format!("mutation($i: ID!, $q: Int!) {{ transferReceive(input: {{id: $i, quantityReceived: $q}}) {{ {TRANSFER} }} }}"),
                        json!({ "i": id, "q": dice.roll(2) }),
                        "transferReceive",
                    )
                }
                4 if !open_transfers.is_empty() => {
                    let id = &open_transfers[dice.roll(open_transfers.len() as u64) as usize];
                    (
                        format!("mutation($i: ID!) {{ transferCancel(input: {{id: $i, reason: \"r\"}}) {{ {TRANSFER} }} }}"),
                        json!({ "i": id }),
                        "transferCancel",
                    )
                }
                5 if !open_allocations.is_empty() => {
                    let id = &open_allocations[dice.roll(open_allocations.len() as u64) as usize];
                    let mutation = ["allocationCancel", "allocationConfirm", "allocationFulfill"]
                        [dice.roll(3) as usize];
                    let reason = if mutation == "allocationCancel" {
                        ", reason: \"r\""
                    } else {
                        ""
                    };
                    (
                        format!("mutation($i: ID!) {{ {mutation}(input: {{id: $i{reason}}}) {{ userErrors {{ code }} }} }}"),
                        json!({ "i": id }),
                        "allocation",
                    )
                }
                6 => {
                    let adjust = "mutation($i: ID!, $d: Int!) { inventoryAdjust(input: {itemId: $i, delta: $d, reason: RECEIVED}) { userErrors { code } } }";
                    (
                        adjust.to_owned(),
                        json!({ "i": items[side], "d": quantity }),
                        "adjust",
                    )
                }
                _ => (
                    ALLOCATE.to_owned(),
                    json!({ "i": items[side], "q": quantity, "o": "drift" }),
                    "allocationCreate",
                ),
            };
            let server = &server;
            calls.push(async move { (kind, server_gql(server, &query, variables).await) });
        }
        for (kind, answer) in join_all(calls).await {
            let data = &answer["data"];
            match kind {
                "transferCreate" => {
                    if let Some(id) = data["transferCreate"]["transfer"]["id"].as_str() {
                        open_transfers.push(id.to_owned());
                    }
                }
                "allocationCreate" => {
                    if let Some(id) = data["allocationCreate"]["allocation"]["id"].as_str() {
                        open_allocations.push(id.to_owned());
                    }
                }
                _ => {}
            }
        }
    }
    // What the read models say, once settled, against the sums of open entities.
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    let listed = server
        .data(
            "{ transfers(first: 500) { edges { node { fromItemId toItemId quantity status } } }
               allocations(first: 500) { edges { node { itemId quantity status } } } }",
            json!({}),
        )
        .await;
    let mut reserved: HashMap<String, i64> = HashMap::new();
    let mut incoming: HashMap<String, i64> = HashMap::new();
    for edge in listed["transfers"]["edges"].as_array().expect("transfers") {
        let node = &edge["node"];
        let quantity = node["quantity"].as_i64().expect("quantity");
        match node["status"].as_str() {
            Some("CREATED") => {
                *reserved
                    .entry(node["fromItemId"].as_str().expect("from").to_owned())
                    .or_default() += quantity
            }
            Some("SHIPPED") => {
                *incoming
                    .entry(node["toItemId"].as_str().expect("to").to_owned())
                    .or_default() += quantity
            }
            _ => {}
        }
    }
    for edge in listed["allocations"]["edges"]
        .as_array()
        .expect("allocations")
    {
        let node = &edge["node"];
        if matches!(node["status"].as_str(), Some("CREATED" | "CONFIRMED")) {
            *reserved
                .entry(node["itemId"].as_str().expect("item").to_owned())
                .or_default() += node["quantity"].as_i64().expect("quantity");
        }
    }
    let mut checked = 0;
    for warehouse in &warehouses {
        let stock = server
            .data(
                "query($w: ID!) { inventoryItems(warehouseId: $w) { edges { node { id onHand allocated incoming } } } }",
                json!({ "w": warehouse }),
            )
            .await;
        for edge in stock["inventoryItems"]["edges"].as_array().expect("items") {
            let node = &edge["node"];
            let id = node["id"].as_str().expect("id");
            assert_eq!(
                node["allocated"].as_i64(),
                Some(reserved.get(id).copied().unwrap_or(0)),
                "allocated of {id}: {node}"
            );
            assert_eq!(
                node["incoming"].as_i64(),
                Some(incoming.get(id).copied().unwrap_or(0)),
                "incoming of {id}: {node}"
            );
            assert!(
                node["onHand"].as_i64() >= node["allocated"].as_i64(),
                "{node}"
            );
            checked += 1;
        }
    }
    eprintln!(
        "interleaving: {} transfers, {} allocations created; {checked} items checked",
        open_transfers.len(),
        open_allocations.len()
    );
    assert!(checked >= 2);
}

async fn server_gql(server: &Server, query: &str, variables: Value) -> Value {
    let answer = server.gql(query, variables).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    answer
}
