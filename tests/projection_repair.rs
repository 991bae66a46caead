//! Read models that heal themselves: a server started on projections that lost rows — the
//! file deleted whole, or its last writes cut off as a power loss would — catches them up from
//! the store before `/health/ready` says 200, and then serves what a replay would build.

mod common;

use common::{prefix_of, Server};
use serde_json::json;
use std::path::Path;

const ITEM: &str = "query($i: ID!) { inventoryItem(id: $i) { onHand version } }";

fn dynamodb() -> bool {
    std::env::var("INVENTORY_TEST_BACKEND").as_deref() == Ok("dynamodb")
}

/// `inventory_dynamodb_requests_total{operation=...}` of a server (0 when never counted).
async fn requests(server: &Server, operation: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", server.url))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let label = format!("operation=\"{operation}\"");
    text.lines()
        .filter(|line| {
            line.starts_with("inventory_dynamodb_requests_total") && line.contains(&label)
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A warehouse and an item with a few stock changes; returns the item and its on-hand.
async fn some_history(server: &Server, code: &str) -> (String, i64) {
    let warehouse = server.create_warehouse(code).await;
    let item = server.create_item(&warehouse, "SKU-1", 10, 2).await;
    for delta in [5, -3, 7, -1] {
        assert_eq!(
            server.adjust(&item, delta, "CORRECTION").await["userErrors"],
            json!([])
        );
    }
    (item, 18)
}

fn remove_projection_files(dir: &Path) -> usize {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("projections") && name.contains(".db") {
            std::fs::remove_file(entry.path()).expect("remove");
            removed += 1;
        }
    }
    removed
}

/// What a new user tries: stop the service, delete the derived data, start it again.
async fn delete_the_projections(dir: &Path) {
    if dynamodb() {
        let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT").expect("endpoint");
        let client = inventory_service::dynamodb::client(Some(&endpoint)).await;
        let tables = inventory_service::dynamodb::Tables::new(format!("{}_", prefix_of(dir)));
        let mut names: Vec<String> = inventory_service::projection::layout::ProjectionName::ALL
            .iter()
            .flat_map(|p| tables.projection_tables(*p))
            .collect();
        names.push(tables.checkpoints());
        inventory_service::dynamodb::delete_tables(&client, &names)
            .await
            .expect("delete the projection tables");
    } else {
        assert!(
            remove_projection_files(dir) >= 1,
            "a projection file to delete"
        );
    }
}

#[tokio::test]
async fn deleted_projections_are_rebuilt_from_the_store_before_the_service_is_ready() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_on(dir.path()).await;
    let (item, on_hand) = some_history(&server, "DEL").await;
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    assert!(server.terminate().success());

    // Nothing behind: a restart is ready at once and (on DynamoDB) reads no events to know it.
    let mut server = Server::start_on(dir.path()).await;
    let body = server.until_ready().await;
    assert_eq!(body["caughtUp"], json!(true));
    if dynamodb() {
        assert_eq!(
            requests(&server, "Scan").await,
            0.0,
            "no scan when caught up"
        );
    }
    assert!(server.terminate().success());

    delete_the_projections(dir.path()).await;
    let mut server = Server::start_on(dir.path()).await;
    let body = server.until_ready().await;
    assert_eq!(
        body,
        json!({"bus": true, "projections": true, "store": true, "caughtUp": true,
               "projectorStalled": false})
    );
    if dynamodb() {
        assert!(requests(&server, "Scan").await > 0.0, "the store was read");
    }
    // Ready means caught up: the item is there at once, not eventually.
    let data = server.data(ITEM, json!({ "i": item })).await;
    assert_eq!(data["inventoryItem"]["onHand"], on_hand);
    assert_eq!(data["inventoryItem"]["version"], 5);
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    // And the live path goes on from there.
    assert_eq!(
        server.adjust(&item, 2, "RECEIVED").await["inventoryItem"]["onHand"],
        on_hand + 2
    );
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    assert!(server.terminate().success());
}

/// The projection file's write-ahead log cut short after a crash: SQLite recovers the file as
/// of its last whole commit, as after a power loss before the last writes were synced.
#[tokio::test]
async fn a_projection_file_that_lost_its_last_writes_catches_up_at_start() {
    if dynamodb() {
        return; // A file's lost writes; DynamoDB keeps every acknowledged write.
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start_on(dir.path()).await;
    let (item, _) = some_history(&server, "CUT").await;
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    assert!(server.terminate().success());
    // The first run's writes into the file itself, so the WAL holds only the second run's.
    rusqlite::Connection::open(dir.path().join("projections.db"))
        .and_then(|conn| conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);"))
        .expect("checkpoint the projections' WAL");

    // A second run whose projection writes stay in the WAL (killed: no checkpoint on close).
    let mut server = Server::start_on(dir.path()).await;
    server.until_ready().await;
    let mut on_hand = 18;
    for _ in 0..20 {
        on_hand += 1;
        assert_eq!(
            server.adjust(&item, 1, "RECEIVED").await["userErrors"],
            json!([])
        );
    }
    server
        .eventually(ITEM, json!({ "i": item }), |d| {
            d["inventoryItem"]["onHand"] == on_hand
        })
        .await;
    server.kill();
    let wal = dir.path().join("projections.db-wal");
    let length = std::fs::metadata(&wal).expect("the projections' WAL").len();
    assert!(
        length > 32,
        "the second run's writes are in the WAL ({length} bytes)"
    );
    // Keep the WAL's header and first frame: every later commit is gone.
    let page = 4096 + 24;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&wal)
        .and_then(|file| file.set_len(32 + page))
        .expect("truncate the WAL");
    let lost: i64 = {
        let conn = rusqlite::Connection::open(dir.path().join("projections.db")).expect("open");
        conn.query_row("SELECT on_hand FROM items WHERE id = ?1", [&item], |row| {
            row.get(0)
        })
        .expect("the item's row")
    };
    assert!(
        (18..on_hand).contains(&lost),
        "the file kept the first run and lost the second's last writes: {lost} of {on_hand}"
    );

    let mut server = Server::start_on(dir.path()).await;
    server.until_ready().await;
    let data = server.data(ITEM, json!({ "i": item })).await;
    assert_eq!(data["inventoryItem"]["onHand"], on_hand);
    assert_eq!(data["inventoryItem"]["version"], 25);
    assert_eq!(server.settle_and_verify().await, Vec::<String>::new());
    assert!(server.terminate().success());
}
