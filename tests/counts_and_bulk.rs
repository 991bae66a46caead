//! Counts (`inventorySetOnHand`) and bulk adjustments (`inventoryBulkAdjust`) over GraphQL
//! against the real server, on the backend `backend_env` selects: 250 rows with 3 bad ones
//! under each policy, rows on one item in order, a retried bulk, REJECT_EVERYTHING whole or
//! refused before anything is written, stale and too-low counts refused, the low-stock alert
//! of a count, and counts in the history, the movement report and `inventoryItemAsOf`.

mod common;

use common::{Server, Subscription};
use serde_json::{json, Value};
use std::time::Duration;

const BULK: &str =
    "mutation($rows: [InventoryBulkAdjustRowInput!]!, $policy: BulkErrorPolicy!, $key: String) {
    inventoryBulkAdjust(input: {adjustments: $rows, errorPolicy: $policy, idempotencyKey: $key}) {
        results { index inventoryItem { id onHand version } userErrors { code field message } }
        userErrors { code field message } } }";

const COUNT: &str = "mutation($i: ID!, $q: Int!, $c: Int, $r: CountReason!) {
    inventorySetOnHand(input: {itemId: $i, quantity: $q, compareQuantity: $c, reason: $r,
        reference: \"count sheet 7\"}) {
        inventoryItem { onHand allocated available lowStock version } userErrors { code field message } } }";

const ITEMS: &str = "query($w: ID!) { inventoryItems(warehouseId: $w, first: 100) {
    edges { node { id onHand version } } } }";

fn on_dynamodb() -> bool {
    std::env::var("INVENTORY_TEST_BACKEND").as_deref() == Ok("dynamodb")
}

/// Every item of the warehouse as the read model has it: `{id onHand version}`.
async fn stock(server: &Server, warehouse: &str) -> Vec<Value> {
    let data = server.data(ITEMS, json!({ "w": warehouse })).await;
    data["inventoryItems"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// The read model once it holds, for every item a bulk's results name, the version its last
/// applied row left it at.
async fn settled(server: &Server, warehouse: &str, payload: &Value) -> Vec<Value> {
    let mut last = std::collections::HashMap::new();
    for result in payload["results"].as_array().expect("results") {
        let item = &result["inventoryItem"];
        if !item.is_null() {
            last.insert(item["id"].clone(), item["version"].clone());
        }
    }
    let done = |data: &Value| {
        data["inventoryItems"]["edges"]
            .as_array()
            .is_some_and(|edges| {
                edges.iter().all(|e| {
                    last.get(&e["node"]["id"])
                        .is_none_or(|v| *v == e["node"]["version"])
                })
            })
    };
    server
        .eventually(ITEMS, json!({ "w": warehouse }), done)
        .await;
    stock(server, warehouse).await
}

/// Ten items of 100 units and 250 rows over them, row n on item n % 10: the item's rows are +1
/// and -1 by turns (13 up, 12 down), starting with +1.
async fn fixture(server: &Server, code: &str) -> (String, Vec<String>, Vec<Value>) {
    let warehouse = server.create_warehouse(code).await;
    let mut items = Vec::new();
    for n in 0..10 {
        items.push(
            server
                .create_item(&warehouse, &format!("B-{n}"), 100, 0)
                .await,
        );
    }
    let all_there = |d: &Value| d["inventoryItems"]["edges"].as_array().map(Vec::len) == Some(10);
    server
        .eventually(ITEMS, json!({ "w": warehouse }), all_there)
        .await;
    let rows = (0..250)
        .map(|n| {
            let up = (n / 10) % 2 == 0;
            json!({ "itemId": items[n % 10], "delta": if up { 1 } else { -1 },
                    "reason": if up { "RECEIVED" } else { "SOLD" }, "reference": format!("row {n}") })
        })
        .collect();
    (warehouse, items, rows)
}

/// Rows 17 (item 7, a -1), 120 (item 0, a +1) and 249 (item 9, a +1) made bad three ways,
/// each a fault of the row's delta: zero, the wrong sign for its reason, more than is there.
fn with_bad_rows(mut rows: Vec<Value>) -> Vec<Value> {
    rows[17]["delta"] = json!(0);
    rows[120] = json!({ "itemId": rows[120]["itemId"], "delta": 5, "reason": "SOLD" });
    rows[249] = json!({ "itemId": rows[249]["itemId"], "delta": -1_000_000, "reason": "SOLD" });
    rows
}

fn errors_by_row(payload: &Value) -> Vec<(i64, String, Value)> {
    payload["results"]
        .as_array()
        .expect("results")
        .iter()
        .flat_map(|r| {
            r["userErrors"].as_array().expect("errors").iter().map(|e| {
                (
                    r["index"].as_i64().expect("index"),
                    e["code"].as_str().expect("code").to_owned(),
                    e["field"].clone(),
                )
            })
        })
        .collect()
}

fn the_three_bad_rows() -> Vec<(i64, String, Value)> {
    [
        (17, "INVALID_INPUT"),
        (120, "INVALID_INPUT"),
        (249, "INSUFFICIENT_STOCK"),
    ]
    .into_iter()
    .map(|(index, code)| {
        let path = json!(["input", "adjustments", index.to_string(), "delta"]);
        (index, code.to_owned(), path)
    })
    .collect()
}

#[tokio::test]
async fn a_bulk_of_250_rows_with_3_bad_rows_under_each_policy() {
    let server = Server::start().await;
    let (warehouse, items, rows) = fixture(&server, "BULK").await;
    let rows = with_bad_rows(rows);
    let before = stock(&server, &warehouse).await;

    // REJECT_EVERYTHING: the three reported, per row and at the top; nothing changed.
    let vars = json!({ "rows": rows, "policy": "REJECT_EVERYTHING" });
    let refused = server.data(BULK, vars).await["inventoryBulkAdjust"].clone();
    assert_eq!(errors_by_row(&refused), the_three_bad_rows());
    assert_eq!(refused["results"].as_array().map(Vec::len), Some(250));
    let top: Vec<Value> = refused["userErrors"].as_array().expect("top").clone();
    assert_eq!(top.len(), 3, "{top:?}");
    assert_eq!(
        top[0]["field"],
        json!(["input", "adjustments", "17", "delta"])
    );
    assert!(refused["results"]
        .as_array()
        .expect("results")
        .iter()
        .all(|r| r["inventoryItem"].is_null()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stock(&server, &warehouse).await, before, "nothing changed");

    // REJECT_FAILED_ROWS: 247 applied (in parts of 49 on DynamoDB), the same three reported.
    let vars = json!({ "rows": rows, "policy": "REJECT_FAILED_ROWS", "key": "bulk-1" });
    let applied = server.data(BULK, vars.clone()).await["inventoryBulkAdjust"].clone();
    assert_eq!(applied["userErrors"], json!([]));
    assert_eq!(errors_by_row(&applied), the_three_bad_rows());
    let results = applied["results"].as_array().expect("results");
    assert_eq!(
        results
            .iter()
            .filter(|r| !r["inventoryItem"].is_null())
            .count(),
        247
    );

    // Rows on one item in order: item 0 takes rows 0, 10, 20, ... (+1, -1, ...), row 120 refused.
    let item_0: Vec<(i64, i64)> = results
        .iter()
        .step_by(10)
        .filter(|r| !r["inventoryItem"].is_null())
        .map(|r| {
            let item = &r["inventoryItem"];
            (
                item["onHand"].as_i64().expect("n"),
                item["version"].as_i64().expect("v"),
            )
        })
        .collect();
    let mut expected = Vec::new();
    let (mut on_hand, mut version) = (100, 1);
    for turn in (0..25).filter(|turn| *turn != 12) {
        on_hand += if turn % 2 == 0 { 1 } else { -1 };
        version += 1;
        expected.push((on_hand, version));
    }
    assert_eq!(item_0, expected);

    // Each item ends one up, but where a refused row would have moved it.
    let after = settled(&server, &warehouse, &applied).await;
    let on_hand_of = |n: usize| {
        after
            .iter()
            .find(|node| node["id"] == json!(items[n]))
            .and_then(|node| node["onHand"].as_i64())
    };
    assert_eq!(
        (0..10).map(on_hand_of).collect::<Vec<_>>(),
        [100, 101, 101, 101, 101, 101, 101, 102, 101, 100].map(Some)
    );

    // The same key again: the first result, nothing applied twice.
    let again = server.data(BULK, vars).await["inventoryBulkAdjust"].clone();
    assert_eq!(again, applied, "a retry returns the first result");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stock(&server, &warehouse).await, after, "no version moved");
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

async fn everything(server: &Server, rows: &[Value], key: &str) -> Value {
    let vars = json!({ "rows": rows, "policy": "REJECT_EVERYTHING", "key": key });
    server.data(BULK, vars).await["inventoryBulkAdjust"].clone()
}

#[tokio::test]
async fn reject_everything_lands_whole_or_is_refused_before_anything_is_written() {
    let server = Server::start().await;
    let (warehouse, _items, rows) = fixture(&server, "WHOLE").await;
    let before = stock(&server, &warehouse).await;
    let payload = everything(&server, &rows, "whole").await;
    // What fits lands whole: every row applied, one commit, one timestamp.
    let (payload, applied) = if on_dynamodb() {
        // 250 events do not fit one transaction of 100 items: refused, nothing written.
        let error = &payload["userErrors"][0];
        assert_eq!(error["code"], "INVALID_INPUT", "{payload}");
        assert_eq!(error["field"], json!(["input", "adjustments"]));
        let message = error["message"].as_str().expect("message");
        assert!(message.contains("at most 98"), "{message}");
        assert_eq!(payload["results"], json!([]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(stock(&server, &warehouse).await, before, "nothing changed");
        (everything(&server, &rows[..98], "fits").await, 98_usize)
    } else {
        (payload, 250)
    };
    assert_eq!(payload["userErrors"], json!([]), "{payload}");
    let results = payload["results"].as_array().expect("results");
    assert!(results.iter().all(|r| !r["inventoryItem"].is_null()));
    let item = results[0]["inventoryItem"]["id"].clone();
    let events = server
        .data(
            "query($i: ID!) { events(aggregateId: $i, first: 100) { edges { node { eventType occurredAt } } } }",
            json!({ "i": item }),
        )
        .await;
    let times: Vec<Value> = events["events"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .skip(1)
        .map(|e| e["node"]["occurredAt"].clone())
        .collect();
    assert_eq!(times.len(), applied.div_ceil(10));
    assert!(
        times.iter().all(|t| *t == times[0]),
        "one commit: {times:?}"
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}

#[tokio::test]
async fn counts_are_refused_when_stale_or_below_allocated_and_show_everywhere_else() {
    let server = Server::start().await;
    let warehouse = server.create_warehouse("COUNT").await;
    let item = server.create_item(&warehouse, "C-1", 10, 3).await;
    let count = |q: i64, c: Option<i64>, r: &str| json!({ "i": item, "q": q, "c": c, "r": r });
    let mut alerts = Subscription::open(
        &server,
        "subscription($w: ID) { lowStockAlerts(warehouseId: $w) { itemId available threshold } }",
        json!({ "w": warehouse }),
        false,
    )
    .await;

    // Stale: compared with 9 while 10 are on hand; nothing changes.
    let stale = server.data(COUNT, count(8, Some(9), "CYCLE_COUNT")).await;
    let error = &stale["inventorySetOnHand"]["userErrors"][0];
    assert_eq!(error["code"], "STALE_QUANTITY", "{stale}");
    assert_eq!(error["field"], json!(["input", "compareQuantity"]));
    assert!(stale["inventorySetOnHand"]["inventoryItem"].is_null());

    // A count that finds the books right: recorded, delta 0, version 2.
    let right = server.data(COUNT, count(10, Some(10), "CYCLE_COUNT")).await;
    let right = &right["inventorySetOnHand"];
    assert_eq!(right["userErrors"], json!([]), "{right}");
    assert_eq!(
        (
            right["inventoryItem"]["onHand"].as_i64(),
            right["inventoryItem"]["version"].as_i64()
        ),
        (Some(10), Some(2))
    );

    // Below what is allocated: refused.
    server
        .data(
            "mutation($i: ID!) { allocationCreate(input: {orderId: \"o-1\", itemId: $i, quantity: 4}) { userErrors { code } } }",
            json!({ "i": item }),
        )
        .await;
    let below = server.data(COUNT, count(3, None, "CORRECTION")).await;
    let error = &below["inventorySetOnHand"]["userErrors"][0];
    assert_eq!(error["code"], "INSUFFICIENT_STOCK", "{below}");
    assert_eq!(error["field"], json!(["input", "quantity"]));

    // Counting 6 (available 2, threshold 3) raises the alert.
    let low = server.data(COUNT, count(6, Some(10), "CYCLE_COUNT")).await;
    let low = &low["inventorySetOnHand"];
    assert_eq!(low["userErrors"], json!([]), "{low}");
    assert_eq!(low["inventoryItem"]["available"], 2);
    assert_eq!(low["inventoryItem"]["lowStock"], true);
    let version = low["inventoryItem"]["version"].as_i64().expect("version");
    let alert = alerts.next(Duration::from_secs(2)).await.expect("an alert");
    assert_eq!(alert["lowStockAlerts"]["itemId"], json!(item));
    assert_eq!(alert["lowStockAlerts"]["available"], 2);

    // The history has both counts, with the differences they found.
    let history = server
        .eventually(
            "query($i: ID!) { inventoryHistory(itemId: $i) { edges { node { reason delta quantityAfter reference } } } }",
            json!({ "i": item }),
            |d| d["inventoryHistory"]["edges"].as_array().map(Vec::len) == Some(3),
        )
        .await;
    let entries: Vec<Value> = history["inventoryHistory"]["edges"]
        .as_array()
        .expect("edges")
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(
        entries[1..],
        [
            json!({ "reason": "cycle_count", "delta": 0, "quantityAfter": 10, "reference": "count sheet 7" }),
            json!({ "reason": "cycle_count", "delta": -4, "quantityAfter": 6, "reference": "count sheet 7" }),
        ]
    );
    // The movement report counts the difference as removed; the zero count moves nothing.
    let report = server
        .data(
            "query($i: ID!) { stockMovementReport(itemId: $i) { totals { received removed allocated net } } }",
            json!({ "i": item }),
        )
        .await;
    assert_eq!(
        report["stockMovementReport"]["totals"],
        json!({ "received": 10, "removed": 4, "allocated": 4, "net": 6 })
    );
    // As of each count's version, rebuilt from the events.
    let as_of = |v: i64| {
        server.data(
            "query($i: ID!, $v: Int) { inventoryItemAsOf(id: $i, version: $v) { onHand allocated } }",
            json!({ "i": item, "v": v }),
        )
    };
    assert_eq!(
        as_of(2).await["inventoryItemAsOf"],
        json!({ "onHand": 10, "allocated": 0 })
    );
    assert_eq!(
        as_of(version).await["inventoryItemAsOf"],
        json!({ "onHand": 6, "allocated": 4 })
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
}
