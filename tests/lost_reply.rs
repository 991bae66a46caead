//! A commit whose reply is lost: the store applied it, the request is retried (as the AWS SDK
//! does after a timeout) and the retry fails on the commit's own conditions. The command must
//! report success — not a conflict to retry on top of itself (a double-applied change), nor a
//! duplicate SKU for an item it just created.

use async_trait::async_trait;
use inventory_service::application::{
    AdjustStock, CommandContext, Commands, CreateItem, CreateWarehouse, Outcome,
};
use inventory_service::domain::item::AdjustmentReason;
use inventory_service::store::sqlite::SqliteEventStore;
use inventory_service::store::{
    AllEventsPage, Commit, EventEnvelope, EventStore, IdempotencyRecord, OutboxEntry, Snapshot,
    StoreError,
};
use std::sync::Arc;
use uuid::Uuid;

/// The embedded store, with every append sent twice and the second reply returned.
struct LostReply(SqliteEventStore);

#[async_trait]
impl EventStore for LostReply {
    async fn append(&self, commit: Commit) -> Result<(), StoreError> {
        self.0.append(commit.clone()).await?;
        self.0.append(commit).await
    }
    async fn load(
        &self,
        aggregate_id: Uuid,
        after: u64,
        up_to: Option<u64>,
    ) -> Result<Vec<EventEnvelope>, StoreError> {
        self.0.load(aggregate_id, after, up_to).await
    }
    async fn read_all(
        &self,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AllEventsPage, StoreError> {
        self.0.read_all(cursor, limit).await
    }
    async fn idempotency(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.0.idempotency(key).await
    }
    async fn outbox_pending(&self, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.0.outbox_pending(limit).await
    }
    async fn outbox_stats(&self) -> Result<(u64, Option<i64>), StoreError> {
        self.0.outbox_stats().await
    }
    async fn outbox_remove(&self, ids: &[String]) -> Result<(), StoreError> {
        self.0.outbox_remove(ids).await
    }
    async fn outbox_wait(&self) {
        self.0.outbox_wait().await
    }
    async fn load_snapshot(&self, aggregate_id: Uuid) -> Result<Option<Snapshot>, StoreError> {
        self.0.load_snapshot(aggregate_id).await
    }
    async fn save_snapshot(&self, snapshot: Snapshot) -> Result<(), StoreError> {
        self.0.save_snapshot(snapshot).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
    async fn count_events(&self) -> Result<u64, StoreError> {
        self.0.count_events().await
    }
}

#[tokio::test]
async fn a_retried_commit_that_had_landed_is_a_success_applied_once() {
    let temp = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(LostReply(
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
