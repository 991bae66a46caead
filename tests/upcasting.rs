//! Event versioning: a fixture of events stored in the v1 shape of `StockLevelChanged` is read
//! through the upcaster by the aggregate loader, the projectors and point-in-time loads, while
//! the stored events themselves stay exactly as written.

use inventory_service::application::{load, load_as_of};
use inventory_service::domain::item::InventoryItem;
use inventory_service::projection::runner::ProjectionRunner;
use inventory_service::projection::sqlite::SqliteProjections;
use inventory_service::projection::{ProjectionStore, ReadModel};
use inventory_service::store::sqlite::SqliteEventStore;
use inventory_service::store::{Commit, EventEnvelope, EventStore, Expectation};
use std::sync::Arc;

fn fixture() -> Vec<EventEnvelope> {
    include_str!("fixtures/v1_stock_events.jsonl")
        .lines()
        .map(|line| serde_json::from_str(line).expect("fixture line"))
        .collect()
}

#[tokio::test]
async fn stored_v1_events_are_read_through_the_upcaster() {
    let temp = tempfile::tempdir().expect("temp dir");
    let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(temp.path()).expect("open"));
    let events = fixture();
    let item = events[0].aggregate_id;
    assert!(events[1..]
        .iter()
        .all(|e| e.schema_version == 1 && e.event_data.get("quantity").is_some()));
    store
        .append(Commit {
            expectations: vec![Expectation {
                aggregate_id: item,
                version: 0,
            }],
            events: events.clone(),
            guards: vec![],
            idempotency: None,
        })
        .await
        .expect("import v1 events");

    // The aggregate folds the upcast events.
    let state = load::<InventoryItem>(&*store, item, None)
        .await
        .expect("load");
    assert_eq!((state.state.on_hand, state.version), (10, 4));

    // Point in time: as of version 2, and as of a moment between the 2nd and 3rd events.
    let at_two = load_as_of::<InventoryItem>(&*store, item, None, Some(2))
        .await
        .expect("as of");
    assert_eq!(at_two.map(|s| s.state.on_hand), Some(15));
    let at_time = load_as_of::<InventoryItem>(&*store, item, Some(1_714_000_100_000), None)
        .await
        .expect("as of");
    assert_eq!(at_time.map(|s| (s.state.on_hand, s.version)), Some((15, 2)));
    let before = load_as_of::<InventoryItem>(&*store, item, Some(1_713_999_999_999), None)
        .await
        .expect("as of");
    assert!(before.is_none(), "the item did not exist yet");

    // The projectors read them through the upcaster too.
    let projections =
        Arc::new(SqliteProjections::open(&temp.path().join("projections.db")).expect("open"));
    let runner = ProjectionRunner::new(store.clone(), projections.clone());
    runner
        .handle(store.load(item, 0, None).await.expect("load"))
        .await
        .expect("project");
    let view = projections
        .item(item)
        .await
        .expect("read")
        .expect("projected");
    assert_eq!((view.on_hand, view.version), (10, 4));
    let history = projections
        .history(
            item,
            None,
            None,
            inventory_service::projection::Keys::after(None, 10),
        )
        .await
        .expect("history");
    let reasons: Vec<_> = history
        .iter()
        .map(|h| (h.reason.as_str(), h.delta, h.quantity_after))
        .collect();
    assert_eq!(
        reasons,
        [
            ("initial", 10, 10),
            ("received", 5, 15),
            ("sold", -4, 11),
            ("damaged", -1, 10)
        ]
    );
    assert_eq!(projections.dump().await.expect("dump").items.len(), 1);

    // The store still holds the v1 shape: events are never rewritten.
    let stored = store.load(item, 0, None).await.expect("load");
    assert_eq!(stored, events);
}
