//! Property test: for random command sequences, every projection equals a fold of the stored
//! events — both a replay through the projectors (`verify`) and the domain's own aggregate
//! fold — and stock invariants hold (available never negative, allocated equals the open
//! allocations). Some allocations carry deadlines a few hundred ms ahead, which the sweeper
//! (every 20 ms) and explicit expiries race the other commands for; in the end none is left
//! due, and only created allocations past their deadline were expired. Counts leave on hand at
//! the figure counted or change nothing; a bulk under REJECT_EVERYTHING applies every row or
//! none. Transfers to a second warehouse are created, shipped, received (perhaps short) and
//! cancelled among the rest: allocated equals the open allocations plus the transfers not yet
//! shipped, incoming the transfers shipped and not yet received. On SQLite, or on DynamoDB as
//! `backend_env` selects (`INVENTORY_TEST_BACKEND=dynamodb`).

mod common;

use inventory_service::app::{verify_projections, Service};
use inventory_service::application::now_ms;
use inventory_service::application::{
    load, AdjustStock, BulkAdjust, BulkPolicy, BulkRow, CommandContext, CommandError,
    CreateAllocation, CreateItem, CreateTransfer, CreateWarehouse, Outcome,
};
use inventory_service::config::{BusConfig, ExpiryConfig};
use inventory_service::domain::allocation::{Allocation, AllocationCommand, AllocationStatus};
use inventory_service::domain::item::{AdjustmentReason, CountReason, InventoryItem, ItemCommand};
use inventory_service::domain::transfer::{TransferCommand, TransferStatus};
use inventory_service::domain::warehouse::WarehouseCommand;
use inventory_service::projection::{AllocationFilter, TransferFilter};
use inventory_service::store::EventStore;
use proptest::prelude::*;
use std::time::Duration;
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Op {
    Adjust(usize, i64, usize),
    /// Item, quantity, and a deadline this many ms ahead.
    Allocate(usize, i64, Option<i64>),
    Expire(usize),
    Wait(u64),
    Confirm(usize),
    Cancel(usize),
    Fulfil(usize),
    Threshold(usize, i64),
    DeactivateItem(usize),
    DeactivateWarehouse,
    /// Count item i at q, compared with its on hand plus an offset (none: not compared).
    Count(usize, i64, Option<i64>, bool),
    /// Rows of (item, delta, reason), all or none (true) or each on its own.
    Bulk(Vec<(usize, i64, usize)>, bool),
    /// Transfer q of item i to the second warehouse.
    Transfer(usize, i64),
    Ship(usize),
    /// Receive a transfer, this many units short.
    Receive(usize, i64),
    CancelTransfer(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..3usize, -20..20i64, 0..6usize).prop_map(|(i, d, r)| Op::Adjust(i, d, r)),
        4 => (0..3usize, 1..8i64, proptest::option::of(20..300i64))
            .prop_map(|(i, q, d)| Op::Allocate(i, q, d)),
        1 => (0..12usize).prop_map(Op::Expire),
        2 => (0..150u64).prop_map(Op::Wait),
        2 => (0..12usize).prop_map(Op::Confirm),
        2 => (0..12usize).prop_map(Op::Cancel),
        2 => (0..12usize).prop_map(Op::Fulfil),
        1 => (0..3usize, 0..15i64).prop_map(|(i, t)| Op::Threshold(i, t)),
        1 => (0..3usize).prop_map(Op::DeactivateItem),
        1 => Just(Op::DeactivateWarehouse),
        3 => (0..3usize, 0..30i64, proptest::option::of(-1..=1i64), any::<bool>())
            .prop_map(|(i, q, c, r)| Op::Count(i, q, c, r)),
        2 => (proptest::collection::vec((0..3usize, -12..12i64, 0..6usize), 1..8), any::<bool>())
            .prop_map(|(rows, whole)| Op::Bulk(rows, whole)),
        3 => (0..3usize, 1..8i64).prop_map(|(i, q)| Op::Transfer(i, q)),
        2 => (0..12usize).prop_map(Op::Ship),
        2 => (0..12usize, 0..3i64).prop_map(|(t, s)| Op::Receive(t, s)),
        1 => (0..12usize).prop_map(Op::CancelTransfer),
    ]
}

/// Units on hand of the item as the store has it (folded from its events). The sweeper may
/// release reservations at any moment, never on-hand stock: what a count or a bulk did or did
/// not change is told by this.
async fn on_hand(store: &dyn EventStore, id: Uuid) -> i64 {
    load::<InventoryItem>(store, id, None)
        .await
        .expect("load")
        .state
        .on_hand
}

const REASONS: [AdjustmentReason; 6] = [
    AdjustmentReason::Received,
    AdjustmentReason::Sold,
    AdjustmentReason::Damaged,
    AdjustmentReason::Returned,
    AdjustmentReason::Correction,
    AdjustmentReason::Other,
];

async fn run(initial: Vec<i64>, ops: Vec<Op>) {
    let temp = tempfile::tempdir().expect("temp dir");
    // SQLite, or DynamoDB with INVENTORY_TEST_BACKEND=dynamodb (tables of its own per case).
    let config = common::library_storage(temp.path(), "prop", 4);
    let expiry = ExpiryConfig {
        expiry_interval_ms: 20,
    };
    let service = Service::start_with(&config, &BusConfig::default(), &expiry)
        .await
        .expect("start");
    let app = service.context.clone();
    let ctx = CommandContext {
        actor: "property".into(),
        correlation_id: "prop".into(),
        ..CommandContext::default()
    };
    let Ok(Outcome::Warehouse(warehouse)) = app
        .commands
        .create_warehouse(
            &ctx,
            CreateWarehouse {
                name: "W".into(),
                code: "W".into(),
                address: None,
            },
        )
        .await
    else {
        panic!("warehouse")
    };
    let Ok(Outcome::Warehouse(elsewhere)) = app
        .commands
        .create_warehouse(
            &ctx,
            CreateWarehouse {
                name: "W2".into(),
                code: "W2".into(),
                address: None,
            },
        )
        .await
    else {
        panic!("second warehouse")
    };
    let mut transfers: Vec<(Uuid, i64)> = Vec::new();
    let mut destinations = std::collections::BTreeSet::new();
    let mut items = Vec::new();
    for (n, quantity) in initial.into_iter().enumerate() {
        let command = CreateItem {
            warehouse_id: warehouse.id,
            sku: format!("SKU-{n}"),
            product_id: "P".into(),
            initial_quantity: quantity,
            reorder_threshold: 5,
            reorder_quantity: 10,
        };
        let Ok(Outcome::Item(item)) = app.commands.create_item(&ctx, command).await else {
            panic!("item")
        };
        items.push(item.id);
    }
    let mut allocations: Vec<Uuid> = Vec::new();
    for op in ops {
        // Business-rule rejections are expected; only infrastructure errors fail the test.
        let result = match op {
            Op::Adjust(i, delta, r) => {
                let command = AdjustStock {
                    item_id: items[i],
                    delta,
                    reason: REASONS[r],
                    reference: None,
                    expected_version: None,
                };
                app.commands.adjust_stock(&ctx, command).await
            }
            Op::Allocate(i, quantity, ahead) => {
                let command = CreateAllocation {
                    order_id: "order".into(),
                    item_id: items[i],
                    quantity,
                    expires_at: ahead.map(|ms| now_ms() + ms),
                };
                let result = app.commands.create_allocation(&ctx, command).await;
                if let Ok(Outcome::Allocation { allocation, .. }) = &result {
                    allocations.push(allocation.id);
                }
                result
            }
            Op::Wait(ms) => {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                continue;
            }
            Op::Transfer(i, quantity) => {
                let command = CreateTransfer {
                    from_item_id: items[i],
                    to_warehouse_id: elsewhere.id,
                    quantity,
                    reference: None,
                };
                let result = app.commands.create_transfer(&ctx, command).await;
                if let Ok(Outcome::Transfer {
                    transfer,
                    destination,
                    ..
                }) = &result
                {
                    transfers.push((transfer.id, quantity));
                    destinations.insert(destination.id);
                }
                result
            }
            Op::Ship(t) | Op::Receive(t, _) | Op::CancelTransfer(t) if transfers.is_empty() => {
                let _ = t;
                continue;
            }
            Op::Ship(t) => {
                let (id, _) = transfers[t % transfers.len()];
                app.commands
                    .change_transfer(&ctx, id, TransferCommand::ShipTransfer)
                    .await
            }
            Op::Receive(t, short) => {
                let (id, quantity) = transfers[t % transfers.len()];
                let command = TransferCommand::ReceiveTransfer {
                    quantity_received: (quantity - short).max(0),
                };
                app.commands.change_transfer(&ctx, id, command).await
            }
            Op::CancelTransfer(t) => {
                let (id, _) = transfers[t % transfers.len()];
                let command = TransferCommand::CancelTransfer {
                    reason: "prop".into(),
                };
                app.commands.change_transfer(&ctx, id, command).await
            }
            Op::Confirm(a) | Op::Cancel(a) | Op::Fulfil(a) | Op::Expire(a)
                if allocations.is_empty() =>
            {
                let _ = a;
                continue;
            }
            Op::Confirm(a) => {
                let id = allocations[a % allocations.len()];
                app.commands
                    .change_allocation(&ctx, id, AllocationCommand::ConfirmAllocation)
                    .await
            }
            Op::Cancel(a) => {
                let id = allocations[a % allocations.len()];
                let command = AllocationCommand::CancelAllocation {
                    reason: "prop".into(),
                };
                app.commands.change_allocation(&ctx, id, command).await
            }
            Op::Expire(a) => {
                let id = allocations[a % allocations.len()];
                app.commands.expire_allocation(id).await
            }
            Op::Fulfil(a) => {
                let id = allocations[a % allocations.len()];
                app.commands
                    .change_allocation(&ctx, id, AllocationCommand::FulfillAllocation)
                    .await
            }
            Op::Threshold(i, threshold) => {
                let command = ItemCommand::UpdateReorderSettings {
                    reorder_threshold: Some(threshold),
                    reorder_quantity: None,
                };
                app.commands
                    .change_item(&ctx, items[i], None, command)
                    .await
            }
            Op::DeactivateItem(i) => {
                let command = ItemCommand::DeactivateItem {
                    reason: "prop".into(),
                };
                app.commands
                    .change_item(&ctx, items[i], None, command)
                    .await
            }
            Op::DeactivateWarehouse => {
                let command = WarehouseCommand::DeactivateWarehouse {
                    reason: "prop".into(),
                };
                app.commands
                    .change_warehouse(&ctx, warehouse.id, command)
                    .await
            }
            Op::Count(i, quantity, offset, cycle) => {
                let before = on_hand(&*app.store, items[i]).await;
                let command = ItemCommand::SetOnHand {
                    quantity,
                    compare_quantity: offset.map(|o| before + o),
                    reason: if cycle {
                        CountReason::CycleCount
                    } else {
                        CountReason::Correction
                    },
                    reference: None,
                };
                let result = app
                    .commands
                    .change_item(&ctx, items[i], None, command)
                    .await;
                let after = on_hand(&*app.store, items[i]).await;
                match &result {
                    Ok(_) => assert_eq!(after, quantity, "a count sets on hand"),
                    Err(_) => assert_eq!(after, before, "a refused count changes nothing"),
                }
                if offset.is_some_and(|o| o != 0) {
                    assert!(result.is_err(), "a stale count is refused");
                }
                result
            }
            Op::Bulk(rows, whole) => {
                let mut before = Vec::new();
                for &id in &items {
                    before.push(on_hand(&*app.store, id).await);
                }
                let rows: Vec<BulkRow> = rows
                    .iter()
                    .map(|&(i, delta, r)| BulkRow {
                        item_id: items[i],
                        delta,
                        reason: REASONS[r],
                        reference: None,
                    })
                    .collect();
                let count = rows.len();
                let policy = if whole {
                    BulkPolicy::RejectEverything
                } else {
                    BulkPolicy::RejectFailedRows
                };
                let result = app
                    .commands
                    .bulk_adjust(&ctx, BulkAdjust { rows, policy })
                    .await;
                let mut after = Vec::new();
                for &id in &items {
                    after.push(on_hand(&*app.store, id).await);
                }
                if let Ok(Outcome::Bulk(outcome)) = &result {
                    let applied = outcome.rows.iter().filter(|r| r.item.is_some()).count();
                    let refused = outcome.rows.iter().filter(|r| r.error.is_some()).count();
                    if outcome.refused {
                        assert!(whole && applied == 0 && refused > 0, "none, and why");
                    } else {
                        assert_eq!(applied + refused, count, "every row applied or refused");
                        assert!(!whole || applied == count, "all or none");
                    }
                    if applied == 0 {
                        assert_eq!(after, before, "nothing applied, nothing written");
                    }
                }
                result
            }
        };
        if let Err(CommandError::Store(e)) = result {
            panic!("infrastructure failure: {e}");
        }
    }
    // Wait for the relay to drain the outbox into the projections.
    for _ in 0..500 {
        if app
            .store
            .outbox_pending(1)
            .await
            .expect("outbox")
            .is_empty()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Every deadline passes and the sweeper cancels what is still created.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..200 {
        let due = app.read.due_allocations(now_ms(), 100).await.expect("due");
        if due.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for &id in &allocations {
        let view = app.read.allocation(id).await.expect("read").expect("row");
        let folded = load::<Allocation>(&*app.store, id, None)
            .await
            .expect("load");
        assert_eq!(view.expires_at, folded.state.expires_at);
        match (view.status, view.cancel_reason.as_deref()) {
            (AllocationStatus::Created, _) => {
                assert_eq!(
                    view.expires_at, None,
                    "no allocation left past its deadline"
                )
            }
            (AllocationStatus::Cancelled, Some("expired")) => {
                let deadline = view
                    .expires_at
                    .expect("an expired allocation had a deadline");
                assert!(deadline <= view.updated_at, "expired no sooner than due");
            }
            (AllocationStatus::Confirmed | AllocationStatus::Fulfilled, _) => {
                assert_eq!(view.expires_at, None, "confirming clears the deadline")
            }
            _ => {}
        }
    }

    let every_transfer = app
        .read
        .transfers(
            TransferFilter::default(),
            inventory_service::projection::Keys::after(None, 10_000),
        )
        .await
        .expect("transfers");
    assert_eq!(
        every_transfer.len(),
        transfers.len(),
        "every transfer projected"
    );
    let in_status = |item: Uuid, status: TransferStatus, leaving: bool| -> i64 {
        every_transfer
            .iter()
            .filter(|t| t.status == status)
            .filter(|t| {
                if leaving {
                    t.from_item_id == item
                } else {
                    t.to_item_id == item
                }
            })
            .map(|t| t.quantity)
            .sum()
    };
    for &id in &destinations {
        let folded = load::<InventoryItem>(&*app.store, id, None)
            .await
            .expect("load");
        let view = app.read.item(id).await.expect("read").expect("projected");
        assert_eq!(
            (view.on_hand, view.incoming, view.version),
            (folded.state.on_hand, folded.state.incoming, folded.version),
            "destination projection equals the aggregate fold"
        );
        assert_eq!(
            view.incoming,
            in_status(id, TransferStatus::Shipped, false),
            "incoming equals the transfers shipped and not received"
        );
    }
    for &id in &items {
        let folded = load::<InventoryItem>(&*app.store, id, None)
            .await
            .expect("load");
        let view = app.read.item(id).await.expect("read").expect("projected");
        assert_eq!(
            (
                view.on_hand,
                view.allocated,
                view.reorder_threshold,
                view.active,
                view.version
            ),
            (
                folded.state.on_hand,
                folded.state.allocated,
                folded.state.reorder_threshold,
                folded.state.active,
                folded.version
            ),
            "item projection equals the aggregate fold"
        );
        assert!(view.available() >= 0, "available never negative");
        let open: i64 = app
            .read
            .allocations(
                AllocationFilter {
                    item_id: Some(id),
                    ..AllocationFilter::default()
                },
                inventory_service::projection::Keys::after(None, 10_000),
            )
            .await
            .expect("allocations")
            .iter()
            .filter(|a| {
                matches!(
                    a.status,
                    AllocationStatus::Created | AllocationStatus::Confirmed
                )
            })
            .map(|a| a.quantity)
            .sum();
        assert_eq!(
            view.allocated,
            open + in_status(id, TransferStatus::Created, true),
            "allocated equals the open allocations and the transfers not yet shipped"
        );
    }
    service.stop().await;
    assert_eq!(
        verify_projections(&config).await.expect("verify"),
        Vec::<String>::new()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn projections_equal_a_fold_of_the_stored_events(
        initial in proptest::collection::vec(0..30i64, 3),
        ops in proptest::collection::vec(op(), 1..40),
    ) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
        runtime.block_on(run(initial, ops));
    }
}
