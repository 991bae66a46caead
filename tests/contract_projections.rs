//! The projection store contract, run over every adapter (SQLite and DynamoDB): a lifecycle of
//! warehouses, items and allocations gives the expected views and every query answers as it
//! should; a redelivery changes nothing; a gap stops the batch and applies nothing past it;
//! concurrent appliers converge; both adapters dump the same rows; and both keep the layout
//! handshake's heartbeat rows alike. DynamoDB cases need
//! `INVENTORY_TEST_DYNAMODB_ENDPOINT` (`scripts/dynamodb-local.sh start` prints one).

use inventory_service::domain::allocation::{AllocationEvent, AllocationStatus};
use inventory_service::domain::item::{ItemEvent, StockChangeReason};
use inventory_service::domain::warehouse::{WarehouseDetails, WarehouseEvent};
use inventory_service::domain::{AggregateType, DomainEvent};
use inventory_service::dynamodb::{self, Tables};
use inventory_service::projection::dynamodb::DynamoGenerations;
use inventory_service::projection::dynamodb::DynamoProjections;
use inventory_service::projection::lease::{self, Heartbeat};
use inventory_service::projection::sqlite::SqliteGenerations;
use inventory_service::projection::sqlite::SqliteProjections;
use inventory_service::projection::switch::Generations;
use inventory_service::projection::{
    AllocationFilter, AllocationView, Gap, HistoryEntry, ItemView, Keys, MovementRow,
    ProjectionDump, ProjectionError, ProjectionStore, ReadModel, WarehouseView,
};
use inventory_service::store::{EventEnvelope, Metadata};
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Adapters under test

trait Projections: ProjectionStore + ReadModel {}
impl<T: ProjectionStore + ReadModel> Projections for T {}

struct Adapter {
    store: Arc<dyn Projections>,
    dynamo: Option<(aws_sdk_dynamodb::Client, Tables)>,
    _dir: Option<tempfile::TempDir>,
}

impl Adapter {
    async fn sqlite() -> Adapter {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteProjections::open(&dir.path().join("projections.db")).expect("open");
        Adapter {
            store: Arc::new(store),
            dynamo: None,
            _dir: Some(dir),
        }
    }

    async fn dynamodb() -> Adapter {
        let endpoint = std::env::var("INVENTORY_TEST_DYNAMODB_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "INVENTORY_TEST_DYNAMODB_ENDPOINT is not set: the DynamoDB projection contract \
                     needs an endpoint. Run `E=$(scripts/dynamodb-local.sh start)` and \
                     `export INVENTORY_TEST_DYNAMODB_ENDPOINT=$E`, then run the tests again."
                )
            });
        let client = dynamodb::client(Some(&endpoint)).await;
        let tables = Tables::new(format!("t{}_", Uuid::new_v4().simple()));
        dynamodb::migrate(&client, &tables)
            .await
            .unwrap_or_else(|e| panic!("migrate on {endpoint}: {e}"));
        Adapter {
            store: Arc::new(DynamoProjections::new(client.clone(), tables.clone())),
            dynamo: Some((client, tables)),
            _dir: None,
        }
    }

    /// Drops the test's tables (the endpoint keeps them until it stops).
    async fn finish(self) {
        if let Some((client, tables)) = self.dynamo {
            for spec in tables.specs() {
                let _ = client.delete_table().table_name(spec.name).send().await;
            }
        }
    }
}

/// Runs each contract function once per adapter, as `on_sqlite::<name>` and `on_dynamodb::<name>`.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let adapter = super::Adapter::sqlite().await;
                    super::$name(&adapter.store).await;
                    adapter.finish().await;
                }
            )*
        }
        mod on_dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let adapter = super::Adapter::dynamodb().await;
                    super::$name(&adapter.store).await;
                    adapter.finish().await;
                }
            )*
        }
    };
}

contract!(
    lifecycle_views_and_queries,
    redelivery_changes_nothing,
    gaps_stop_the_batch,
    poison_is_reported,
    concurrent_appliers_converge,
    due_deadlines_are_found_and_only_those,
);

// ---------------------------------------------------------------------------------------------
// The story: two warehouses, four items, three allocations over two UTC days

/// 2024-03-01T10:00:00Z.
const T0: i64 = 1_709_287_200_000;
const D2: i64 = T0 + 86_400_000;
const DAY1: &str = "2024-03-01";
const DAY2: &str = "2024-03-02";
const CANCELLED: &str = "customer changed their mind";

struct Story {
    w1: Uuid,
    /// Deactivated at the end.
    w2: Uuid,
    /// SKU-A at W1: received, allocated and fulfilled, allocated and released, sold low.
    a: Uuid,
    /// SKU-B at W1: created low, then its threshold lowered so it is low no more.
    b: Uuid,
    /// SKU-C at W1: created empty with threshold 0 (low), then deactivated.
    c: Uuid,
    /// SKU-A at W2 (same SKU, other warehouse): created low, one unit allocated.
    d: Uuid,
    /// ORD-1 on A: created, confirmed, fulfilled.
    x: Uuid,
    /// ORD-2 on A: created, cancelled.
    y: Uuid,
    /// ORD-1 on D: created.
    z: Uuid,
    events: Vec<EventEnvelope>,
}

fn correlation(id: Uuid, sequence: u64) -> String {
    format!("corr-{id}-{sequence}")
}

/// Appends events per stream, numbering each stream from 1.
#[derive(Default)]
struct Streams {
    events: Vec<EventEnvelope>,
    sequences: HashMap<Uuid, u64>,
}

impl Streams {
    fn push<E: DomainEvent>(&mut self, kind: AggregateType, id: Uuid, at: i64, event: E) {
        let sequence = self.sequences.entry(id).or_insert(0);
        *sequence += 1;
        let metadata = Metadata {
            actor: "alice".into(),
            correlation_id: correlation(id, *sequence),
            source: "contract-test".into(),
            ..Metadata::default()
        };
        let envelope =
            EventEnvelope::new(Uuid::now_v7(), kind, id, *sequence, &event, metadata, at);
        self.events.push(envelope);
    }
    fn warehouse(&mut self, id: Uuid, at: i64, event: WarehouseEvent) {
        self.push(AggregateType::Warehouse, id, at, event);
    }
    fn item(&mut self, id: Uuid, at: i64, event: ItemEvent) {
        self.push(AggregateType::InventoryItem, id, at, event);
    }
    fn allocation(&mut self, id: Uuid, at: i64, event: AllocationEvent) {
        self.push(AggregateType::Allocation, id, at, event);
    }
}

fn details(name: &str, address: Option<&str>) -> WarehouseDetails {
    WarehouseDetails {
        name: name.into(),
        address: address.map(Into::into),
    }
}

fn item_created(
    warehouse_id: Uuid,
    sku: &str,
    [initial, threshold, quantity]: [i64; 3],
) -> ItemEvent {
    ItemEvent::InventoryItemCreated {
        warehouse_id,
        sku: sku.into(),
        product_id: format!("P-{sku}"),
        initial_quantity: initial,
        reorder_threshold: threshold,
        reorder_quantity: quantity,
    }
}

fn low(warehouse_id: Uuid, sku: &str, [current, threshold, suggested]: [i64; 3]) -> ItemEvent {
    ItemEvent::LowStockThresholdReached {
        sku: sku.into(),
        warehouse_id,
        current_quantity: current,
        threshold,
        suggested_reorder_quantity: suggested,
    }
}

fn changed(
    previous: i64,
    delta: i64,
    reason: StockChangeReason,
    reference: Option<&str>,
) -> ItemEvent {
    let allocation_id = reference.and_then(|r| Uuid::parse_str(r).ok());
    ItemEvent::StockLevelChanged {
        previous_quantity: previous,
        new_quantity: previous + delta,
        delta,
        reason,
        reference: reference.map(Into::into),
        allocation_id,
    }
}

fn allocated(allocation_id: Uuid, order_id: &str, quantity: i64) -> ItemEvent {
    ItemEvent::StockAllocated {
        allocation_id,
        order_id: order_id.into(),
        quantity,
    }
}

fn allocation_created(
    order_id: &str,
    item_id: Uuid,
    warehouse_id: Uuid,
    quantity: i64,
) -> AllocationEvent {
    AllocationEvent::AllocationCreated {
        order_id: order_id.into(),
        item_id,
        warehouse_id,
        quantity,
        expires_at: None,
    }
}

fn story() -> Story {
    use StockChangeReason::{AllocationFulfilled, Received, Sold};
    let [w1, w2, a, b, c, d, x, y, z] = [(); 9].map(|_| Uuid::now_v7());
    let x_ref = x.to_string();
    let mut s = Streams::default();
    let (code, name, address) = ("W1".into(), "Main".into(), Some("1 Dock Road".into()));
    s.warehouse(
        w1,
        T0,
        WarehouseEvent::WarehouseCreated {
            code,
            name,
            address,
        },
    );
    let (code, name, address) = ("W2".into(), "Overflow".into(), None);
    s.warehouse(
        w2,
        T0 + 1,
        WarehouseEvent::WarehouseCreated {
            code,
            name,
            address,
        },
    );
    let (previous, new) = (
        details("Main", Some("1 Dock Road")),
        details("Main North", None),
    );
    s.warehouse(
        w1,
        T0 + 5,
        WarehouseEvent::WarehouseUpdated { previous, new },
    );
    s.item(a, T0 + 100, item_created(w1, "SKU-A", [100, 10, 50]));
    s.item(b, T0 + 110, item_created(w1, "SKU-B", [5, 10, 20]));
    s.item(b, T0 + 110, low(w1, "SKU-B", [5, 10, 20]));
    s.item(c, T0 + 120, item_created(w1, "SKU-C", [0, 0, 0]));
    s.item(d, T0 + 130, item_created(w2, "SKU-A", [3, 5, 10]));
    s.item(d, T0 + 130, low(w2, "SKU-A", [3, 5, 10]));
    s.item(a, T0 + 1000, changed(100, 20, Received, Some("PO-1")));
    s.allocation(x, T0 + 2000, allocation_created("ORD-1", a, w1, 30));
    s.item(a, T0 + 2000, allocated(x, "ORD-1", 30));
    s.allocation(x, T0 + 3000, AllocationEvent::AllocationConfirmed {});
    s.allocation(z, T0 + 4000, allocation_created("ORD-1", d, w2, 1));
    s.item(d, T0 + 4000, allocated(z, "ORD-1", 1));
    let settings = ItemEvent::ReorderSettingsChanged {
        previous_threshold: 10,
        previous_quantity: 20,
        reorder_threshold: 2,
        reorder_quantity: 20,
    };
    s.item(b, T0 + 5000, settings);
    let reason = "discontinued".into();
    s.item(c, T0 + 6000, ItemEvent::InventoryItemDeactivated { reason });
    s.allocation(x, D2, AllocationEvent::AllocationFulfilled { quantity: 30 });
    s.item(a, D2, changed(120, -30, AllocationFulfilled, Some(&x_ref)));
    s.allocation(y, D2 + 1000, allocation_created("ORD-2", a, w1, 10));
    s.item(a, D2 + 1000, allocated(y, "ORD-2", 10));
    let reason = CANCELLED.into();
    s.allocation(
        y,
        D2 + 2000,
        AllocationEvent::AllocationCancelled { reason },
    );
    let (allocation_id, quantity, reason) = (y, 10, CANCELLED.into());
    s.item(
        a,
        D2 + 2000,
        ItemEvent::StockDeallocated {
            allocation_id,
            quantity,
            reason,
        },
    );
    s.item(a, D2 + 3000, changed(90, -85, Sold, None));
    s.item(a, D2 + 3000, low(w1, "SKU-A", [5, 10, 50]));
    let reason = "closed".into();
    s.warehouse(
        w2,
        D2 + 4000,
        WarehouseEvent::WarehouseDeactivated { reason },
    );
    Story {
        w1,
        w2,
        a,
        b,
        c,
        d,
        x,
        y,
        z,
        events: s.events,
    }
}

// ---------------------------------------------------------------------------------------------
// What the story must project to, written out by hand

impl Story {
    fn warehouse(&self, id: Uuid) -> WarehouseView {
        let (code, name, active, created_at, updated_at) = if id == self.w1 {
            ("W1", "Main North", true, T0, T0 + 5)
        } else {
            ("W2", "Overflow", false, T0 + 1, D2 + 4000)
        };
        let (code, name, address, version) = (code.into(), name.into(), None, 2);
        WarehouseView {
            id,
            code,
            name,
            address,
            active,
            version,
            created_at,
            updated_at,
        }
    }

    fn item(&self, id: Uuid) -> ItemView {
        let (w1, w2) = (self.w1, self.w2);
        // [on hand, allocated, threshold, reorder quantity], active, version, created, updated
        let (warehouse_id, sku, stock, active, version, created_at, updated_at) = match id {
            id if id == self.a => (w1, "SKU-A", [5, 0, 10, 50], true, 8, T0 + 100, D2 + 3000),
            id if id == self.b => (w1, "SKU-B", [5, 0, 2, 20], true, 3, T0 + 110, T0 + 5000),
            id if id == self.c => (w1, "SKU-C", [0, 0, 0, 0], false, 2, T0 + 120, T0 + 6000),
            _ => (w2, "SKU-A", [3, 1, 5, 10], true, 3, T0 + 130, T0 + 4000),
        };
        let [on_hand, allocated, reorder_threshold, reorder_quantity] = stock;
        let (sku, product_id) = (sku.to_owned(), format!("P-{sku}"));
        ItemView {
            id,
            warehouse_id,
            sku,
            product_id,
            on_hand,
            allocated,
            reorder_threshold,
            reorder_quantity,
            active,
            incoming: 0,
            version,
            created_at,
            updated_at,
        }
    }

    fn allocation(&self, id: Uuid) -> AllocationView {
        use AllocationStatus::{Cancelled, Created, Fulfilled};
        let (a, d, w1, w2) = (self.a, self.d, self.w1, self.w2);
        let (order, item_id, warehouse_id, quantity, status, version, created_at, updated_at) =
            match id {
                id if id == self.x => ("ORD-1", a, w1, 30, Fulfilled, 3, T0 + 2000, D2),
                id if id == self.y => ("ORD-2", a, w1, 10, Cancelled, 2, D2 + 1000, D2 + 2000),
                _ => ("ORD-1", d, w2, 1, Created, 1, T0 + 4000, T0 + 4000),
            };
        let cancel_reason = (status == Cancelled).then(|| CANCELLED.to_owned());
        let order_id = order.to_owned();
        AllocationView {
            id,
            order_id,
            item_id,
            warehouse_id,
            quantity,
            status,
            cancel_reason,
            expires_at: None,
            version,
            created_at,
            updated_at,
        }
    }

    fn history(&self) -> Vec<HistoryEntry> {
        let entry = |item_id,
                     sequence_number,
                     reason: &str,
                     [delta, quantity_after]: [i64; 2],
                     reference: Option<String>,
                     occurred_at| {
            let (reason, actor, correlation_id) = (
                reason.into(),
                "alice".into(),
                correlation(item_id, sequence_number),
            );
            HistoryEntry {
                item_id,
                sequence_number,
                reason,
                delta,
                quantity_after,
                reference,
                actor,
                correlation_id,
                occurred_at,
            }
        };
        let x = Some(self.x.to_string());
        let mut history = vec![
            entry(self.a, 1, "initial", [100, 100], None, T0 + 100),
            entry(
                self.a,
                2,
                "received",
                [20, 120],
                Some("PO-1".into()),
                T0 + 1000,
            ),
            entry(self.a, 4, "allocation_fulfilled", [-30, 90], x, D2),
            entry(self.a, 7, "sold", [-85, 5], None, D2 + 3000),
            entry(self.b, 1, "initial", [5, 5], None, T0 + 110),
            entry(self.c, 1, "initial", [0, 0], None, T0 + 120),
            entry(self.d, 1, "initial", [3, 3], None, T0 + 130),
        ];
        history.sort_by_key(|h| (h.item_id, h.sequence_number));
        history
    }

    fn movement(&self, item_id: Uuid, day: &str) -> MovementRow {
        let ItemView {
            warehouse_id, sku, ..
        } = self.item(item_id);
        let counts = match (item_id, day) {
            (id, DAY1) if id == self.a => [120, 0, 30, 0, 0, 120],
            (id, DAY2) if id == self.a => [0, 85, 10, 10, 30, -115],
            (id, _) if id == self.b => [5, 0, 0, 0, 0, 5],
            (id, _) if id == self.c => [0, 0, 0, 0, 0, 0],
            _ => [3, 0, 1, 0, 0, 3],
        };
        let [received, removed, allocated, released, fulfilled, net] = counts;
        let day = day.to_owned();
        MovementRow {
            item_id,
            warehouse_id,
            sku,
            day,
            received,
            removed,
            allocated,
            released,
            fulfilled,
            net,
        }
    }

    fn dump(&self) -> ProjectionDump {
        let mut movements = vec![
            self.movement(self.a, DAY1),
            self.movement(self.a, DAY2),
            self.movement(self.b, DAY1),
            self.movement(self.c, DAY1),
            self.movement(self.d, DAY1),
        ];
        movements.sort_by(|p, q| (p.item_id, &p.day).cmp(&(q.item_id, &q.day)));
        fn views<T>(story: &Story, ids: &[Uuid], view: fn(&Story, Uuid) -> T) -> Vec<T> {
            sorted(ids).into_iter().map(|id| view(story, id)).collect()
        }
        ProjectionDump {
            warehouses: views(self, &[self.w1, self.w2], Story::warehouse),
            items: views(self, &[self.a, self.b, self.c, self.d], Story::item),
            allocations: views(self, &[self.x, self.y, self.z], Story::allocation),
            history: self.history(),
            movements,
            // Transfers have a contract of their own over the server (tests/transfers.rs).
            transfers: vec![],
        }
    }
}

fn sorted(ids: &[Uuid]) -> Vec<Uuid> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

fn ids<T>(rows: &[T], id: fn(&T) -> Uuid) -> Vec<Uuid> {
    rows.iter().map(id).collect()
}

async fn apply_all(store: &dyn Projections, events: &[EventEnvelope], batch: usize) {
    for chunk in events.chunks(batch) {
        let outcome = store.apply(chunk.to_vec()).await.expect("apply");
        assert_eq!(outcome.gap, None, "no gap in an ordered delivery");
        assert_eq!(outcome.applied, chunk.len());
    }
}

async fn dump(store: &dyn Projections) -> ProjectionDump {
    store.dump().await.expect("dump")
}

fn assert_dump_eq(actual: &ProjectionDump, expected: &ProjectionDump) {
    let differences = actual.differences(expected);
    assert!(
        differences.is_empty(),
        "dumps differ:\n{}",
        differences.join("\n")
    );
    assert_eq!(actual, expected);
}

// ---------------------------------------------------------------------------------------------
// The contract

async fn lifecycle_views_and_queries(store: &Arc<dyn Projections>) {
    let store: &dyn Projections = &**store;
    let s = story();
    // The first batch reports the items it changed (not the warehouses: nobody subscribes).
    let first = store.apply(s.events[..5].to_vec()).await.expect("apply");
    assert_eq!((first.applied, first.gap), (5, None));
    // ...as it left them: what a reader now sees, sent to subscribers without a read back.
    assert_eq!(ids(&first.changed_items, |i| i.id), sorted(&[s.a, s.b]));
    for row in &first.changed_items {
        assert_eq!(store.item(row.id).await.expect("item").as_ref(), Some(row));
    }
    assert!(first.changed_allocations.is_empty());
    let rest = store.apply(s.events[5..].to_vec()).await.expect("apply");
    assert_eq!((rest.applied, rest.gap), (s.events.len() - 5, None));
    let items: Vec<ItemView> = sorted(&[s.a, s.b, s.c, s.d])
        .into_iter()
        .map(|id| s.item(id))
        .collect();
    assert_eq!(rest.changed_items, items);
    let allocations: Vec<AllocationView> = sorted(&[s.x, s.y, s.z])
        .into_iter()
        .map(|id| s.allocation(id))
        .collect();
    assert_eq!(rest.changed_allocations, allocations);
    assert_dump_eq(&dump(store).await, &s.dump());
    warehouse_queries(store, &s).await;
    item_queries(store, &s).await;
    allocation_queries(store, &s).await;
    history_queries(store, &s).await;
    batch_reads(store, &s).await;
    counts(store, &s).await;
    backward_pages(store, &s).await;
    movement_queries(store, &s).await;
    store.ping().await.expect("ping");
}

/// The DataLoaders' batch reads: every known id once, in any order; unknown ids left out.
async fn batch_reads(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    let mut found = store
        .warehouses_by_ids(&[s.w2, nobody, s.w1])
        .await
        .unwrap();
    found.sort_by_key(|w| w.id);
    let mut expected = vec![s.warehouse(s.w1), s.warehouse(s.w2)];
    expected.sort_by_key(|w| w.id);
    assert_eq!(found, expected, "warehouses_by_ids");
    assert!(store.warehouses_by_ids(&[]).await.unwrap().is_empty());
    assert!(store.warehouses_by_ids(&[s.a]).await.unwrap().is_empty());

    let mut found = store
        .items_by_ids(&[s.d, s.a, nobody, s.c, s.b])
        .await
        .unwrap();
    found.sort_by_key(|i| i.id);
    let expected: Vec<ItemView> = sorted(&[s.a, s.b, s.c, s.d])
        .into_iter()
        .map(|id| s.item(id))
        .collect();
    assert_eq!(found, expected, "items_by_ids");
    assert!(store.items_by_ids(&[s.w1, s.x]).await.unwrap().is_empty());

    let mut found = store
        .allocations_by_ids(&[s.z, nobody, s.x, s.y])
        .await
        .unwrap();
    found.sort_by_key(|a| a.id);
    let expected: Vec<AllocationView> = sorted(&[s.x, s.y, s.z])
        .into_iter()
        .map(|id| s.allocation(id))
        .collect();
    assert_eq!(found, expected, "allocations_by_ids");
    assert!(store.allocations_by_ids(&[s.a]).await.unwrap().is_empty());

    // More than one BatchGetItem's 100 keys: the known ones still come back, once each.
    let mut many: Vec<Uuid> = (0..150).map(|_| Uuid::now_v7()).collect();
    many.insert(120, s.b);
    many.insert(3, s.a);
    let mut found = ids(&store.items_by_ids(&many).await.unwrap(), |i| i.id);
    found.sort();
    assert_eq!(found, sorted(&[s.a, s.b]), "items_by_ids over 100 ids");
}

/// `totalCount`: each list's rows under the same filters as the list itself.
async fn counts(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    assert_eq!(store.count_warehouses(false).await.unwrap(), 1);
    assert_eq!(store.count_warehouses(true).await.unwrap(), 2);
    let items: [(Option<Uuid>, bool, u64); 6] = [
        (None, false, 4),
        (None, true, 3),
        (Some(s.w1), false, 3),
        (Some(s.w1), true, 2),
        (Some(s.w2), true, 1),
        (Some(nobody), false, 0),
    ];
    for (warehouse, low, expected) in items {
        assert_eq!(
            store.count_items(warehouse, low).await.unwrap(),
            expected,
            "count_items({warehouse:?}, low {low})"
        );
    }
    let filter = |order: Option<&str>, item, status| AllocationFilter {
        order_id: order.map(str::to_owned),
        item_id: item,
        status,
        warehouse_id: None,
    };
    let within = |warehouse, order: Option<&str>, status| AllocationFilter {
        order_id: order.map(str::to_owned),
        status,
        warehouse_id: Some(warehouse),
        ..AllocationFilter::default()
    };
    let allocations = [
        (filter(None, None, None), 3),
        (filter(Some("ORD-1"), None, None), 2),
        (filter(Some("ORD-1"), Some(s.d), None), 1),
        (
            filter(Some("ORD-1"), None, Some(AllocationStatus::Fulfilled)),
            1,
        ),
        (filter(None, Some(s.a), None), 2),
        (
            filter(None, Some(s.a), Some(AllocationStatus::Cancelled)),
            1,
        ),
        (filter(None, None, Some(AllocationStatus::Created)), 1),
        (filter(None, None, Some(AllocationStatus::Confirmed)), 0),
        (within(s.w1, None, None), 2),
        (within(s.w2, None, None), 1),
        (within(s.w2, Some("ORD-1"), None), 1),
        (within(s.w1, None, Some(AllocationStatus::Cancelled)), 1),
        (within(s.w2, None, Some(AllocationStatus::Cancelled)), 0),
        (within(nobody, None, None), 0),
    ];
    for (wanted, expected) in allocations {
        assert_eq!(
            store.count_allocations(wanted.clone()).await.unwrap(),
            expected,
            "count_allocations({wanted:?})"
        );
    }
    assert_eq!(store.count_history(s.a, None, None).await.unwrap(), 4);
    assert_eq!(store.count_history(s.a, Some(D2), None).await.unwrap(), 2);
    assert_eq!(store.count_history(s.a, None, Some(D2)).await.unwrap(), 2);
    assert_eq!(store.count_history(nobody, None, None).await.unwrap(), 0);
}

/// Backward pages (`last`/`before`) and two-sided bounds: the rows nearest the end asked
/// for, returned in ascending order, equal to slicing the forward list.
async fn backward_pages(store: &dyn Projections, s: &Story) {
    let all = sorted(&[s.a, s.b, s.c, s.d]);
    let keys = |after: Option<Uuid>, before: Option<Uuid>, backward: bool, limit: usize| Keys {
        after,
        before,
        backward,
        limit,
    };
    let cases: Vec<(Keys<Uuid>, Vec<Uuid>)> = vec![
        (keys(None, None, true, 2), all[2..].to_vec()),
        (keys(None, None, true, 10), all.clone()),
        (keys(None, Some(all[3]), true, 2), all[1..3].to_vec()),
        (keys(None, Some(all[0]), true, 2), vec![]),
        (
            keys(Some(all[0]), Some(all[3]), true, 10),
            all[1..3].to_vec(),
        ),
        (keys(Some(all[0]), Some(all[3]), true, 1), vec![all[2]]),
        (keys(Some(all[0]), Some(all[3]), false, 1), vec![all[1]]),
        (keys(Some(all[0]), Some(all[2]), false, 10), vec![all[1]]),
        (keys(Some(all[2]), Some(all[1]), false, 10), vec![]),
        (keys(Some(all[1]), Some(all[1]), true, 10), vec![]),
        (keys(None, Some(all[2]), false, 10), all[..2].to_vec()),
    ];
    for (range, expected) in &cases {
        let page = store.items(None, false, *range).await.unwrap();
        assert_eq!(ids(&page, |i| i.id), *expected, "items({range:?})");
    }
    // Walk back from the end two at a time: the pages joined are the forward list.
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .items(None, false, Keys::before(before, 2))
            .await
            .unwrap();
        walked.splice(0..0, ids(&page, |i| i.id));
        match page.first() {
            Some(first) if page.len() == 2 => before = Some(first.id),
            _ => break,
        }
    }
    assert_eq!(walked, all, "items walked backwards");

    let warehouses = sorted(&[s.w1, s.w2]);
    let page = store.warehouses(true, Keys::before(None, 1)).await.unwrap();
    assert_eq!(ids(&page, |w| w.id), warehouses[1..]);
    let page = store
        .warehouses(true, Keys::before(Some(warehouses[1]), 5))
        .await
        .unwrap();
    assert_eq!(ids(&page, |w| w.id), warehouses[..1]);

    // Allocations, merged over the status shards on DynamoDB when unfiltered.
    let allocations = sorted(&[s.x, s.y, s.z]);
    let page = store
        .allocations(AllocationFilter::default(), Keys::before(None, 2))
        .await
        .unwrap();
    assert_eq!(ids(&page, |a| a.id), allocations[1..]);
    let page = store
        .allocations(
            AllocationFilter::default(),
            Keys::before(Some(allocations[2]), 1),
        )
        .await
        .unwrap();
    assert_eq!(ids(&page, |a| a.id), allocations[1..2]);
    let by_item = AllocationFilter {
        item_id: Some(s.a),
        ..AllocationFilter::default()
    };
    let page = store
        .allocations(by_item, Keys::before(None, 1))
        .await
        .unwrap();
    assert_eq!(
        ids(&page, |a| a.id),
        vec![*sorted(&[s.x, s.y]).last().unwrap()]
    );

    let sequences = |entries: Vec<HistoryEntry>| -> Vec<u64> {
        entries.iter().map(|h| h.sequence_number).collect()
    };
    let history = [
        (Keys::before(None, 2), vec![4, 7]),
        (Keys::before(Some(7), 2), vec![2, 4]),
        (Keys::before(Some(2), 5), vec![1]),
        (Keys::before(Some(1), 5), vec![]),
        (
            Keys {
                after: Some(1),
                before: Some(7),
                backward: true,
                limit: 5,
            },
            vec![2, 4],
        ),
        (
            Keys {
                after: Some(1),
                before: Some(7),
                backward: false,
                limit: 1,
            },
            vec![2],
        ),
    ];
    for (range, expected) in history {
        let entries = store.history(s.a, None, None, range).await.unwrap();
        assert_eq!(sequences(entries), expected, "history({range:?})");
    }
}

/// Warehouses: by id, active only unless asked, paged by id.
async fn warehouse_queries(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    assert_eq!(
        store.warehouse(s.w1).await.unwrap(),
        Some(s.warehouse(s.w1))
    );
    assert_eq!(store.warehouse(nobody).await.unwrap(), None);
    assert_eq!(
        store
            .warehouses(false, Keys::after(None, 10))
            .await
            .unwrap(),
        vec![s.warehouse(s.w1)]
    );
    let both = sorted(&[s.w1, s.w2]);
    let all = store.warehouses(true, Keys::after(None, 10)).await.unwrap();
    assert_eq!(ids(&all, |w| w.id), both);
    let page = store.warehouses(true, Keys::after(None, 1)).await.unwrap();
    assert_eq!(ids(&page, |w| w.id), both[..1]);
    let page = store
        .warehouses(true, Keys::after(Some(both[0]), 10))
        .await
        .unwrap();
    assert_eq!(ids(&page, |w| w.id), both[1..]);
    assert!(store
        .warehouses(true, Keys::after(Some(both[1]), 10))
        .await
        .unwrap()
        .is_empty());
}

/// Items: by id, by SKU within a warehouse, listed by warehouse and low stock, paged.
async fn item_queries(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    assert_eq!(store.item(s.a).await.unwrap(), Some(s.item(s.a)));
    assert_eq!(store.item(nobody).await.unwrap(), None);
    assert_eq!(
        store.item_by_sku(s.w1, "SKU-A").await.unwrap(),
        Some(s.item(s.a))
    );
    assert_eq!(
        store.item_by_sku(s.w2, "SKU-A").await.unwrap(),
        Some(s.item(s.d))
    );
    assert_eq!(
        store.item_by_sku(s.w1, " SKU-B ").await.unwrap(),
        Some(s.item(s.b))
    );
    assert_eq!(store.item_by_sku(s.w1, "SKU-Z").await.unwrap(), None);
    assert_eq!(store.item_by_sku(nobody, "SKU-A").await.unwrap(), None);
    let cases: [(Option<Uuid>, bool, Vec<Uuid>); 6] = [
        (None, false, sorted(&[s.a, s.b, s.c, s.d])),
        (None, true, sorted(&[s.a, s.c, s.d])),
        (Some(s.w1), false, sorted(&[s.a, s.b, s.c])),
        (Some(s.w1), true, sorted(&[s.a, s.c])),
        (Some(s.w2), true, vec![s.d]),
        (Some(nobody), false, vec![]),
    ];
    for (warehouse, low, expected) in cases {
        let listed = store
            .items(warehouse, low, Keys::after(None, 100))
            .await
            .unwrap();
        assert_eq!(
            ids(&listed, |i| i.id),
            expected,
            "items({warehouse:?}, low {low})"
        );
        for item in &listed {
            assert_eq!(item, &s.item(item.id));
        }
        // One page at a time, each after the last id of the previous one.
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .items(warehouse, low, Keys::after(after, 2))
                .await
                .unwrap();
            assert!(page.len() <= 2);
            walked.extend(ids(&page, |i| i.id));
            match page.last() {
                Some(last) if page.len() == 2 => after = Some(last.id),
                _ => break,
            }
        }
        assert_eq!(walked, expected, "paged items({warehouse:?}, low {low})");
    }
}

/// Allocations: by id, filtered by order, item and status in any combination, paged.
async fn allocation_queries(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    assert_eq!(
        store.allocation(s.y).await.unwrap(),
        Some(s.allocation(s.y))
    );
    assert_eq!(store.allocation(nobody).await.unwrap(), None);
    let filter = |order: Option<&str>, item, status| AllocationFilter {
        order_id: order.map(str::to_owned),
        item_id: item,
        status,
        warehouse_id: None,
    };
    let within = |warehouse, order: Option<&str>, status| AllocationFilter {
        order_id: order.map(str::to_owned),
        status,
        warehouse_id: Some(warehouse),
        ..AllocationFilter::default()
    };
    let cases = [
        (filter(None, None, None), sorted(&[s.x, s.y, s.z])),
        (filter(Some("ORD-1"), None, None), sorted(&[s.x, s.z])),
        (filter(Some("ORD-1"), Some(s.d), None), vec![s.z]),
        (
            filter(Some("ORD-1"), None, Some(AllocationStatus::Fulfilled)),
            vec![s.x],
        ),
        (filter(Some("ORD-9"), None, None), vec![]),
        (filter(None, Some(s.a), None), sorted(&[s.x, s.y])),
        (
            filter(None, Some(s.a), Some(AllocationStatus::Cancelled)),
            vec![s.y],
        ),
        (
            filter(None, Some(s.a), Some(AllocationStatus::Confirmed)),
            vec![],
        ),
        (
            filter(None, None, Some(AllocationStatus::Created)),
            vec![s.z],
        ),
        (
            filter(None, None, Some(AllocationStatus::Confirmed)),
            vec![],
        ),
        (within(s.w1, None, None), sorted(&[s.x, s.y])),
        (within(s.w2, None, None), vec![s.z]),
        (within(s.w1, Some("ORD-1"), None), vec![s.x]),
        (
            within(s.w1, None, Some(AllocationStatus::Fulfilled)),
            vec![s.x],
        ),
        (
            within(s.w2, None, Some(AllocationStatus::Fulfilled)),
            vec![],
        ),
        (
            AllocationFilter {
                item_id: Some(s.a),
                warehouse_id: Some(s.w2),
                ..AllocationFilter::default()
            },
            vec![],
        ),
    ];
    for (wanted, expected) in cases {
        let listed = store
            .allocations(wanted.clone(), Keys::after(None, 100))
            .await
            .unwrap();
        assert_eq!(ids(&listed, |a| a.id), expected, "allocations({wanted:?})");
        for allocation in &listed {
            assert_eq!(allocation, &s.allocation(allocation.id));
        }
        if let [first, rest @ ..] = expected.as_slice() {
            let page = store
                .allocations(wanted.clone(), Keys::after(None, 1))
                .await
                .unwrap();
            assert_eq!(ids(&page, |a| a.id), vec![*first]);
            let page = store
                .allocations(wanted.clone(), Keys::after(Some(*first), 100))
                .await
                .unwrap();
            assert_eq!(
                ids(&page, |a| a.id),
                rest,
                "allocations({wanted:?}) after the first"
            );
        }
    }
}

/// History: creation and on-hand changes only, by sequence, filtered by time, paged.
async fn history_queries(store: &dyn Projections, s: &Story) {
    let nobody = Uuid::now_v7();
    let sequences = |entries: Vec<HistoryEntry>| -> Vec<u64> {
        entries.iter().map(|h| h.sequence_number).collect()
    };
    let history = store
        .history(s.a, None, None, Keys::after(None, 100))
        .await
        .unwrap();
    let expected: Vec<HistoryEntry> = s
        .history()
        .into_iter()
        .filter(|h| h.item_id == s.a)
        .collect();
    assert_eq!(history, expected);
    let cases = [
        ((Some(D2), None, None, 100), vec![4, 7]),
        ((None, Some(D2), None, 100), vec![1, 2]),
        ((Some(T0 + 1000), Some(T0 + 1001), None, 100), vec![2]),
        ((Some(T0 + 1001), Some(D2), None, 100), vec![]),
        ((None, None, Some(2), 1), vec![4]),
        ((None, None, Some(4), 100), vec![7]),
        ((Some(D2), None, None, 1), vec![4]),
        ((None, None, None, 3), vec![1, 2, 4]),
        ((None, None, Some(7), 100), vec![]),
    ];
    for ((from, to, after, limit), expected) in cases {
        let entries = store
            .history(s.a, from, to, Keys::after(after, limit))
            .await
            .unwrap();
        assert_eq!(
            sequences(entries),
            expected,
            "history({from:?}, {to:?}, after {after:?}, {limit})"
        );
    }
    assert_eq!(
        sequences(
            store
                .history(s.b, None, None, Keys::after(None, 100))
                .await
                .unwrap()
        ),
        vec![1]
    );
    assert!(store
        .history(nobody, None, None, Keys::after(None, 100))
        .await
        .unwrap()
        .is_empty());
}

/// Movements: per item and day, for an item or a warehouse, over a range of days, ordered
/// by (day, sku, item); each item's net sums to its stock on hand.
async fn movement_queries(store: &dyn Projections, s: &Story) {
    let day1_w1 = {
        let mut rows = vec![
            s.movement(s.a, DAY1),
            s.movement(s.b, DAY1),
            s.movement(s.c, DAY1),
        ];
        rows.sort_by(|p, q| (&p.sku, p.item_id).cmp(&(&q.sku, q.item_id)));
        rows
    };
    let mut all_w1 = day1_w1.clone();
    all_w1.push(s.movement(s.a, DAY2));
    let day = |d: &str| Some(d.to_owned());
    let cases = [
        (
            (None, Some(s.a), None, None),
            vec![s.movement(s.a, DAY1), s.movement(s.a, DAY2)],
        ),
        (
            (None, Some(s.a), day(DAY2), None),
            vec![s.movement(s.a, DAY2)],
        ),
        (
            (None, Some(s.a), None, day(DAY1)),
            vec![s.movement(s.a, DAY1)],
        ),
        (
            (Some(s.w1), Some(s.a), day(DAY1), day(DAY2)),
            vec![s.movement(s.a, DAY1), s.movement(s.a, DAY2)],
        ),
        ((Some(s.w2), Some(s.a), None, None), vec![]),
        ((Some(s.w1), None, None, None), all_w1.clone()),
        ((Some(s.w1), None, day(DAY1), day(DAY1)), day1_w1),
        (
            (Some(s.w1), None, day(DAY2), None),
            vec![s.movement(s.a, DAY2)],
        ),
        ((Some(s.w1), None, day("2024-03-05"), day(DAY1)), vec![]),
        ((Some(s.w2), None, None, None), vec![s.movement(s.d, DAY1)]),
    ];
    for ((warehouse, item, from, to), expected) in cases {
        let rows = store
            .movements(warehouse, item, from.clone(), to.clone())
            .await
            .unwrap();
        assert_eq!(
            rows, expected,
            "movements({warehouse:?}, {item:?}, {from:?}, {to:?})"
        );
    }
    for id in [s.a, s.b, s.c, s.d] {
        let rows = store.movements(None, Some(id), None, None).await.unwrap();
        let net: i64 = rows.iter().map(|r| r.net).sum();
        assert_eq!(
            net,
            s.item(id).on_hand,
            "net movements of {id} equal its stock on hand"
        );
    }
}

async fn redelivery_changes_nothing(store: &Arc<dyn Projections>) {
    let store: &dyn Projections = &**store;
    let s = story();
    apply_all(store, &s.events, 4).await;
    let before = dump(store).await;
    assert_dump_eq(&before, &s.dump());

    // The same batch again, then a tail, then everything backwards: every event is a duplicate.
    let n = s.events.len();
    let mut backwards = s.events.clone();
    backwards.reverse();
    for batch in [s.events.clone(), s.events[n - 10..].to_vec(), backwards] {
        let len = batch.len();
        let outcome = store.apply(batch).await.expect("apply");
        assert_eq!((outcome.applied, outcome.gap), (len, None));
        assert!(
            outcome.changed_items.is_empty(),
            "a duplicate changes no item"
        );
        assert!(
            outcome.changed_allocations.is_empty(),
            "a duplicate changes no allocation"
        );
        assert_dump_eq(&dump(store).await, &before);
    }
}

async fn gaps_stop_the_batch(store: &Arc<dyn Projections>) {
    let store: &dyn Projections = &**store;
    let s = story();
    let of = |id: Uuid| -> Vec<EventEnvelope> {
        s.events
            .iter()
            .filter(|e| e.aggregate_id == id)
            .cloned()
            .collect()
    };
    let (w1, w2, a) = (of(s.w1), of(s.w2), of(s.a));

    // A batch that starts with a gap applies nothing, not even the events after it.
    let outcome = store
        .apply(vec![a[1].clone(), a[2].clone(), w1[0].clone()])
        .await
        .expect("apply");
    assert_eq!(outcome.applied, 0);
    assert_eq!(
        outcome.gap,
        Some(Gap {
            aggregate_id: s.a,
            after: 0
        })
    );
    assert!(outcome.changed_items.is_empty());
    assert_dump_eq(&dump(store).await, &ProjectionDump::default());

    // Applied up to the gap, and the gap names the last sequence applied.
    let outcome = store
        .apply(vec![
            w1[0].clone(),
            a[0].clone(),
            a[1].clone(),
            a[3].clone(),
            w2[0].clone(),
        ])
        .await
        .expect("apply");
    assert_eq!(outcome.applied, 3);
    assert_eq!(
        outcome.gap,
        Some(Gap {
            aggregate_id: s.a,
            after: 2
        })
    );
    assert_eq!(ids(&outcome.changed_items, |i| i.id), vec![s.a]);
    let partial = dump(store).await;
    assert_eq!(
        ids(&partial.warehouses, |w| w.id),
        vec![s.w1],
        "nothing past the gap"
    );
    assert_eq!(partial.items.len(), 1);
    assert_eq!(
        (partial.items[0].version, partial.items[0].on_hand),
        (2, 120)
    );
    assert_eq!(
        partial
            .history
            .iter()
            .map(|h| h.sequence_number)
            .collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(partial.movements.len(), 1);
    assert_eq!(
        (
            partial.movements[0].received,
            partial.movements[0].allocated
        ),
        (120, 0)
    );

    // A batch starting mid-stream reports the gap from where its stream stands.
    let outcome = store.apply(vec![a[4].clone()]).await.expect("apply");
    assert_eq!(
        (outcome.applied, outcome.gap),
        (
            0,
            Some(Gap {
                aggregate_id: s.a,
                after: 2
            })
        )
    );
    assert_dump_eq(&dump(store).await, &partial);

    // Filling the gap (with a redelivered event in front) applies the rest.
    let fill: Vec<EventEnvelope> = a[1..].iter().chain(&w2).cloned().collect();
    let outcome = store.apply(fill.clone()).await.expect("apply");
    assert_eq!((outcome.applied, outcome.gap), (fill.len(), None));
    let item = store.item(s.a).await.unwrap().expect("item A");
    assert_eq!(item, s.item(s.a));
    assert_eq!(
        store.warehouse(s.w2).await.unwrap(),
        Some(s.warehouse(s.w2))
    );
}

async fn poison_is_reported(store: &Arc<dyn Projections>) {
    let store: &dyn Projections = &**store;
    let s = story();
    let mut bad = s.events[3].clone(); // item A's creation
    bad.event_data = serde_json::json!({ "warehouseId": "not a uuid" });
    match store.apply(vec![bad.clone()]).await {
        Err(ProjectionError::Poison { event_id, .. }) => assert_eq!(event_id, bad.event_id),
        other => panic!("expected a poison error, got {other:?}"),
    }
    assert_dump_eq(&dump(store).await, &ProjectionDump::default());
}

async fn concurrent_appliers_converge(store: &Arc<dyn Projections>) {
    let s = story();
    // Four appliers deliver everything at once in different batch sizes: each write is
    // conditioned on the version before it, so none counts twice or rolls a row back.
    let tasks: Vec<_> = [1, 3, 7, s.events.len()]
        .into_iter()
        .map(|batch| {
            let store = store.clone();
            let events = s.events.clone();
            tokio::spawn(async move { apply_all(&*store, &events, batch).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("applier");
    }
    assert_dump_eq(&dump(&**store).await, &s.dump());
}

/// Both adapters, fed the same events, hold the same rows.
#[tokio::test]
async fn both_adapters_dump_equal() {
    let s = story();
    let sqlite = Adapter::sqlite().await;
    let dynamo = Adapter::dynamodb().await;
    apply_all(&*sqlite.store, &s.events, 5).await;
    apply_all(&*dynamo.store, &s.events, 26).await;
    let (left, right) = (dump(&*sqlite.store).await, dump(&*dynamo.store).await);
    let differences = left.differences(&right);
    assert!(
        differences.is_empty(),
        "SQLite and DynamoDB differ:\n{}",
        differences.join("\n")
    );
    assert_eq!(left, right);
    dynamo.finish().await;
}

/// The DynamoDB adapter remembers the rows it wrote between batches, to spare a read per
/// event. A remembered row must never decide on its own that an event is a duplicate: here
/// the item's row vanishes behind the adapter's back, and a redelivered event that the
/// remembered row already holds is reported as a gap after 0, not skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn on_dynamodb_remembered_rows_never_decide_a_skip() {
    let adapter = Adapter::dynamodb().await;
    let store: &dyn Projections = &*adapter.store;
    let s = story();
    let a: Vec<EventEnvelope> = s
        .events
        .iter()
        .filter(|e| e.aggregate_id == s.a)
        .cloned()
        .collect();
    let w1: Vec<EventEnvelope> = s
        .events
        .iter()
        .filter(|e| e.aggregate_id == s.w1)
        .cloned()
        .collect();
    let first = store
        .apply(vec![w1[0].clone(), a[0].clone(), a[1].clone()])
        .await
        .expect("apply");
    assert_eq!(first.applied, 3);
    let (client, tables) = adapter.dynamo.as_ref().expect("dynamodb adapter");
    client
        .delete_item()
        .table_name(tables.items())
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(s.a.to_string()),
        )
        .send()
        .await
        .expect("delete the item row");
    let next = store.apply(vec![a[1].clone()]).await.expect("apply");
    assert_eq!(
        next.gap,
        Some(Gap {
            aggregate_id: s.a,
            after: 0
        }),
        "the vanished row is a gap, whatever the adapter remembered"
    );
    assert_eq!(store.item(s.a).await.expect("item"), None);
    // A redelivery of what the remembered warehouse row already holds is a duplicate.
    let again = store.apply(vec![w1[0].clone()]).await.expect("apply");
    assert_eq!((again.applied, again.gap), (1, None));
    adapter.finish().await;
}

// ---------------------------------------------------------------------------------------------
// Deadlines: the expiry sweeper's query

/// Only created allocations whose deadline has passed are due, earliest first; confirming
/// clears a deadline, cancelling keeps it (and takes the allocation out of the due ones).
async fn due_deadlines_are_found_and_only_those(store: &Arc<dyn Projections>) {
    let [item, warehouse, early, late, confirmed, expired, open] = [(); 7].map(|_| Uuid::now_v7());
    let created = |quantity, expires_at| AllocationEvent::AllocationCreated {
        order_id: "ORD".into(),
        item_id: item,
        warehouse_id: warehouse,
        quantity,
        expires_at,
    };
    let mut s = Streams::default();
    s.allocation(late, T0, created(1, Some(T0 + 15_000)));
    s.allocation(early, T0, created(1, Some(T0 + 10_000)));
    s.allocation(confirmed, T0, created(1, Some(T0 + 5_000)));
    s.allocation(confirmed, T0 + 1, AllocationEvent::AllocationConfirmed {});
    s.allocation(expired, T0, created(1, Some(T0 + 5_000)));
    let reason = "expired".to_owned();
    s.allocation(
        expired,
        T0 + 5_000,
        AllocationEvent::AllocationCancelled { reason },
    );
    s.allocation(open, T0, created(1, None));
    store.apply(s.events).await.expect("apply");

    let due = |now, limit| {
        let store = store.clone();
        async move { store.due_allocations(now, limit).await.expect("due") }
    };
    assert_eq!(due(T0 + 9_999, 10).await, Vec::<Uuid>::new());
    assert_eq!(due(T0 + 10_000, 10).await, vec![early]);
    assert_eq!(due(T0 + 60_000, 10).await, vec![early, late]);
    assert_eq!(due(T0 + 60_000, 1).await, vec![early]);

    let deadline = |id| {
        let store = store.clone();
        async move {
            let row = store.allocation(id).await.expect("read").expect("row");
            row.expires_at
        }
    };
    assert_eq!(deadline(early).await, Some(T0 + 10_000));
    assert_eq!(deadline(confirmed).await, None, "confirming clears it");
    assert_eq!(
        deadline(expired).await,
        Some(T0 + 5_000),
        "cancelling keeps it"
    );
    assert_eq!(deadline(open).await, None);
}

// ---------------------------------------------------------------------------------------------
// The layout handshake's heartbeat rows, on both stores

/// Rows read back as written, one per process; a renewal replaces its process's row; `forget`
/// removes a row only if it is still what was read; `acknowledged` passes a lapsed row.
async fn heartbeat_rows(generations: &dyn Generations) {
    let now = chrono::Utc::now().timestamp_millis();
    let beat = |revision: u64, expires_at: i64| Heartbeat {
        process: Uuid::now_v7(),
        label: format!("host pid {revision}"),
        revision,
        expires_at,
    };
    assert_eq!(generations.heartbeats().await.expect("none yet"), vec![]);
    let live = beat(3, now + 10_000);
    let lapsed = beat(1, now - 60_000);
    generations.beat(&live).await.expect("beat");
    generations.beat(&lapsed).await.expect("beat");
    let mut expected = vec![live.clone(), lapsed.clone()];
    expected.sort_by_key(|b| b.process);
    assert_eq!(generations.heartbeats().await.expect("rows"), expected);

    let renewed = Heartbeat {
        revision: 4,
        expires_at: live.expires_at + 5_000,
        ..live.clone()
    };
    generations.beat(&renewed).await.expect("renew");
    generations
        .forget(&live)
        .await
        .expect("forget a stale read");
    let rows = generations.heartbeats().await.expect("rows");
    assert!(rows.contains(&renewed) && !rows.contains(&live), "{rows:?}");

    let fenced = lease::acknowledged(generations, 4, std::time::Duration::from_secs(5))
        .await
        .expect("acknowledged");
    assert_eq!(fenced, vec![lapsed]);
    assert_eq!(
        generations.heartbeats().await.expect("rows"),
        vec![renewed.clone()]
    );
    generations.forget(&renewed).await.expect("forget");
    assert_eq!(generations.heartbeats().await.expect("rows"), vec![]);
}

#[tokio::test]
async fn heartbeat_rows_on_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let generations = SqliteGenerations::open(dir.path()).expect("open");
    heartbeat_rows(&generations).await;
}

#[tokio::test]
async fn heartbeat_rows_on_dynamodb() {
    let adapter = Adapter::dynamodb().await;
    let (client, tables) = adapter.dynamo.clone().expect("a DynamoDB adapter");
    heartbeat_rows(&DynamoGenerations::new(client, tables)).await;
    adapter.finish().await;
}
