//! The pipeline on the in-memory store: batches, lost replies inside a batch, refusals decided
//! on a remembered state, throttling, idempotency and unique keys. On a current-thread runtime
//! every command joined together is queued before the queue's task first runs, so they are
//! decided as one batch — which the shared commit timestamp of their events shows.

use futures::future::join_all;
use std::sync::Arc;
use uuid::Uuid;

use super::*;
use crate::domain::allocation::AllocationCommand;
use crate::domain::item::AdjustmentReason;
use crate::domain::DomainError;
use crate::store::memory::{Faulty, MemoryEventStore};
use crate::store::{EventStore, StoreError};

static ANONYMOUS: std::sync::LazyLock<CommandContext> =
    std::sync::LazyLock::new(CommandContext::default);

fn ctx() -> &'static CommandContext {
    &ANONYMOUS
}

fn keyed(key: &str) -> CommandContext {
    CommandContext {
        idempotency_key: Some(key.into()),
        ..Default::default()
    }
}

fn adjust(item_id: Uuid, delta: i64) -> AdjustStock {
    AdjustStock {
        item_id,
        delta,
        reason: if delta > 0 {
            AdjustmentReason::Received
        } else {
            AdjustmentReason::Sold
        },
        reference: None,
        expected_version: None,
    }
}

/// A warehouse and an item with `on_hand`, through `commands`.
async fn item(commands: &Commands, code: &str, on_hand: i64) -> Uuid {
    let warehouse = match commands
        .create_warehouse(
            ctx(),
            CreateWarehouse {
                name: "W".into(),
                code: code.into(),
                address: None,
            },
        )
        .await
    {
        Ok(Outcome::Warehouse(w)) => w.id,
        other => panic!("warehouse: {other:?}"),
    };
    match commands
        .create_item(
            ctx(),
            CreateItem {
                warehouse_id: warehouse,
                sku: "SKU".into(),
                product_id: "P".into(),
                initial_quantity: on_hand,
                reorder_threshold: 0,
                reorder_quantity: 0,
            },
        )
        .await
    {
        Ok(Outcome::Item(item)) => item.id,
        other => panic!("item: {other:?}"),
    }
}

async fn stream_length(store: &dyn EventStore, id: Uuid) -> u64 {
    store.load(id, 0, None).await.expect("load").len() as u64
}

fn on_hand(outcome: &Result<Outcome, CommandError>) -> i64 {
    match outcome {
        Ok(Outcome::Item(item)) => item.current.state.on_hand,
        Ok(Outcome::Allocation { item, .. }) => item.current.state.on_hand,
        other => panic!("not a success: {other:?}"),
    }
}

#[tokio::test]
async fn a_batch_decides_each_command_on_the_ones_before_it_and_commits_once() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "BATCH", 0).await;
    let before = stream_length(&*store, item_id).await;
    let results =
        join_all((1..=10).map(|n| commands.adjust_stock(ctx(), adjust(item_id, n)))).await;
    // Each saw every earlier one: 1, 1+2, 1+2+3, ...
    let seen: Vec<i64> = results.iter().map(on_hand).collect();
    let expected: Vec<i64> = (1..=10).map(|n| n * (n + 1) / 2).collect();
    assert_eq!(seen, expected);
    let events = store.load(item_id, before, None).await.expect("load");
    assert!(events.len() >= 10, "{events:#?}");
    assert!(
        events.iter().all(|e| e.timestamp == events[0].timestamp),
        "one commit for the batch"
    );
}

#[tokio::test]
async fn a_lost_reply_in_a_batch_is_a_success_applied_once() {
    let store = Arc::new(Faulty::losing_replies(MemoryEventStore::new()));
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "LOST", 10).await;
    let allocate = commands.create_allocation(
        ctx(),
        CreateAllocation {
            order_id: "o-1".into(),
            item_id,
            quantity: 4,
            expires_at: None,
        },
    );
    let adjustments = join_all((0..6).map(|_| commands.adjust_stock(ctx(), adjust(item_id, 1))));
    let (allocated, adjusted) = tokio::join!(allocate, adjustments);
    let Ok(Outcome::Allocation { allocation, .. }) = allocated else {
        panic!("allocation: {allocated:?}")
    };
    assert!(adjusted.iter().all(Result::is_ok), "{adjusted:?}");
    let events = store.load(item_id, 0, None).await.expect("load");
    // Created, reserved once, adjusted six times: nothing applied twice.
    assert_eq!(events.len(), 8, "{events:#?}");
    let allocation_events = store.load(allocation.id, 0, None).await.expect("load");
    assert_eq!(allocation_events.len(), 1);
    let stored = super::load::<crate::domain::item::InventoryItem>(&*store, item_id, None)
        .await
        .expect("fold");
    assert_eq!(stored.state.on_hand, 16);
    assert_eq!(stored.state.allocated, 4);
}

#[tokio::test]
async fn a_refusal_decided_on_a_remembered_state_is_decided_again_on_the_stored_one() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryEventStore::new());
    // Two processes over one store; `here` remembers the item at 10 on hand.
    let here = Commands::new(store.clone(), "here");
    let elsewhere = Commands::new(store.clone(), "elsewhere");
    let item_id = item(&here, "REMEMBER", 10).await;
    on_hand(&elsewhere.adjust_stock(ctx(), adjust(item_id, 5)).await);
    // 12 is more than the remembered 10 but not than the stored 15.
    let allocation = CreateAllocation {
        order_id: "o-1".into(),
        item_id,
        quantity: 12,
        expires_at: None,
    };
    let allocated = here.create_allocation(ctx(), allocation.clone()).await;
    assert_eq!(on_hand(&allocated), 15, "decided on the stored state");
    // A refusal that the stored state confirms stays one.
    let too_many = here
        .create_allocation(
            ctx(),
            CreateAllocation {
                quantity: 4,
                ..allocation
            },
        )
        .await;
    assert!(
        matches!(
            too_many,
            Err(CommandError::Rejected(
                DomainError::InsufficientStock { .. }
            ))
        ),
        "{too_many:?}"
    );
}

#[tokio::test]
async fn a_throttled_batch_answers_every_command_throttled() {
    let store = Arc::new(Faulty::throttling(MemoryEventStore::new()));
    store.throttle(false);
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "THROTTLE", 10).await;
    store.throttle(true);
    let confirm_target = Uuid::now_v7();
    let results = join_all((1..=5).map(|n| commands.adjust_stock(ctx(), adjust(item_id, n)))).await;
    for result in &results {
        assert!(
            matches!(
                result,
                Err(CommandError::Store(StoreError::Throttled { .. }))
            ),
            "the kind survives the batch: {result:?}"
        );
    }
    // A change to an allocation that does not exist is refused, never throttled: nothing to
    // commit.
    let refused = commands
        .change_allocation(ctx(), confirm_target, AllocationCommand::ConfirmAllocation)
        .await;
    assert!(
        matches!(
            refused,
            Err(CommandError::Rejected(DomainError::NotFound { .. }))
        ),
        "{refused:?}"
    );
}

#[tokio::test]
async fn allocation_changes_share_their_items_batch() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "MIXED", 10).await;
    let before = stream_length(&*store, item_id).await;
    let Ok(Outcome::Allocation { allocation, .. }) = commands
        .create_allocation(
            ctx(),
            CreateAllocation {
                order_id: "o-1".into(),
                item_id,
                quantity: 3,
                expires_at: None,
            },
        )
        .await
    else {
        panic!("allocation")
    };
    let cancel = commands.change_allocation(
        ctx(),
        allocation.id,
        AllocationCommand::CancelAllocation {
            reason: "customer".into(),
        },
    );
    let adjust_all = commands.adjust_stock(ctx(), adjust(item_id, -10));
    let (cancelled, adjusted) = tokio::join!(cancel, adjust_all);
    // The cancel released 3 before the adjustment took all 10: both in one commit.
    let Ok(Outcome::Allocation { item, .. }) = cancelled else {
        panic!("cancel: {cancelled:?}")
    };
    assert_eq!(item.current.state.allocated, 0);
    assert_eq!(on_hand(&adjusted), 0);
    let events = store.load(item_id, before + 1, None).await.expect("load");
    assert!(events.len() >= 2, "{events:#?}");
    assert!(
        events.iter().all(|e| e.timestamp == events[0].timestamp),
        "one commit"
    );
}

#[tokio::test]
async fn a_used_key_returns_the_first_result_and_refuses_another_input() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "KEYS", 0).await;
    let before = stream_length(&*store, item_id).await;
    let first = commands
        .adjust_stock(&keyed("k-1"), adjust(item_id, 3))
        .await;
    let again = commands
        .adjust_stock(&keyed("k-1"), adjust(item_id, 3))
        .await;
    assert_eq!(on_hand(&first), 3);
    assert_eq!(first.ok(), again.ok(), "the first result, replayed");
    let other = commands
        .adjust_stock(&keyed("k-1"), adjust(item_id, 4))
        .await;
    assert!(
        matches!(other, Err(CommandError::Rejected(DomainError::InvalidInput { field, .. })) if field == "idempotencyKey"),
        "{other:?}"
    );
    // The same key on another mutation is another key.
    let settings = crate::domain::item::ItemCommand::UpdateReorderSettings {
        reorder_threshold: Some(1),
        reorder_quantity: None,
    };
    assert!(commands
        .change_item(&keyed("k-1"), item_id, None, settings)
        .await
        .is_ok());
    assert_eq!(stream_length(&*store, item_id).await, before + 2);
}

#[tokio::test]
async fn a_taken_unique_key_refuses_only_its_own_command() {
    let store = Arc::new(Faulty::losing_replies(MemoryEventStore::new()));
    let commands = Commands::new(store.clone(), "test");
    item(&commands, "UNIQUE", 0).await;
    let twice = commands
        .create_warehouse(
            ctx(),
            CreateWarehouse {
                name: "Again".into(),
                code: "unique".into(),
                address: None,
            },
        )
        .await;
    assert!(
        matches!(
            twice,
            Err(CommandError::Rejected(DomainError::DuplicateCode { .. }))
        ),
        "{twice:?}"
    );
}

#[tokio::test]
async fn an_idempotency_key_belongs_to_its_principal() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "SQUAT", 0).await;
    let as_principal = |principal: &str| CommandContext {
        principal: principal.into(),
        ..keyed("order-17")
    };
    let squatter = commands
        .adjust_stock(&as_principal("mallory"), adjust(item_id, 1))
        .await;
    let owner = commands
        .adjust_stock(&as_principal("shop"), adjust(item_id, 5))
        .await;
    assert_eq!(on_hand(&squatter), 1);
    assert_eq!(on_hand(&owner), 6, "the owner's command ran, not refused");
}

#[tokio::test]
async fn a_scoped_principal_changes_nothing_outside_its_warehouses() {
    let store = Arc::new(MemoryEventStore::new());
    let commands = Commands::new(store.clone(), "test");
    let item_id = item(&commands, "FAR", 4).await;
    let elsewhere = CommandContext {
        principal: "north-operator".into(),
        scope: crate::auth::Scope::of([Uuid::now_v7()]),
        ..Default::default()
    };
    let before = stream_length(&*store, item_id).await;
    let denied = |result: &Result<Outcome, CommandError>| {
        matches!(
            result,
            Err(CommandError::Denied(crate::auth::Denied::Forbidden(_)))
        )
    };
    let adjusted = commands.adjust_stock(&elsewhere, adjust(item_id, -1)).await;
    assert!(denied(&adjusted), "{adjusted:?}");
    let allocated = commands
        .create_allocation(
            &elsewhere,
            CreateAllocation {
                order_id: "o-1".into(),
                item_id,
                quantity: 1,
                expires_at: None,
            },
        )
        .await;
    assert!(denied(&allocated), "{allocated:?}");
    let created = commands
        .create_warehouse(
            &elsewhere,
            CreateWarehouse {
                name: "Mine".into(),
                code: "MINE".into(),
                address: None,
            },
        )
        .await;
    assert!(denied(&created), "{created:?}");
    assert_eq!(stream_length(&*store, item_id).await, before);
}
