//! The chaos run's clients: each sends commands one after another, spread over both instances
//! — adjustments, allocations taken through confirm, cancel and fulfil, transfers through ship,
//! receive and cancel — every one with its own idempotency key, resent with that key (to either
//! instance) while the answer is an infrastructure error or no answer at all. What each client
//! finally saw of each command is recorded: acknowledged, refused (`userErrors`) or given up.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Attempts of one command before the client gives up on it (about two minutes of backoff:
/// longer than a restart or the broker's outage).
const ATTEMPTS: u32 = 70;
/// A client's pause between two commands: steady load that leaves the two cores to the
/// servers and the store.
const PAUSE: Duration = Duration::from_millis(25);
pub const THRESHOLD: i64 = 8;
pub const INITIAL_STOCK: i64 = 24;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Adjust,
    AllocationCreate,
    AllocationConfirm,
    AllocationCancel,
    AllocationFulfill,
    TransferCreate,
    TransferShip,
    TransferReceive,
    TransferCancel,
}

impl Kind {
    pub fn field(self) -> &'static str {
        match self {
            Kind::Adjust => "inventoryAdjust",
            Kind::AllocationCreate => "allocationCreate",
            Kind::AllocationConfirm => "allocationConfirm",
            Kind::AllocationCancel => "allocationCancel",
            Kind::AllocationFulfill => "allocationFulfill",
            Kind::TransferCreate => "transferCreate",
            Kind::TransferShip => "transferShip",
            Kind::TransferReceive => "transferReceive",
            Kind::TransferCancel => "transferCancel",
        }
    }

    /// The events one application of the command stores (each exactly once), besides a
    /// `LowStockThresholdReached` it may add on an item.
    pub fn events(self) -> &'static [&'static str] {
        match self {
            Kind::Adjust => &["StockLevelChanged"],
            Kind::AllocationCreate => &["AllocationCreated", "StockAllocated"],
            Kind::AllocationConfirm => &["AllocationConfirmed"],
            Kind::AllocationCancel => &["AllocationCancelled", "StockDeallocated"],
            Kind::AllocationFulfill => &["AllocationFulfilled", "StockLevelChanged"],
            Kind::TransferCreate => &["TransferCreated", "TransferStockReserved"],
            Kind::TransferShip => &[
                "TransferShipped",
                "StockLevelChanged",
                "IncomingStockChanged",
            ],
            Kind::TransferReceive => &[
                "TransferReceived",
                "IncomingStockChanged",
                "StockLevelChanged",
            ],
            Kind::TransferCancel => &["TransferCancelled", "TransferStockReleased"],
        }
    }

    fn query(self) -> &'static str {
        match self {
            Kind::Adjust => "mutation($i: ID!, $d: Int!, $r: AdjustmentReason!, $k: String) {
                inventoryAdjust(input: {itemId: $i, delta: $d, reason: $r, idempotencyKey: $k}) {
                inventoryItem { available } userErrors { code } } }",
            Kind::AllocationCreate => "mutation($i: ID!, $o: String!, $q: Int!, $k: String) {
                allocationCreate(input: {orderId: $o, itemId: $i, quantity: $q, idempotencyKey: $k}) {
                allocation { id } userErrors { code } } }",
            Kind::AllocationConfirm => "mutation($id: ID!, $k: String) {
                allocationConfirm(input: {id: $id, idempotencyKey: $k}) { userErrors { code } } }",
            Kind::AllocationCancel => "mutation($id: ID!, $k: String) {
                allocationCancel(input: {id: $id, reason: \"chaos\", idempotencyKey: $k}) { userErrors { code } } }",
            Kind::AllocationFulfill => "mutation($id: ID!, $k: String) {
                allocationFulfill(input: {id: $id, idempotencyKey: $k}) { userErrors { code } } }",
            Kind::TransferCreate => "mutation($f: ID!, $w: ID!, $q: Int!, $k: String) {
                transferCreate(input: {fromItemId: $f, toWarehouseId: $w, quantity: $q, idempotencyKey: $k}) {
                transfer { id } userErrors { code } } }",
            Kind::TransferShip => "mutation($id: ID!, $k: String) {
                transferShip(input: {id: $id, idempotencyKey: $k}) { userErrors { code } } }",
            Kind::TransferReceive => "mutation($id: ID!, $q: Int!, $k: String) {
                transferReceive(input: {id: $id, quantityReceived: $q, idempotencyKey: $k}) { userErrors { code } } }",
            Kind::TransferCancel => "mutation($id: ID!, $k: String) {
                transferCancel(input: {id: $id, reason: \"chaos\", idempotencyKey: $k}) { userErrors { code } } }",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Acknowledged,
    /// A business-rule refusal (`userErrors`), final.
    Refused(String),
    /// No acknowledgement after every attempt: it may or may not have landed (never half).
    GaveUp,
}

/// What a client finally saw of one command.
#[derive(Clone, Debug)]
pub struct Record {
    pub key: String,
    pub kind: Kind,
    pub outcome: Outcome,
    /// Infrastructure errors met on the way (`extensions.code`, or TRANSPORT), each resent.
    pub errors: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Stage {
    Created,
    Confirmed,
    Shipped,
}

/// One item the clients work on: its id and warehouse (0 or 1).
#[derive(Clone, Debug)]
pub struct Item {
    pub id: String,
    pub warehouse: usize,
}

pub struct Load {
    pub urls: [String; 2],
    pub warehouses: [String; 2],
    pub items: Vec<Item>,
    run: String,
    next: AtomicU64,
    allocations: Mutex<Vec<(String, Stage)>>,
    transfers: Mutex<Vec<(String, Stage, i64)>>,
    /// Each item's available stock as the last adjustment's payload said.
    available: Mutex<HashMap<String, i64>>,
    pub records: Mutex<Vec<Record>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// SplitMix64: a reproducible stream of draws from a seed.
pub struct Dice(pub u64);

impl Dice {
    pub fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % sides.max(1)
    }
}

/// The GraphQL answer to one attempt, as a client tells it apart.
enum Answer {
    Data(Value),
    Error(String),
}

impl Load {
    pub fn new(urls: [String; 2], warehouses: [String; 2], items: Vec<Item>, run: &str) -> Self {
        Load {
            urls,
            warehouses,
            items,
            run: run.to_owned(),
            next: AtomicU64::new(0),
            allocations: Mutex::new(Vec::new()),
            transfers: Mutex::new(Vec::new()),
            available: Mutex::new(HashMap::new()),
            records: Mutex::new(Vec::new()),
        }
    }

    pub fn records(&self) -> Vec<Record> {
        lock(&self.records).clone()
    }

    /// One client: commands until `until`, starting on instance `client % 2`.
    pub async fn client(self: Arc<Self>, client: usize, seed: u64, until: Instant) {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("http client");
        let mut dice = Dice(seed ^ (client as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let mut turn = client;
        while Instant::now() < until {
            turn += 1;
            self.one(&http, &mut dice, turn % 2).await;
            tokio::time::sleep(PAUSE).await;
        }
    }

    async fn one(&self, http: &reqwest::Client, dice: &mut Dice, instance: usize) {
        let item = self.items[dice.roll(self.items.len() as u64) as usize].clone();
        let quantity = 1 + dice.roll(3) as i64;
        match dice.roll(100) {
            0..=34 => self.adjust(http, dice, instance, &item).await,
            35..=51 => {
                let variables = json!({ "i": item.id, "o": format!("order-{}", dice.roll(1000)), "q": quantity });
                let (outcome, payload) = self
                    .send(http, instance, Kind::AllocationCreate, variables)
                    .await;
                if let (Outcome::Acknowledged, Some(id)) =
                    (outcome, payload["allocation"]["id"].as_str())
                {
                    lock(&self.allocations).push((id.to_owned(), Stage::Created));
                }
            }
            52..=69 => {
                let picked = {
                    let mut open = lock(&self.allocations);
                    (!open.is_empty()).then(|| {
                        let at = dice.roll(open.len() as u64) as usize;
                        open.swap_remove(at)
                    })
                };
                let Some((id, stage)) = picked else { return };
                let go_on = dice.roll(10) < 7;
                let (kind, next) = match (stage, go_on) {
                    (Stage::Created, true) => (Kind::AllocationConfirm, Some(Stage::Confirmed)),
                    (Stage::Confirmed, true) => (Kind::AllocationFulfill, None),
                    _ => (Kind::AllocationCancel, None),
                };
                let (outcome, _) = self.send(http, instance, kind, json!({ "id": id })).await;
                if let (Outcome::Acknowledged, Some(next)) = (outcome, next) {
                    lock(&self.allocations).push((id, next));
                }
            }
            70..=81 => {
                let to = self.warehouses[1 - item.warehouse].clone();
                let variables = json!({ "f": item.id, "w": to, "q": quantity });
                let (outcome, payload) = self
                    .send(http, instance, Kind::TransferCreate, variables)
                    .await;
                if let (Outcome::Acknowledged, Some(id)) =
                    (outcome, payload["transfer"]["id"].as_str())
                {
                    lock(&self.transfers).push((id.to_owned(), Stage::Created, quantity));
                }
            }
            _ => {
                let picked = {
                    let mut open = lock(&self.transfers);
                    (!open.is_empty()).then(|| {
                        let at = dice.roll(open.len() as u64) as usize;
                        open.swap_remove(at)
                    })
                };
                let Some((id, stage, quantity)) = picked else {
                    return;
                };
                let (kind, variables, next) = match stage {
                    Stage::Created if dice.roll(4) < 3 => (
                        Kind::TransferShip,
                        json!({ "id": id }),
                        Some(Stage::Shipped),
                    ),
                    Stage::Created => (Kind::TransferCancel, json!({ "id": id }), None),
                    _ => {
                        // Now and then one unit short (never 0: a receipt always moves stock).
                        let short = i64::from(quantity > 1 && dice.roll(3) == 0);
                        let variables = json!({ "id": id, "q": quantity - short });
                        (Kind::TransferReceive, variables, None)
                    }
                };
                let (outcome, _) = self.send(http, instance, kind, variables).await;
                if let (Outcome::Acknowledged, Some(next)) = (outcome, next) {
                    lock(&self.transfers).push((id, next, quantity));
                }
            }
        }
    }

    /// An adjustment that keeps the item's available stock around its threshold, so that it
    /// dips below it (a low-stock alert) again and again.
    async fn adjust(&self, http: &reqwest::Client, dice: &mut Dice, instance: usize, item: &Item) {
        let available = lock(&self.available)
            .get(&item.id)
            .copied()
            .unwrap_or(INITIAL_STOCK);
        let up = if available > 2 * THRESHOLD + 4 {
            false
        } else if available <= THRESHOLD {
            true
        } else {
            dice.roll(2) == 0
        };
        let delta = if up {
            1 + dice.roll(8) as i64
        } else {
            -(1 + dice.roll(6) as i64)
        };
        let reason = if up { "RECEIVED" } else { "DAMAGED" };
        let variables = json!({ "i": item.id, "d": delta, "r": reason });
        let (outcome, payload) = self.send(http, instance, Kind::Adjust, variables).await;
        if let (Outcome::Acknowledged, Some(now)) =
            (outcome, payload["inventoryItem"]["available"].as_i64())
        {
            lock(&self.available).insert(item.id.clone(), now);
        }
    }

    /// Sends one command with a fresh key, resending it with the same key (alternating the
    /// instance) until it is acknowledged or refused, or the attempts run out. The outcome is
    /// recorded; the payload of the final answer is returned.
    async fn send(
        &self,
        http: &reqwest::Client,
        instance: usize,
        kind: Kind,
        mut variables: Value,
    ) -> (Outcome, Value) {
        let n = self.next.fetch_add(1, Ordering::SeqCst);
        let key = format!("chaos-{}-{n}", self.run);
        variables["k"] = json!(key);
        let body = json!({ "query": kind.query(), "variables": variables });
        let mut errors = Vec::new();
        let mut outcome = Outcome::GaveUp;
        let mut payload = Value::Null;
        for attempt in 0..ATTEMPTS {
            let url = &self.urls[(instance + attempt as usize) % 2];
            match attempt_once(http, url, &body).await {
                Answer::Data(data) => {
                    payload = data[kind.field()].clone();
                    outcome = match payload["userErrors"][0]["code"].as_str() {
                        Some(code) => Outcome::Refused(code.to_owned()),
                        None if payload.is_object() => Outcome::Acknowledged,
                        None => Outcome::Refused(format!("NO_PAYLOAD {data}")),
                    };
                    break;
                }
                Answer::Error(code) => errors.push(code),
            }
            let backoff = Duration::from_millis((100 * u64::from(attempt + 1)).min(2_000));
            tokio::time::sleep(backoff).await;
        }
        lock(&self.records).push(Record {
            key,
            kind,
            outcome: outcome.clone(),
            errors,
        });
        (outcome, payload)
    }
}

async fn attempt_once(http: &reqwest::Client, url: &str, body: &Value) -> Answer {
    let response = http.post(format!("{url}/graphql")).json(body).send().await;
    let Ok(response) = response else {
        return Answer::Error("TRANSPORT".into());
    };
    let status = response.status().as_u16();
    let Ok(body) = response.json::<Value>().await else {
        return Answer::Error(format!("HTTP_{status}"));
    };
    match body.get("errors") {
        Some(errors) => Answer::Error(
            errors[0]["extensions"]["code"]
                .as_str()
                .unwrap_or("NO_CODE")
                .to_owned(),
        ),
        None if body["data"].is_object() => Answer::Data(body["data"].clone()),
        None => Answer::Error(format!("HTTP_{status}")),
    }
}
