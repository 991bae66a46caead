//! A commit whose reply is lost: the store applied it, the request is retried (as the AWS SDK
//! does after a timeout) and the retry fails on the commit's own conditions. The command must
//! report success — not a conflict to retry on top of itself (a double-applied change), nor a
//! duplicate SKU for an item it just created.

use inventory_service::application::{
    AdjustStock, CommandContext, Commands, CreateItem, CreateWarehouse, Outcome,
};
use inventory_service::domain::item::AdjustmentReason;
use inventory_service::store::memory::Faulty;
use inventory_service::store::sqlite::SqliteEventStore;
use inventory_service::store::EventStore;
use std::sync::Arc;

#[tokio::test]
async fn a_retried_commit_that_had_landed_is_a_success_applied_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(Faulty::losing_replies(
        SqliteEventStore::open(temp.path()).expect("open store"),
    ));
    let commands = Commands::new(store.clone(), "test");
    let ctx = CommandContext::default();
    let Ok(Outcome::Warehouse(warehouse)) = commands
        .create_warehouse(
            &ctx,
            CreateWarehouse {
                name: "W".into(),
                code: "LOST".into(),
                address: None,
            },
        )
        .await
    else {
        panic!("creating a warehouse whose guard the retry finds taken succeeds")
    };
    let created = commands
        .create_item(
            &ctx,
            CreateItem {
                warehouse_id: warehouse.id,
                sku: "SKU-1".into(),
                product_id: "P".into(),
                initial_quantity: 10,
                reorder_threshold: 0,
                reorder_quantity: 0,
            },
        )
        .await;
    let Ok(Outcome::Item(item)) = created else {
        panic!("not a duplicate SKU: {created:?}")
    };
    let adjusted = commands
        .adjust_stock(
            &ctx,
            AdjustStock {
                item_id: item.id,
                delta: 5,
                reason: AdjustmentReason::Received,
                reference: None,
                expected_version: None,
            },
        )
        .await;
    let Ok(Outcome::Item(item)) = adjusted else {
        panic!("adjusted: {adjusted:?}")
    };
    assert_eq!(item.current.state.on_hand, 15);
    // Exactly one event per command in the store.
    let events = store.load(item.id, 0, None).await.expect("load");
    assert_eq!(events.len(), 2, "created + adjusted once: {events:#?}");
}
