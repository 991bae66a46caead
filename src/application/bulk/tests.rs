//! Bulk adjustments on the in-memory store, with and without a transaction limit like
//! DynamoDB's: one atomic commit or none, rows in order, refused rows reported by index, parts
//! that fit the store, retries that apply nothing twice, no update lost to a concurrent writer.

use std::sync::Arc;
use uuid::Uuid;

use super::*;
use crate::application::{AdjustStock, CreateItem, CreateWarehouse};
use crate::store::memory::MemoryEventStore;
use crate::store::EventStore;

fn anyone() -> CommandContext {
    CommandContext::default()
}

fn keyed(key: &str) -> CommandContext {
    CommandContext {
        idempotency_key: Some(key.into()),
        ..anyone()
    }
}

/// Items with these on-hand figures (threshold 0) in one new warehouse.
async fn items(commands: &Commands, code: &str, on_hand: &[i64]) -> Vec<Uuid> {
    let warehouse = CreateWarehouse {
        name: "W".into(),
        code: code.into(),
        address: None,
    };
    let Ok(Outcome::Warehouse(warehouse)) = commands.create_warehouse(&anyone(), warehouse).await
    else {
        panic!("warehouse")
    };
    let mut ids = Vec::new();
    for (n, quantity) in on_hand.iter().enumerate() {
        let item = CreateItem {
            warehouse_id: warehouse.id,
            sku: format!("SKU-{n}"),
            product_id: "P".into(),
            initial_quantity: *quantity,
            reorder_threshold: 0,
            reorder_quantity: 0,
        };
        let Ok(Outcome::Item(item)) = commands.create_item(&anyone(), item).await else {
            panic!("item")
        };
        ids.push(item.id);
    }
    ids
}

fn row(item_id: Uuid, delta: i64) -> BulkRow {
    BulkRow {
        item_id,
        delta,
        reason: if delta > 0 {
            AdjustmentReason::Received
        } else {
            AdjustmentReason::Correction
        },
        reference: None,
    }
}

fn bulk(rows: Vec<BulkRow>, policy: BulkPolicy) -> BulkAdjust {
    BulkAdjust { rows, policy }
}

fn rows_of(result: Result<Outcome, CommandError>) -> BulkOutcome {
    match result {
        Ok(Outcome::Bulk(outcome)) => outcome,
        other => panic!("not a bulk outcome: {other:?}"),
    }
}

async fn on_hand(store: &dyn EventStore, id: Uuid) -> i64 {
    crate::application::load::<InventoryItem>(store, id, None)
        .await
        .expect("load")
        .state
        .on_hand
}

async fn streams(store: &dyn EventStore, ids: &[Uuid]) -> Vec<usize> {
    let mut lengths = Vec::new();
    for id in ids {
        lengths.push(store.load(*id, 0, None).await.expect("load").len());
    }
    lengths
}

fn refused_indexes(outcome: &BulkOutcome) -> Vec<(usize, String, Option<String>)> {
    outcome
        .rows
        .iter()
        .filter_map(|r| {
            let error = r.error.as_ref()?;
            Some((r.index, error.code.clone(), error.field.clone()))
        })
        .collect()
}

#[tokio::test]
async fn every_row_lands_in_one_commit_and_rows_on_one_item_apply_in_order() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let ids = items(&commands, "ORDER", &[10, 10, 10]).await;
    let (a, b, c) = (ids[0], ids[1], ids[2]);
    let before = streams(&*store, &ids).await;
    // -15 on a passes only after the +5 before it.
    let rows = vec![row(a, 5), row(b, -3), row(a, -15), row(c, 1)];
    let outcome = rows_of(
        commands
            .bulk_adjust(&anyone(), bulk(rows, BulkPolicy::RejectEverything))
            .await,
    );
    let seen: Vec<i64> = outcome
        .rows
        .iter()
        .map(|r| r.item.as_ref().expect("applied").current.state.on_hand)
        .collect();
    assert_eq!(seen, [15, 7, 0, 11], "each row sees the rows before it");
    let mut events = Vec::new();
    for (id, from) in ids.iter().zip(&before) {
        events.extend(store.load(*id, *from as u64, None).await.expect("load"));
    }
    // Four changes and the alert of a reaching its threshold of 0, all of one commit.
    assert_eq!(events.len(), 5, "{events:#?}");
    assert!(events.iter().all(|e| e.timestamp == events[0].timestamp));
}

#[tokio::test]
async fn a_refused_row_under_reject_everything_applies_no_row() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let ids = items(&commands, "NONE", &[10, 10]).await;
    let before = streams(&*store, &ids).await;
    let rows = vec![
        row(ids[0], 5),
        row(ids[1], -11),
        row(ids[0], 0),
        row(Uuid::nil(), 1),
    ];
    let outcome = rows_of(
        commands
            .bulk_adjust(&anyone(), bulk(rows, BulkPolicy::RejectEverything))
            .await,
    );
    assert!(outcome.refused);
    assert!(outcome.rows.iter().all(|r| r.item.is_none()));
    let field = |f: &str| Some(f.to_owned());
    assert_eq!(
        refused_indexes(&outcome),
        [
            (1, "INSUFFICIENT_STOCK".into(), field("delta")),
            (2, "INVALID_INPUT".into(), field("delta")),
            (3, "NOT_FOUND".into(), field("itemId")),
        ]
    );
    assert_eq!(streams(&*store, &ids).await, before, "nothing written");
}

#[tokio::test]
async fn reject_failed_rows_applies_the_rest_in_commits_the_store_can_take() {
    // DynamoDB's limit: 100 items per transaction, so 49 rows per commit.
    let store = Arc::new(MemoryEventStore::with_max_commit_items(100));
    let commands = Commands::new(store.clone(), "test");
    let ids = items(&commands, "PARTS", &[1_000, 1_000, 1_000, 60]).await;
    // 120 rows; the last item runs down to 0 (its alert takes an item of the commit too).
    let mut rows: Vec<BulkRow> = (0..120).map(|n| row(ids[n % 3], 1)).collect();
    for n in (3..120).step_by(4) {
        rows[n] = row(ids[3], -2);
    }
    for bad in [6, 60, 118] {
        rows[bad] = row(ids[bad % 3], 0);
    }
    let outcome = rows_of(
        commands
            .bulk_adjust(&keyed("parts"), bulk(rows, BulkPolicy::RejectFailedRows))
            .await,
    );
    assert!(!outcome.refused);
    let indexes: Vec<usize> = outcome.rows.iter().map(|r| r.index).collect();
    assert_eq!(indexes, (0..120).collect::<Vec<_>>());
    let refused: Vec<usize> = refused_indexes(&outcome).iter().map(|r| r.0).collect();
    assert_eq!(refused, [6, 60, 118]);
    assert_eq!(
        outcome.rows.iter().filter(|r| r.item.is_some()).count(),
        117
    );
    assert_eq!(on_hand(&*store, ids[3]).await, 0, "30 rows of -2 from 60");
    let mut total = 0;
    for id in &ids[..3] {
        total += on_hand(&*store, *id).await;
    }
    assert_eq!(
        total,
        3 * 1_000 + 87,
        "the 90 rows of +1 but the three refused"
    );
}

#[tokio::test]
async fn reject_everything_too_large_for_one_commit_is_refused_whole() {
    let store = Arc::new(MemoryEventStore::with_max_commit_items(100));
    let commands = Commands::new(store.clone(), "test");
    let ids = items(&commands, "LARGE", &[0]).await;
    let before = streams(&*store, &ids).await;
    let rows = |n: usize| (0..n).map(|_| row(ids[0], 1)).collect::<Vec<_>>();
    let result = commands
        .bulk_adjust(
            &keyed("large"),
            bulk(rows(99), BulkPolicy::RejectEverything),
        )
        .await;
    match result {
        Err(CommandError::Rejected(DomainError::InvalidInput { field, message })) => {
            assert_eq!(field, "adjustments");
            assert!(message.contains("at most 98"), "{message}");
            assert!(message.contains("101 transaction items"), "{message}");
        }
        other => panic!("not refused: {other:?}"),
    }
    assert_eq!(streams(&*store, &ids).await, before, "nothing written");
    // 98 rows, the outbox row and the idempotency record: exactly 100.
    let outcome = rows_of(
        commands
            .bulk_adjust(&keyed("fits"), bulk(rows(98), BulkPolicy::RejectEverything))
            .await,
    );
    assert_eq!(outcome.rows.len(), 98);
    assert_eq!(on_hand(&*store, ids[0]).await, 98);
}

#[tokio::test]
async fn a_retried_bulk_returns_its_first_result_and_applies_nothing_twice() {
    let store = Arc::new(MemoryEventStore::with_max_commit_items(100));
    let commands = Commands::new(store.clone(), "test");
    let ids = items(&commands, "RETRY", &[5, 5]).await;
    let rows = || -> Vec<BulkRow> { (0..60).map(|n| row(ids[n % 2], 1)).collect() };
    let first = commands
        .bulk_adjust(&keyed("k"), bulk(rows(), BulkPolicy::RejectFailedRows))
        .await
        .expect("first");
    let lengths = streams(&*store, &ids).await;
    let again = commands
        .bulk_adjust(&keyed("k"), bulk(rows(), BulkPolicy::RejectFailedRows))
        .await
        .expect("again");
    assert_eq!(first, again, "the first result, both parts replayed");
    assert_eq!(
        streams(&*store, &ids).await,
        lengths,
        "nothing applied twice"
    );
    let mut other = rows();
    other[59].delta = 2;
    let reused = commands
        .bulk_adjust(&keyed("k"), bulk(other, BulkPolicy::RejectFailedRows))
        .await;
    assert!(
        matches!(&reused, Err(CommandError::Rejected(DomainError::InvalidInput { field, .. })) if *field == "idempotencyKey"),
        "{reused:?}"
    );
}

#[tokio::test]
async fn rows_refused_on_a_remembered_state_are_decided_again_on_the_stored_one() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let here = Commands::new(store.clone(), "here");
    let elsewhere = Commands::new(store.clone(), "elsewhere");
    let ids = items(&here, "REMEMBER", &[10]).await;
    let adjust = AdjustStock {
        item_id: ids[0],
        delta: 5,
        reason: AdjustmentReason::Received,
        reference: None,
        expected_version: None,
    };
    elsewhere
        .adjust_stock(&anyone(), adjust)
        .await
        .expect("adjust");
    // -12 is more than the remembered 10 holds, not the stored 15.
    let outcome = rows_of(
        here.bulk_adjust(
            &anyone(),
            bulk(vec![row(ids[0], -12)], BulkPolicy::RejectEverything),
        )
        .await,
    );
    assert!(!outcome.refused, "{outcome:?}");
    assert_eq!(on_hand(&*store, ids[0]).await, 3);
}

#[tokio::test]
async fn no_update_is_lost_to_writers_in_other_processes() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    let here = Commands::new(store.clone(), "here");
    let elsewhere = Arc::new(Commands::new(store.clone(), "elsewhere"));
    let ids = items(&here, "RACE", &[100, 100]).await;
    let rows: Vec<BulkRow> = (0..40).map(|n| row(ids[n % 2], -1)).collect();
    let singles = futures::future::join_all((0..20).map(|n| {
        let elsewhere = elsewhere.clone();
        let adjust = AdjustStock {
            item_id: ids[n % 2],
            delta: 2,
            reason: AdjustmentReason::Received,
            reference: None,
            expected_version: None,
        };
        async move { elsewhere.adjust_stock(&anyone(), adjust).await }
    }));
    let ctx = anyone();
    let (outcome, singles) = tokio::join!(
        here.bulk_adjust(&ctx, bulk(rows, BulkPolicy::RejectEverything)),
        singles
    );
    assert!(!rows_of(outcome).refused);
    assert!(singles.iter().all(Result::is_ok), "{singles:?}");
    // 100 - 20 + 20 each.
    assert_eq!(on_hand(&*store, ids[0]).await, 100);
    assert_eq!(on_hand(&*store, ids[1]).await, 100);
}

#[tokio::test]
async fn a_bulk_outside_the_callers_warehouses_or_of_no_rows_or_too_many_changes_nothing() {
    let store = Arc::new(MemoryEventStore::with_max_commit_items(10));
    let commands = Commands::new(store.clone(), "test");
    let mine = items(&commands, "MINE", &[5]).await;
    let theirs = items(&commands, "THEIRS", &[5]).await;
    let before = streams(&*store, &[mine[0], theirs[0]]).await;
    let warehouse = crate::application::load::<InventoryItem>(&*store, mine[0], None)
        .await
        .expect("load")
        .state
        .warehouse_id;
    let scoped = CommandContext {
        principal: "mine-operator".into(),
        scope: Scope::of([warehouse]),
        ..anyone()
    };
    // 4 rows per commit here: the forbidden row is in the third part, found before the first.
    let mut rows: Vec<BulkRow> = (0..10).map(|_| row(mine[0], 1)).collect();
    rows[9] = row(theirs[0], 1);
    let denied = commands
        .bulk_adjust(&scoped, bulk(rows, BulkPolicy::RejectFailedRows))
        .await;
    assert!(matches!(denied, Err(CommandError::Denied(_))), "{denied:?}");
    for count in [0, BULK_MAX_ROWS + 1] {
        let rows = (0..count).map(|_| row(mine[0], 1)).collect();
        let refused = commands
            .bulk_adjust(&anyone(), bulk(rows, BulkPolicy::RejectFailedRows))
            .await;
        assert!(
            matches!(&refused, Err(CommandError::Rejected(DomainError::InvalidInput { field, .. })) if *field == "adjustments"),
            "{refused:?}"
        );
    }
    assert_eq!(streams(&*store, &[mine[0], theirs[0]]).await, before);
}
