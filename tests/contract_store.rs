//! The event store contract, run over every adapter (SQLite and DynamoDB): atomic multi-stream
//! commits, optimistic concurrency, guards, idempotency records, the outbox and full reads.

use inventory_service::domain::item::ItemEvent;
use inventory_service::domain::AggregateType;
use inventory_service::dynamodb::{self, Tables};
use inventory_service::store::dynamodb::DynamoEventStore;
use inventory_service::store::sqlite::SqliteEventStore;
use inventory_service::store::{
    Commit, EventEnvelope, EventStore, Expectation, Guard, IdempotencyRecord, Metadata, StoreError,
};
use std::collections::HashSet;
use std::sync::Arc;
use uuid::Uuid;

fn event(aggregate: Uuid, sequence: u64, delta: i64) -> EventEnvelope {
    EventEnvelope::new(
        Uuid::now_v7(),
        AggregateType::InventoryItem,
        aggregate,
        sequence,
        &ItemEvent::StockLevelChanged {
            previous_quantity: 0,
            new_quantity: delta,
            delta,
            reason: inventory_service::domain::item::StockChangeReason::Received,
            reference: Some(format!("ref-{sequence}")),
            allocation_id: None,
        },
        Metadata {
            actor: "contract".into(),
            correlation_id: "c".into(),
            ..Metadata::default()
        },
        1_700_000_000_000 + sequence as i64,
    )
}

fn commit(aggregate: Uuid, version: u64, count: u64) -> Commit {
    Commit {
        expectations: vec![Expectation {
            aggregate_id: aggregate,
            version,
        }],
        events: (1..=count)
            .map(|i| event(aggregate, version + i, i as i64))
            .collect(),
        guards: vec![],
        idempotency: None,
    }
}

async fn outbox_ids(store: &dyn EventStore) -> HashSet<Uuid> {
    store
        .outbox_pending(10_000)
        .await
        .expect("outbox")
        .into_iter()
        .map(|e| e.envelope.event_id)
        .collect()
}

async fn contract(store: Arc<dyn EventStore>) {
    let store = &*store;
    let a = Uuid::now_v7();
    let b = Uuid::now_v7();

    // Append and load back exactly what was written, in order, within bounds.
    let first = commit(a, 0, 3);
    store.append(first.clone()).await.expect("append");
    let loaded = store.load(a, 0, None).await.expect("load");
    assert_eq!(loaded, first.events);
    assert_eq!(
        store.load(a, 1, Some(2)).await.expect("load"),
        first.events[1..2]
    );
    assert!(store.load(b, 0, None).await.expect("load").is_empty());

    // Every committed event has an outbox row.
    let pending = outbox_ids(store).await;
    assert!(first.events.iter().all(|e| pending.contains(&e.event_id)));

    // A stale expectation loses, and a multi-stream commit is all or nothing.
    let mut both = commit(b, 0, 1);
    both.expectations.push(Expectation {
        aggregate_id: a,
        version: 2,
    });
    both.events.push(event(a, 3, 9));
    assert!(matches!(
        store.append(both.clone()).await,
        Err(StoreError::Conflict { .. })
    ));
    assert!(
        store.load(b, 0, None).await.expect("load").is_empty(),
        "nothing of a failed commit is written"
    );
    assert!(
        !outbox_ids(store).await.contains(&both.events[0].event_id),
        "nor its outbox rows"
    );

    // A stream only read (checked) must not have moved either.
    let mut checked = commit(b, 0, 1);
    checked.expectations.push(Expectation {
        aggregate_id: a,
        version: 2,
    });
    assert!(matches!(
        store.append(checked).await,
        Err(StoreError::Conflict { .. })
    ));
    let mut checked = commit(b, 0, 1);
    checked.expectations.push(Expectation {
        aggregate_id: a,
        version: 3,
    });
    store
        .append(checked)
        .await
        .expect("check at the current version passes");

    // Two writers of the same version: exactly one wins.
    let racers = futures::future::join_all((0..8).map(|_| store.append(commit(a, 3, 1)))).await;
    assert_eq!(racers.iter().filter(|r| r.is_ok()).count(), 1, "{racers:?}");
    assert!(racers
        .iter()
        .all(|r| matches!(r, Ok(()) | Err(StoreError::Conflict { .. }))));
    assert_eq!(store.load(a, 0, None).await.expect("load").len(), 4);

    // Guards: first writer wins, for ever; the loser writes nothing; the owner is read back.
    let c = Uuid::now_v7();
    let mut guarded = commit(c, 0, 1);
    guarded.guards.push(Guard {
        key: format!("sku#{a}#GUARDED"),
        owner: c,
    });
    assert_eq!(
        store
            .guard_owner(&format!("sku#{a}#GUARDED"))
            .await
            .expect("read"),
        None
    );
    store.append(guarded.clone()).await.expect("first claim");
    assert_eq!(
        store
            .guard_owner(&format!("sku#{a}#GUARDED"))
            .await
            .expect("read"),
        Some(c)
    );
    let d = Uuid::now_v7();
    let mut second = commit(d, 0, 1);
    second.guards = guarded.guards.clone();
    assert_eq!(
        store.append(second).await,
        Err(StoreError::GuardTaken {
            key: format!("sku#{a}#GUARDED")
        })
    );
    assert!(store.load(d, 0, None).await.expect("load").is_empty());
    assert_eq!(
        store
            .guard_owner(&format!("sku#{a}#GUARDED"))
            .await
            .expect("read"),
        Some(c),
        "the loser does not take the guard over"
    );

    // Idempotency records: written with the commit, readable, and claimed once.
    let record = IdempotencyRecord {
        key: format!("inventoryAdjust:{}", Uuid::now_v7()),
        fingerprint: "{\"delta\":1}".into(),
        response: serde_json::json!({"ok": true}),
    };
    let mut once = commit(d, 0, 1);
    once.idempotency = Some(record.clone());
    store.append(once).await.expect("with record");
    assert_eq!(
        store.idempotency(&record.key).await.expect("read"),
        Some(record.clone())
    );
    let mut twice = commit(d, 1, 1);
    twice.idempotency = Some(record.clone());
    assert_eq!(
        store.append(twice).await,
        Err(StoreError::IdempotencyKeyUsed {
            key: record.key.clone()
        })
    );
    assert_eq!(store.idempotency("never-used").await.expect("read"), None);

    // The outbox drains: removed rows are gone, the others stay.
    let pending = store.outbox_pending(10_000).await.expect("outbox");
    let (done, kept) = pending.split_at(pending.len() / 2);
    store
        .outbox_remove(&done.iter().map(|e| e.id.clone()).collect::<Vec<_>>())
        .await
        .expect("remove");
    let left = outbox_ids(store).await;
    assert!(done.iter().all(|e| !left.contains(&e.envelope.event_id)));
    assert!(kept.iter().all(|e| left.contains(&e.envelope.event_id)));

    // read_all pages through every event exactly once, each stream in order.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.read_all(cursor, 2).await.expect("page");
        seen.extend(page.events);
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let ids: HashSet<_> = seen.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), seen.len(), "no event twice");
    for stream in [a, b, c, d] {
        let in_store = store.load(stream, 0, None).await.expect("load");
        let in_scan: Vec<_> = seen
            .iter()
            .filter(|e| e.aggregate_id == stream)
            .cloned()
            .collect();
        let mut sorted = in_scan.clone();
        sorted.sort_by_key(|e| e.sequence_number);
        assert_eq!(sorted, in_store, "read_all holds every event of {stream}");
    }
    // Snapshots: the newest wins; an older one never replaces it.
    let snapshot = |version: u64| inventory_service::store::Snapshot {
        aggregate_id: a,
        aggregate_type: AggregateType::InventoryItem,
        version,
        state_version: 1,
        state: serde_json::json!({ "version": version }),
    };
    assert_eq!(store.load_snapshot(a).await.expect("none yet"), None);
    store.save_snapshot(snapshot(3)).await.expect("save");
    store
        .save_snapshot(snapshot(2))
        .await
        .expect("older is accepted and ignored");
    assert_eq!(
        store.load_snapshot(a).await.expect("load"),
        Some(snapshot(3))
    );
    store.save_snapshot(snapshot(4)).await.expect("newer");
    assert_eq!(
        store.load_snapshot(a).await.expect("load"),
        Some(snapshot(4))
    );

    store.ping().await.expect("ping");
}

#[tokio::test]
async fn memory_event_store_keeps_the_contract() {
    // The store the application layer's unit tests run on must keep the same contract.
    contract(Arc::new(
        inventory_service::store::memory::MemoryEventStore::new(),
    ))
    .await;
}

#[tokio::test]
async fn sqlite_event_store_keeps_the_contract() {
    let temp = tempfile::tempdir().expect("temp dir");
    contract(Arc::new(SqliteEventStore::open(temp.path()).expect("open"))).await;
}

async fn dynamo() -> (aws_sdk_dynamodb::Client, Tables) {
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT").expect(
        "INVENTORY_TEST_DYNAMODB_ENDPOINT is not set: run the suite with scripts/test.sh, or start an endpoint with scripts/dynamodb-local.sh start and export it",
    );
    let client = dynamodb::client(Some(&endpoint)).await;
    let tables = Tables::new(format!("c{}_", Uuid::now_v7().simple()));
    dynamodb::migrate(&client, &tables).await.expect("migrate");
    (client, tables)
}

#[tokio::test]
async fn dynamodb_event_store_keeps_the_contract() {
    let (client, tables) = dynamo().await;
    contract(Arc::new(DynamoEventStore::new(client, tables))).await;
}

#[tokio::test]
async fn dynamodb_refuses_a_commit_over_the_transaction_limits_before_calling() {
    let (client, tables) = dynamo().await;
    let store = DynamoEventStore::new(client, tables);
    let a = Uuid::now_v7();
    // 100 events and the commit's outbox row = 101 transaction items.
    let result = store.append(commit(a, 0, 100)).await;
    assert!(matches!(result, Err(StoreError::TooLarge(_))), "{result:?}");
    assert!(store.load(a, 0, None).await.expect("load").is_empty());
    // 99 events and the outbox row fit in one transaction.
    store.append(commit(a, 0, 99)).await.expect("99 events");
    assert_eq!(store.load(a, 0, None).await.expect("load").len(), 99);

    // `Commit::items` counts as the adapter does (what a bulk adjustment plans by): events,
    // the outbox row, a check on a stream only read, the idempotency record.
    assert_eq!(store.max_commit_items(), Some(100));
    let mixed = |events: u64| {
        let b = Uuid::now_v7();
        let mut mixed = commit(Uuid::now_v7(), 0, events);
        mixed.expectations.push(Expectation {
            aggregate_id: b,
            version: 0,
        });
        mixed.idempotency = Some(IdempotencyRecord {
            key: format!("bulk:{b}"),
            fingerprint: "f".into(),
            response: serde_json::json!({}),
        });
        mixed
    };
    let over = mixed(98);
    assert_eq!(over.items(), 101);
    let result = store.append(over).await;
    assert!(matches!(result, Err(StoreError::TooLarge(_))), "{result:?}");
    let exactly = mixed(97);
    assert_eq!(exactly.items(), 100);
    store.append(exactly).await.expect("100 items");
}

#[tokio::test]
async fn the_events_table_has_the_seed_key_schema() {
    let (client, tables) = dynamo().await;
    let table = client
        .describe_table()
        .table_name(tables.events())
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        [
            ("aggregateId".to_owned(), "HASH".to_owned()),
            ("sequenceNumber".to_owned(), "RANGE".to_owned())
        ]
    );
    let types: Vec<(String, String)> = table
        .attribute_definitions()
        .iter()
        .map(|a| {
            (
                a.attribute_name().to_owned(),
                a.attribute_type().as_str().to_owned(),
            )
        })
        .collect();
    assert!(types.contains(&("aggregateId".to_owned(), "S".to_owned())));
    assert!(types.contains(&("sequenceNumber".to_owned(), "N".to_owned())));
    // Running migrate again changes nothing.
    assert!(dynamodb::migrate(&client, &tables)
        .await
        .expect("again")
        .is_empty());
}

/// A table of an older release lacks the allocations' index of open deadlines: `migrate` adds
/// it to the table in place (and then, run again, changes nothing).
#[tokio::test]
async fn dynamodb_migrate_adds_an_index_an_older_table_lacks() {
    let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
        .expect("INVENTORY_TEST_DYNAMODB_ENDPOINT is not set");
    let client = dynamodb::client(Some(&endpoint)).await;
    let tables = Tables::new(format!("c{}_", Uuid::now_v7().simple()));
    let older = tables
        .specs()
        .into_iter()
        .map(|mut spec| {
            spec.global.retain(|index| index.name != "awaiting_expiry");
            spec
        })
        .collect();
    dynamodb::create_tables(&client, older)
        .await
        .expect("older tables");
    let added = dynamodb::migrate(&client, &tables).await.expect("migrate");
    assert_eq!(
        added,
        vec![format!("{}.awaiting_expiry", tables.allocations())]
    );
    let described = client
        .describe_table()
        .table_name(tables.allocations())
        .send()
        .await
        .expect("describe");
    let index = described
        .table()
        .map(|t| t.global_secondary_indexes())
        .unwrap_or_default()
        .iter()
        .find(|i| i.index_name() == Some("awaiting_expiry"))
        .cloned()
        .expect("the index was added");
    assert_eq!(
        index.index_status(),
        Some(&aws_sdk_dynamodb::types::IndexStatus::Active)
    );
    assert!(dynamodb::migrate(&client, &tables)
        .await
        .expect("again")
        .is_empty());
}
