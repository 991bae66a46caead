//! API keys: the key store's contract over every adapter (in memory, SQLite, DynamoDB), and the
//! `api-key` commands run as an operator runs them, on the backend `INVENTORY_TEST_BACKEND`
//! selects; what the commands create is what the edge's `KeyDirectory` finds.

mod common;

use inventory_service::app::open_keys;
use inventory_service::auth::keys::{self, ApiKey, KeyDirectory, KeyError, KeyStore};
use inventory_service::auth::Role;
use inventory_service::config::{StorageConfig, StoreKind};
use inventory_service::dynamodb::{self, Tables};
use inventory_service::store::dynamodb::DynamoEventStore;
use inventory_service::store::memory::MemoryEventStore;
use inventory_service::store::sqlite::SqliteEventStore;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use uuid::Uuid;

fn issue(name: &str, role: Role, warehouses: Vec<Uuid>, acts: bool) -> (ApiKey, String) {
    ApiKey::issue(name, role, warehouses, acts, 1_700_000_000_000).expect("issue")
}

async fn contract(store: Arc<dyn KeyStore>) {
    let (w1, w2) = (Uuid::new_v4(), Uuid::new_v4());
    let (viewer, viewer_secret) = issue("viewer-1", Role::Viewer, vec![], false);
    let (gateway, gateway_secret) = issue("gateway@edge", Role::Operator, vec![w1, w2], true);

    // Create; a name in use is refused, whatever the rest of the key.
    store.create_key(&viewer).await.expect("create viewer");
    store.create_key(&gateway).await.expect("create gateway");
    let (again, _) = issue("viewer-1", Role::Admin, vec![], false);
    match store.create_key(&again).await {
        Err(KeyError::NameTaken(name)) => assert_eq!(name, "viewer-1"),
        other => panic!("a second viewer-1: {other:?}"),
    }
    // The very same key again (a retry after a lost reply) is a success and changes nothing.
    store.create_key(&viewer).await.expect("the same key again");

    // List: every key by name, exactly as created.
    let listed = store.keys().await.expect("list");
    assert_eq!(listed, vec![gateway.clone(), viewer.clone()]);

    // Lookup by hash: the key, or nothing.
    assert_eq!(
        store
            .key_by_hash(&keys::hash(&gateway_secret))
            .await
            .expect("lookup"),
        Some(gateway.clone())
    );
    assert_eq!(
        store
            .key_by_hash(&keys::hash(&keys::new_secret()))
            .await
            .expect("lookup"),
        None
    );

    // Revoke: once; the first time stays; an unknown name changes nothing.
    assert!(store
        .revoke_key("viewer-1", 1_700_000_000_500)
        .await
        .expect("revoke"));
    assert!(!store
        .revoke_key("viewer-1", 1_700_000_000_900)
        .await
        .expect("again"));
    assert!(!store
        .revoke_key("nobody", 1_700_000_000_900)
        .await
        .expect("unknown"));

    // After the revoke the key is still found (as revoked), still listed, and keeps its name.
    let revoked = store
        .key_by_hash(&keys::hash(&viewer_secret))
        .await
        .expect("lookup")
        .expect("still stored");
    assert_eq!(revoked.revoked_at, Some(1_700_000_000_500));
    assert_eq!(
        revoked,
        ApiKey {
            revoked_at: Some(1_700_000_000_500),
            ..viewer.clone()
        }
    );
    let listed = store.keys().await.expect("list");
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[1].revoked_at, Some(1_700_000_000_500));
    assert_eq!(listed[0].revoked_at, None);
    let (reuse, _) = issue("viewer-1", Role::Viewer, vec![], false);
    assert!(matches!(
        store.create_key(&reuse).await,
        Err(KeyError::NameTaken(_))
    ));

    // The edge's view of the same store.
    let directory = KeyDirectory::new(store.clone());
    let principal = directory
        .principal(&gateway_secret)
        .await
        .expect("lookup")
        .expect("gateway is valid");
    assert_eq!(principal.name, "gateway@edge");
    assert_eq!(principal.role, Some(Role::Operator));
    assert!(principal.acts_for_others);
    assert!(principal.sees(w1) && principal.sees(w2) && !principal.sees(Uuid::new_v4()));
    assert_eq!(
        directory.principal(&viewer_secret).await.expect("lookup"),
        None
    );
}

/// Many creators of one name at once: exactly one wins, the others are told it is taken.
async fn one_name_one_key(store: Arc<dyn KeyStore>) {
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let (key, _) = issue("contended", Role::Viewer, vec![], i % 2 == 0);
            store.create_key(&key).await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let taken = results
        .iter()
        .filter(|r| matches!(r, Ok(Err(KeyError::NameTaken(_)))))
        .count();
    assert_eq!((won, taken), (1, 7), "{results:?}");
    assert_eq!(store.keys().await.expect("list").len(), 1);
}

#[tokio::test]
async fn memory_key_store_keeps_the_contract() {
    contract(Arc::new(MemoryEventStore::new())).await;
    one_name_one_key(Arc::new(MemoryEventStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_key_store_keeps_the_contract() {
    let temp = tempfile::tempdir().expect("temp dir");
    contract(Arc::new(SqliteEventStore::open(temp.path()).expect("open"))).await;
    let temp = tempfile::tempdir().expect("temp dir");
    one_name_one_key(Arc::new(SqliteEventStore::open(temp.path()).expect("open"))).await;
}

#[tokio::test]
async fn sqlite_keys_survive_a_reopen() {
    let temp = tempfile::tempdir().expect("temp dir");
    let (key, secret) = issue("durable", Role::Admin, vec![], false);
    SqliteEventStore::open(temp.path())
        .expect("open")
        .create_key(&key)
        .await
        .expect("create");
    let reopened = SqliteEventStore::open(temp.path()).expect("reopen");
    assert_eq!(
        reopened
            .key_by_hash(&keys::hash(&secret))
            .await
            .expect("lookup"),
        Some(key)
    );
}

async fn dynamo() -> DynamoEventStore {
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT").expect(
        "INVENTORY_TEST_DYNAMODB_ENDPOINT is not set: start an endpoint with scripts/dynamodb-local.sh start and export it",
    );
    let client = dynamodb::client(Some(&endpoint)).await;
    let tables = Tables::new(format!("k{}_", Uuid::now_v7().simple()));
    dynamodb::migrate(&client, &tables).await.expect("migrate");
    DynamoEventStore::new(client, tables)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_key_store_keeps_the_contract() {
    contract(Arc::new(dynamo().await)).await;
    one_name_one_key(Arc::new(dynamo().await)).await;
}

/// Through the fault proxy: a create whose reply is lost after it landed (the SDK then retries
/// it, and the retry meets the rows its first attempt wrote) is still a success, and a create
/// cancelled by a conflicting transaction is tried again; each key is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_a_create_survives_lost_replies_and_conflicts() {
    use common::fault_proxy::{Fault, FaultProxy, Faults};
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
        .expect("INVENTORY_TEST_DYNAMODB_ENDPOINT is not set");
    let proxy = FaultProxy::start(&endpoint, 11).await;
    let client = dynamodb::client(Some(&proxy.url)).await;
    let tables = Tables::new(format!("k{}_", Uuid::now_v7().simple()));
    dynamodb::migrate(&client, &tables).await.expect("migrate");
    let store = DynamoEventStore::new(client, tables);

    // The reply replaced by throttling; then one held past the attempt timeout, whose retry's
    // reply is lost to throttling too.
    let mut created = Vec::new();
    for (name, lost) in [("lost-once", 1), ("lost-twice", 2)] {
        proxy.lose_next_commits(lost);
        let (key, secret) = issue(name, Role::Viewer, vec![], false);
        store
            .create_key(&key)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        created.push((key, secret));
    }
    assert!(proxy.stats().lost_commits >= 3, "{:?}", proxy.stats());

    proxy.set(Faults {
        conflict: 0.4,
        ..Faults::NONE
    });
    for i in 0..6 {
        let (key, secret) = issue(&format!("contested-{i}"), Role::Viewer, vec![], false);
        store
            .create_key(&key)
            .await
            .expect("created after conflicts");
        created.push((key, secret));
    }
    assert!(
        proxy.stats().faulted(Fault::Conflict) > 0,
        "{:?}",
        proxy.stats()
    );
    proxy.set(Faults::NONE);
    assert!(proxy.quiesce(std::time::Duration::from_secs(10)).await);

    let mut expected: Vec<ApiKey> = created.iter().map(|(key, _)| key.clone()).collect();
    expected.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(store.keys().await.expect("list"), expected);
    for (key, secret) in &created {
        let found = store
            .key_by_hash(&keys::hash(secret))
            .await
            .expect("lookup");
        assert_eq!(found.as_ref(), Some(key));
    }
}

// --- the command line ---

/// The storage `backend_env` selects for `data_dir`, as the library opens it.
fn storage(data_dir: &Path) -> StorageConfig {
    let env: std::collections::HashMap<String, String> =
        common::backend_env(data_dir).into_iter().collect();
    StorageConfig {
        store: match env.get("INVENTORY_STORE").map(String::as_str) {
            Some("dynamodb") => StoreKind::Dynamodb,
            _ => StoreKind::Sqlite,
        },
        data_dir: data_dir.to_owned(),
        dynamodb_endpoint: env.get("INVENTORY_DYNAMODB_ENDPOINT").cloned(),
        table_prefix: env
            .get("INVENTORY_TABLE_PREFIX")
            .cloned()
            .unwrap_or_default(),
        migrate: env.contains_key("INVENTORY_MIGRATE"),
        dynamodb_report_capacity: false,
        outbox_shards: inventory_service::store::dynamodb::DEFAULT_OUTBOX_SHARDS,
        snapshot_every: 0,
    }
}

/// `inventory-service api-key <args>` on the test's backend.
fn api_key(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(common::BINARY)
        .arg("api-key")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .envs(common::backend_env(data_dir))
        .env("RUST_LOG", "warn")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run inventory-service api-key")
}

fn stdout_lines(output: &Output) -> Vec<String> {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone())
        .expect("utf-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_commands_create_list_and_revoke() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path();
    let warehouse = Uuid::new_v4().to_string();

    // Create: what it made, then the secret alone on the last line.
    let created = stdout_lines(&api_key(
        dir,
        &[
            "create",
            "--name",
            "reorder-bot",
            "--role",
            "operator",
            "--warehouse",
            &warehouse,
        ],
    ));
    let secret = created.last().expect("a last line").clone();
    assert!(keys::is_secret_shaped(&secret), "last line {secret:?}");
    let shown = json_lines(&created[..created.len() - 1]);
    assert_eq!(shown.len(), 1, "{created:?}");
    assert_eq!(shown[0]["name"], "reorder-bot");
    assert_eq!(shown[0]["role"], "operator");
    assert_eq!(shown[0]["warehouses"], serde_json::json!([warehouse]));

    // On the backend under test (no SQLite file when it is DynamoDB).
    let config = storage(dir);
    assert_eq!(
        dir.join("events.db").exists(),
        config.store == StoreKind::Sqlite
    );

    // The edge finds the key by that secret.
    let store = open_keys(&config).await.expect("open keys");
    let principal = KeyDirectory::new(store.clone())
        .principal(&secret)
        .await
        .expect("lookup")
        .expect("the printed secret is the key's");
    assert_eq!(principal.name, "reorder-bot");
    assert_eq!(principal.role, Some(Role::Operator));

    // A taken name, a bad name and a bad warehouse id are refused and change nothing.
    let taken = api_key(
        dir,
        &["create", "--name", "reorder-bot", "--role", "viewer"],
    );
    assert_eq!(taken.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&taken.stderr).contains("exists already"));
    let bad_name = api_key(
        dir,
        &["create", "--name", "reorder bot", "--role", "viewer"],
    );
    assert!(!bad_name.status.success());
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("is not a key name"));
    let bad_warehouse = api_key(
        dir,
        &[
            "create",
            "--name",
            "x",
            "--role",
            "viewer",
            "--warehouse",
            "42",
        ],
    );
    assert!(!bad_warehouse.status.success());
    assert!(String::from_utf8_lossy(&bad_warehouse.stderr).contains("--warehouse"));

    // List: one line per key, neither its secret nor its hash.
    let listed = stdout_lines(&api_key(dir, &["list"]));
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(!listed[0].contains(&secret));
    assert!(!listed[0].contains(&keys::hash(&secret)));
    let key = &json_lines(&listed)[0];
    assert_eq!(key["name"], "reorder-bot");
    assert_eq!(key["role"], "operator");
    assert_eq!(key["warehouses"], serde_json::json!([warehouse]));
    assert!(key["createdAt"].is_string(), "{key}");
    assert_eq!(key["revokedAt"], Value::Null);

    // Revoke; the listing then says when, and the edge refuses the secret.
    stdout_lines(&api_key(dir, &["revoke", "--name", "reorder-bot"]));
    let listed = json_lines(&stdout_lines(&api_key(dir, &["list"])));
    assert!(listed[0]["revokedAt"].is_string(), "{}", listed[0]);
    assert_eq!(
        KeyDirectory::new(store)
            .principal(&secret)
            .await
            .expect("lookup"),
        None
    );

    // Revoking a name that no key has fails with exit code 1 and says so.
    let missing = api_key(dir, &["revoke", "--name", "nobody"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no API key named \"nobody\""));
}
