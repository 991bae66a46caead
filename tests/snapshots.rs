//! Snapshots: written every N events off the command's path, used on load, and never trusted
//! when stale or unreadable — the state then comes from the events, and commands stay right.

use inventory_service::app::{rebuild_snapshots, Service};
use inventory_service::application::{
    load, load_latest, AdjustStock, CommandContext, CreateItem, CreateWarehouse, Outcome,
};
use inventory_service::config::{StorageConfig, StoreKind};
use inventory_service::domain::item::{AdjustmentReason, InventoryItem};
use inventory_service::domain::AggregateType;
use inventory_service::store::Snapshot;
use std::time::Duration;
use uuid::Uuid;

fn config(dir: &std::path::Path, every: u64) -> StorageConfig {
    StorageConfig {
        store: StoreKind::Sqlite,
        data_dir: dir.to_owned(),
        dynamodb_endpoint: None,
        table_prefix: String::new(),
        migrate: false,
        dynamodb_report_capacity: false,
        outbox_shards: 4,
        snapshot_every: every,
    }
}

async fn item_with_adjustments(service: &Service, adjustments: i64) -> Uuid {
    let ctx = CommandContext::default();
    let commands = &service.context.commands;
    let Ok(Outcome::Warehouse(warehouse)) = commands
        .create_warehouse(
            &ctx,
            CreateWarehouse {
                name: "W".into(),
                code: "SNAP".into(),
                address: None,
            },
        )
        .await
    else {
        panic!("warehouse")
    };
    let create = CreateItem {
        warehouse_id: warehouse.id,
        sku: "S".into(),
        product_id: "P".into(),
        initial_quantity: 0,
        reorder_threshold: 0,
        reorder_quantity: 0,
    };
    let Ok(Outcome::Item(item)) = commands.create_item(&ctx, create).await else {
        panic!("item")
    };
    for _ in 0..adjustments {
        let adjust = AdjustStock {
            item_id: item.id,
            delta: 1,
            reason: AdjustmentReason::Received,
            reference: None,
            expected_version: None,
        };
        commands.adjust_stock(&ctx, adjust).await.expect("adjust");
    }
    item.id
}

async fn wait_for_snapshot(service: &Service, id: Uuid, at_least: u64) -> Snapshot {
    for _ in 0..200 {
        if let Some(snapshot) = service.context.store.load_snapshot(id).await.expect("read") {
            if snapshot.version >= at_least {
                return snapshot;
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no snapshot at version {at_least} or later");
}

#[tokio::test]
async fn snapshots_are_written_every_n_events_and_loads_use_them() {
    let temp = tempfile::tempdir().expect("temp dir");
    let service = Service::start(&config(temp.path(), 10))
        .await
        .expect("start");
    // Created (1) + alert at 0 (2) + 35 adjustments = version 37.
    let id = item_with_adjustments(&service, 35).await;
    let snapshot = wait_for_snapshot(&service, id, 30).await;
    assert!(snapshot.version <= 37);
    let store = &*service.context.store;
    let latest = load_latest::<InventoryItem>(store, id, true)
        .await
        .expect("latest");
    let folded = load::<InventoryItem>(store, id, None).await.expect("fold");
    assert_eq!(
        latest.from_snapshot, snapshot.version,
        "the load started from the snapshot"
    );
    assert_eq!(
        (latest.state, latest.version, latest.updated_at),
        (folded.state.clone(), folded.version, folded.updated_at)
    );
    assert_eq!(folded.state.on_hand, 35);
    service.stop().await;
}

#[tokio::test]
async fn stale_or_unreadable_snapshots_are_ignored_and_rebuilt() {
    let temp = tempfile::tempdir().expect("temp dir");
    let settings = config(temp.path(), 10);
    let service = Service::start(&settings).await.expect("start");
    let id = item_with_adjustments(&service, 12).await;
    let store = service.context.store.clone();
    let truth = load::<InventoryItem>(&*store, id, None)
        .await
        .expect("fold");

    for (state_version, state) in [
        // An older state shape, claiming absurd figures: must not be trusted.
        (
            0,
            serde_json::json!({ "state": { "onHand": 999 }, "version": 14 }),
        ),
        // Current shape but not decodable.
        (1, serde_json::json!({ "garbage": true })),
        // Decodable but inconsistent with the version it claims.
        (
            1,
            serde_json::json!({ "state": { "exists": true, "warehouseId": Uuid::nil(), "sku": "S", "productId": "P",
            "onHand": 999, "allocated": 0, "reorderThreshold": 0, "reorderQuantity": 0, "active": true },
            "version": 3, "createdAt": 0, "updatedAt": 0 }),
        ),
    ] {
        let bad = Snapshot {
            aggregate_id: id,
            aggregate_type: AggregateType::InventoryItem,
            version: 14,
            state_version,
            state,
        };
        store.save_snapshot(bad).await.expect("save");
        let loaded = load_latest::<InventoryItem>(&*store, id, true)
            .await
            .expect("load");
        assert_eq!(loaded.state, truth.state, "a bad snapshot is ignored");
        assert_eq!(loaded.from_snapshot, 0);
    }

    // A command on top still sees the true state, and the rebuild replaces the bad snapshot.
    let adjust = AdjustStock {
        item_id: id,
        delta: -2,
        reason: AdjustmentReason::Sold,
        reference: None,
        expected_version: None,
    };
    let Ok(Outcome::Item(after)) = service
        .context
        .commands
        .adjust_stock(&CommandContext::default(), adjust)
        .await
    else {
        panic!("adjust")
    };
    assert_eq!(after.current.state.on_hand, 10);
    service.stop().await;
    assert!(rebuild_snapshots(&settings).await.expect("rebuild") >= 1);
    let reopened = Service::start(&settings).await.expect("restart");
    let snapshot = reopened
        .context
        .store
        .load_snapshot(id)
        .await
        .expect("read")
        .expect("snapshot");
    assert_eq!(snapshot.version, 15);
    let loaded = load_latest::<InventoryItem>(&*reopened.context.store, id, true)
        .await
        .expect("load");
    assert_eq!((loaded.from_snapshot, loaded.state.on_hand), (15, 10));
    reopened.stop().await;
}
