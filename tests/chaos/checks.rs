//! The end checks on what the store holds (every event, from an export) against what the
//! clients were told: each acknowledged command stored exactly once, nothing stored twice or
//! half, every allocation's and transfer's two sides together, stock sums that agree with the
//! open allocations and transfers; and the alerts each subscriber was owed. Each check adds a
//! line to `failures` rather than stopping at the first, so one run shows all that is wrong.

use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

use super::alerts::{Heard, Published};
use super::load::{Kind, Outcome, Record};

/// Stock of one item as its events say.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Stock {
    pub on_hand: i64,
    pub allocated: i64,
    pub incoming: i64,
    pub version: u64,
    /// Events that make a history entry: the creation and every on-hand change.
    pub history_events: u64,
}

#[derive(Default)]
pub struct Findings {
    pub failures: Vec<String>,
    pub duplicates: u64,
    pub lost: u64,
    pub half: u64,
    /// Acknowledged after at least one resend (an error or no answer first), stored once.
    pub resent_and_once: u64,
    /// Given up, or refused on a resend: stored whole, or not at all.
    pub unacknowledged_landed: u64,
    pub unacknowledged_absent: u64,
}

impl Findings {
    pub fn fail(&mut self, what: String) {
        if self.failures.len() < 200 {
            self.failures.push(what);
        }
    }
}

fn text<'a>(event: &'a Value, field: &str) -> &'a str {
    event[field].as_str().unwrap_or_default()
}

fn data_i64(event: &Value, field: &str) -> i64 {
    event["eventData"][field].as_i64().unwrap_or(0)
}

fn data_text<'a>(event: &'a Value, field: &str) -> &'a str {
    event["eventData"][field].as_str().unwrap_or_default()
}

/// Unique event ids; each aggregate's sequence numbers 1, 2, 3… with no gap or repeat.
pub fn streams(events: &[Value], findings: &mut Findings) -> BTreeMap<String, Vec<Value>> {
    let mut ids = HashSet::new();
    let mut by_aggregate: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for event in events {
        if !ids.insert(text(event, "eventId").to_owned()) {
            findings.duplicates += 1;
            findings.fail(format!("event id stored twice: {event}"));
        }
        by_aggregate
            .entry(text(event, "aggregateId").to_owned())
            .or_default()
            .push(event.clone());
    }
    for (aggregate, stream) in by_aggregate.iter_mut() {
        stream.sort_by_key(|e| e["sequenceNumber"].as_u64().unwrap_or(0));
        for (at, event) in stream.iter().enumerate() {
            if event["sequenceNumber"].as_u64() != Some(at as u64 + 1) {
                findings.fail(format!(
                    "aggregate {aggregate}: event {} has sequence number {}",
                    at + 1,
                    event["sequenceNumber"]
                ));
                break;
            }
        }
    }
    by_aggregate
}

/// Each command's events, found by its idempotency key, against what its client was told.
pub fn commands(events: &[Value], records: &[Record], prefix: &str, findings: &mut Findings) {
    let mut by_key: HashMap<&str, Vec<&Value>> = HashMap::new();
    for event in events {
        if let Some(key) = event["metadata"]["idempotencyKey"].as_str() {
            if key.starts_with(prefix) {
                by_key.entry(key).or_default().push(event);
            }
        }
    }
    let known: HashSet<&str> = records.iter().map(|r| r.key.as_str()).collect();
    for key in by_key.keys() {
        if !known.contains(key) {
            findings.fail(format!("events under a key no client sent: {key}"));
        }
    }
    for record in records {
        let stored = by_key.get(record.key.as_str()).cloned().unwrap_or_default();
        let mut types: BTreeMap<&str, usize> = BTreeMap::new();
        let mut alerts: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &stored {
            match text(event, "eventType") {
                "LowStockThresholdReached" => {
                    *alerts.entry(text(event, "aggregateId")).or_default() += 1
                }
                other => *types.entry(other).or_default() += 1,
            }
        }
        let expected = record.kind.events();
        let extra: u64 = types
            .values()
            .chain(alerts.values())
            .map(|&n| n.saturating_sub(1) as u64)
            .sum();
        let unexpected: Vec<&&str> = types.keys().filter(|t| !expected.contains(t)).collect();
        let complete = extra == 0
            && unexpected.is_empty()
            && expected.iter().all(|t| types.get(t) == Some(&1));
        let empty = stored.is_empty();
        findings.duplicates += extra;
        let what = || {
            format!(
                "{} {:?} ({:?}, errors {:?}): stored {:?} + alerts {:?}, expected {:?}",
                record.key, record.kind, record.outcome, record.errors, types, alerts, expected
            )
        };
        match &record.outcome {
            Outcome::Acknowledged if complete => {
                findings.resent_and_once += u64::from(!record.errors.is_empty())
            }
            Outcome::Acknowledged if empty => {
                findings.lost += 1;
                findings.fail(format!("acknowledged but not stored: {}", what()));
            }
            Outcome::Acknowledged => {
                findings.half += u64::from(extra == 0);
                findings.fail(format!("acknowledged, stored wrongly: {}", what()));
            }
            Outcome::Refused(_) if record.errors.is_empty() => {
                if !empty {
                    findings.fail(format!("refused at once, yet stored: {}", what()));
                }
            }
            _ if complete => findings.unacknowledged_landed += 1,
            _ if empty => findings.unacknowledged_absent += 1,
            _ => {
                findings.half += u64::from(extra == 0);
                findings.fail(format!(
                    "not acknowledged, stored in part or twice: {}",
                    what()
                ));
            }
        }
    }
}

/// An allocation's or transfer's own events against the item events that must come with them
/// (in the same commit), whatever the keys say.
pub fn sides(streams: &BTreeMap<String, Vec<Value>>, findings: &mut Findings) {
    // (item event type, allocation or transfer id, sign of a delta) → count.
    let mut item_sides: HashMap<(String, String), u64> = HashMap::new();
    for stream in streams.values() {
        for event in stream {
            let kind = text(event, "eventType");
            let side = match kind {
                "StockAllocated" | "StockDeallocated" => Some(data_text(event, "allocationId")),
                "StockLevelChanged" if !data_text(event, "allocationId").is_empty() => {
                    Some(data_text(event, "allocationId"))
                }
                "TransferStockReserved" | "TransferStockReleased" => {
                    Some(data_text(event, "transferId"))
                }
                _ => None,
            };
            let label = match kind {
                "IncomingStockChanged" if data_i64(event, "delta") > 0 => {
                    Some(("IncomingStockChanged+", data_text(event, "transferId")))
                }
                "IncomingStockChanged" => {
                    Some(("IncomingStockChanged-", data_text(event, "transferId")))
                }
                _ => side.map(|id| (kind, id)),
            };
            if let Some((label, id)) = label {
                *item_sides
                    .entry((label.to_owned(), id.to_owned()))
                    .or_default() += 1;
            }
        }
    }
    let pairs: [(&str, &str); 7] = [
        ("AllocationCreated", "StockAllocated"),
        ("AllocationCancelled", "StockDeallocated"),
        ("AllocationFulfilled", "StockLevelChanged"),
        ("TransferCreated", "TransferStockReserved"),
        ("TransferCancelled", "TransferStockReleased"),
        ("TransferShipped", "IncomingStockChanged+"),
        ("TransferReceived", "IncomingStockChanged-"),
    ];
    for (id, stream) in streams {
        for (own, item) in pairs {
            let mine = stream
                .iter()
                .filter(|e| text(e, "eventType") == own)
                .count() as u64;
            let theirs = item_sides
                .get(&(item.to_owned(), id.clone()))
                .copied()
                .unwrap_or(0);
            if mine > 1 || theirs != mine {
                findings.half += 1;
                findings.fail(format!(
                    "{id}: {mine} {own} but {theirs} {item} on its items (a commit half in, or twice)"
                ));
            }
        }
    }
}

/// Each item's stock replayed from its events, checked at every step (never oversold, the
/// stock changes chained), and at the end against the open allocations and transfers.
pub fn stock(
    streams: &BTreeMap<String, Vec<Value>>,
    findings: &mut Findings,
) -> BTreeMap<String, Stock> {
    let mut items: BTreeMap<String, Stock> = BTreeMap::new();
    let (mut reserved, mut incoming): (HashMap<String, i64>, HashMap<String, i64>) =
        Default::default();
    for (id, stream) in streams {
        let Some(first) = stream.first() else {
            continue;
        };
        match text(first, "eventType") {
            "InventoryItemCreated" => {
                let mut stock = Stock::default();
                for event in stream {
                    let q = data_i64(event, "quantity");
                    match text(event, "eventType") {
                        "InventoryItemCreated" => {
                            stock.history_events += 1;
                            stock.on_hand = data_i64(event, "initialQuantity")
                        }
                        "StockLevelChanged" => {
                            stock.history_events += 1;
                            let delta = data_i64(event, "delta");
                            if data_i64(event, "previousQuantity") != stock.on_hand
                                || data_i64(event, "newQuantity") != stock.on_hand + delta
                            {
                                findings.fail(format!(
                                    "item {id}: a stock change that does not follow the one before (on hand {}): {event}",
                                    stock.on_hand
                                ));
                            }
                            stock.on_hand += delta;
                            if matches!(
                                data_text(event, "reason"),
                                "allocation_fulfilled" | "transfer_shipped"
                            ) {
                                stock.allocated += delta;
                            }
                        }
                        "StockAllocated" | "TransferStockReserved" => stock.allocated += q,
                        "StockDeallocated" | "TransferStockReleased" => stock.allocated -= q,
                        "IncomingStockChanged" => stock.incoming += data_i64(event, "delta"),
                        _ => {}
                    }
                    if stock.allocated > stock.on_hand || stock.allocated < 0 || stock.incoming < 0
                    {
                        findings.fail(format!(
                            "item {id} at version {}: on hand {}, allocated {}, incoming {}",
                            event["sequenceNumber"], stock.on_hand, stock.allocated, stock.incoming
                        ));
                    }
                }
                stock.version = stream.len() as u64;
                items.insert(id.clone(), stock);
            }
            "AllocationCreated" => {
                let last = stream
                    .last()
                    .map(|e| text(e, "eventType"))
                    .unwrap_or_default();
                if matches!(last, "AllocationCreated" | "AllocationConfirmed") {
                    *reserved
                        .entry(data_text(first, "itemId").to_owned())
                        .or_default() += data_i64(first, "quantity");
                }
            }
            "TransferCreated" => {
                let q = data_i64(first, "quantity");
                match stream
                    .last()
                    .map(|e| text(e, "eventType"))
                    .unwrap_or_default()
                {
                    "TransferCreated" => {
                        *reserved
                            .entry(data_text(first, "fromItemId").to_owned())
                            .or_default() += q
                    }
                    "TransferShipped" => {
                        *incoming
                            .entry(data_text(first, "toItemId").to_owned())
                            .or_default() += q
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    for (id, stock) in &items {
        let want = (
            reserved.get(id).copied().unwrap_or(0),
            incoming.get(id).copied().unwrap_or(0),
        );
        if (stock.allocated, stock.incoming) != want {
            findings.fail(format!(
                "item {id}: allocated {} and incoming {} by its events, {} and {} by the open allocations and transfers",
                stock.allocated, stock.incoming, want.0, want.1
            ));
        }
    }
    items
}

/// The alerts one subscriber was owed: low-stock events of its warehouse whose publication the
/// observer saw inside one of the subscriber's sessions, `margin` ms clear of the session's
/// ends, and `margin` ms clear of each of `away` (spans in which its instance's live feed was
/// not up: the broker's outage until the instance was ready again, a restart from the kill to
/// ready; a socket may be accepted before the feed is up).
pub fn owed(
    alerts_of_warehouse: &[String],
    published: &Published,
    heard: &Heard,
    away: &[(i64, i64)],
    margin: i64,
) -> Vec<String> {
    alerts_of_warehouse
        .iter()
        .filter(|id| {
            let Some(&at) = published.at.get(*id) else {
                return false;
            };
            let in_session = heard.sessions.iter().any(|&(start, end)| {
                start + margin <= at && end.is_none_or(|end| at + margin <= end)
            });
            let clear = away
                .iter()
                .all(|&(from, to)| at < from - margin || to + margin < at);
            in_session && clear
        })
        .cloned()
        .collect()
}

pub fn by_kind(records: &[Record]) -> BTreeMap<Kind, (u64, u64, u64)> {
    let mut kinds: BTreeMap<Kind, (u64, u64, u64)> = BTreeMap::new();
    for record in records {
        let entry = kinds.entry(record.kind).or_default();
        match record.outcome {
            Outcome::Acknowledged => entry.0 += 1,
            Outcome::Refused(_) => entry.1 += 1,
            Outcome::GaveUp => entry.2 += 1,
        }
    }
    kinds
}

/// The checks themselves, on a made-up store: a lost acknowledged write, a command stored
/// twice and one stored in part are each found (not ignored: no servers, milliseconds).
#[test]
fn the_checks_find_a_lost_write_a_duplicate_and_a_half_commit() {
    use serde_json::json;
    let event = |id: &str, aggregate: &str, seq: u64, kind: &str, data: Value, key: &str| {
        json!({ "eventId": id, "aggregateId": aggregate, "sequenceNumber": seq, "eventType": kind,
                "eventData": data, "metadata": { "idempotencyKey": key } })
    };
    let created = json!({ "initialQuantity": 10, "warehouseId": "w" });
    let allocated = json!({ "allocationId": "a1", "quantity": 2 });
    let events = vec![
        event("e1", "i1", 1, "InventoryItemCreated", created, "setup"),
        // k2 applied twice on the item (an allocation with two reservations)...
        event(
            "e2",
            "a1",
            1,
            "AllocationCreated",
            json!({ "itemId": "i1", "quantity": 2 }),
            "k-2",
        ),
        event("e3", "i1", 2, "StockAllocated", allocated.clone(), "k-2"),
        event("e4", "i1", 3, "StockAllocated", allocated, "k-2"),
        // ...and k3's transfer without its reservation.
        event(
            "e5",
            "t1",
            1,
            "TransferCreated",
            json!({ "fromItemId": "i1", "toItemId": "i2", "quantity": 1 }),
            "k-3",
        ),
    ];
    let record = |key: &str, kind, outcome| Record {
        key: key.into(),
        kind,
        outcome,
        errors: vec!["TRANSPORT".into()],
    };
    let records = vec![
        record("k-1", Kind::Adjust, Outcome::Acknowledged),
        record("k-2", Kind::AllocationCreate, Outcome::Acknowledged),
        record("k-3", Kind::TransferCreate, Outcome::GaveUp),
    ];
    let mut findings = Findings::default();
    let streams = streams(&events, &mut findings);
    commands(&events, &records, "k-", &mut findings);
    assert_eq!(
        (findings.lost, findings.duplicates),
        (1, 1),
        "{:?}",
        findings.failures
    );
    assert_eq!(findings.half, 1, "{:?}", findings.failures);
    let before = findings.failures.len();
    sides(&streams, &mut findings);
    assert_eq!(
        findings.failures.len() - before,
        2,
        "a1's two reservations, t1's missing one: {:?}",
        findings.failures
    );
    let stock = stock(&streams, &mut findings);
    assert_eq!(stock["i1"].allocated, 4);
    assert!(
        findings
            .failures
            .iter()
            .any(|f| f.contains("open allocations")),
        "allocated 4 against 2 open: {:?}",
        findings.failures
    );
}
