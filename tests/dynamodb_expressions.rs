//! Every expression the DynamoDB adapters build names its attributes through placeholders.
//! The event store, the projection store (every projector, every query) and the generation
//! record are driven against an SDK client whose HTTP layer answers `{}` to everything and
//! records each request, so every expression they send is seen here, with no endpoint at all.
//! A bare name fails the test; a bare *reserved* word (what DynamoDB refuses) is also refused
//! by the client itself before it is sent.

use aws_sdk_dynamodb::config::{Credentials, HttpClient, Region, RuntimeComponents};
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use inventory_service::domain::allocation::{AllocationEvent, AllocationStatus};
use inventory_service::domain::item::{ItemEvent, StockChangeReason};
use inventory_service::domain::warehouse::{WarehouseDetails, WarehouseEvent};
use inventory_service::domain::{AggregateType, DomainEvent};
use inventory_service::dynamodb::expressions::{
    bare_names, is_reserved, Expression, ExpressionCheck,
};
use inventory_service::dynamodb::Tables;
use inventory_service::projection::dynamodb::{DynamoGenerations, DynamoProjections};
use inventory_service::projection::layout::Layout;
use inventory_service::projection::switch::Generations;
use inventory_service::projection::{AllocationFilter, Keys, ProjectionStore, ReadModel};
use inventory_service::store::dynamodb::DynamoEventStore;
use inventory_service::store::{
    Commit, EventEnvelope, EventStore, Expectation, Guard, IdempotencyRecord, Metadata, Snapshot,
};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Answers every request with an empty JSON object: a success with nothing in it (no item, no
/// rows, no unprocessed writes), which sends every adapter down its "first write" paths.
#[derive(Debug, Clone)]
struct EmptyAnswers;

impl HttpConnector for EmptyAnswers {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::ready(Ok(HttpResponse::new(
            StatusCode::try_from(200).expect("status"),
            SdkBody::from("{}"),
        )))
    }
}

impl HttpClient for EmptyAnswers {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn recording_client(recorder: Arc<Mutex<Vec<Expression>>>) -> aws_sdk_dynamodb::Client {
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version_latest()
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("local", "local", None, None, "test"))
        .endpoint_url("http://127.0.0.1:9")
        .http_client(EmptyAnswers)
        .interceptor(ExpressionCheck::recording(recorder))
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

fn envelope<E: DomainEvent>(
    kind: AggregateType,
    id: Uuid,
    sequence: u64,
    event: E,
) -> EventEnvelope {
    let metadata = Metadata {
        actor: "test".into(),
        correlation_id: "expressions".into(),
        ..Metadata::default()
    };
    EventEnvelope::new(
        Uuid::now_v7(),
        kind,
        id,
        sequence,
        &event,
        metadata,
        1_764_000_000_000 + sequence as i64,
    )
}

/// A warehouse, an item and two allocations through every event type each projector handles.
fn lifecycle() -> Vec<EventEnvelope> {
    let (warehouse, item) = (Uuid::now_v7(), Uuid::now_v7());
    let (first, second) = (Uuid::now_v7(), Uuid::now_v7());
    let details = |name: &str| WarehouseDetails {
        name: name.into(),
        address: None,
    };
    let w = |seq, event| envelope(AggregateType::Warehouse, warehouse, seq, event);
    let i = |seq, event| envelope(AggregateType::InventoryItem, item, seq, event);
    let changed = |previous: i64, new: i64, reason, allocation_id| ItemEvent::StockLevelChanged {
        previous_quantity: previous,
        new_quantity: new,
        delta: new - previous,
        reason,
        reference: Some("ref".into()),
        allocation_id,
    };
    vec![
        w(
            1,
            WarehouseEvent::WarehouseCreated {
                code: "AMS1".into(),
                name: "Amsterdam".into(),
                address: None,
            },
        ),
        w(
            2,
            WarehouseEvent::WarehouseUpdated {
                previous: details("Amsterdam"),
                new: details("Amsterdam Noord"),
            },
        ),
        i(
            1,
            ItemEvent::InventoryItemCreated {
                warehouse_id: warehouse,
                sku: "MUG".into(),
                product_id: "mug".into(),
                initial_quantity: 10,
                reorder_threshold: 3,
                reorder_quantity: 20,
            },
        ),
        i(2, changed(10, 12, StockChangeReason::Received, None)),
        i(
            3,
            ItemEvent::StockAllocated {
                allocation_id: first,
                order_id: "o-1".into(),
                quantity: 9,
            },
        ),
        i(
            4,
            ItemEvent::LowStockThresholdReached {
                sku: "MUG".into(),
                warehouse_id: warehouse,
                current_quantity: 3,
                threshold: 3,
                suggested_reorder_quantity: 20,
            },
        ),
        i(
            5,
            changed(12, 3, StockChangeReason::AllocationFulfilled, Some(first)),
        ),
        i(
            6,
            ItemEvent::StockDeallocated {
                allocation_id: second,
                quantity: 1,
                reason: "customer".into(),
            },
        ),
        i(
            7,
            ItemEvent::ReorderSettingsChanged {
                previous_threshold: 3,
                previous_quantity: 20,
                reorder_threshold: 2,
                reorder_quantity: 10,
            },
        ),
        i(
            8,
            ItemEvent::InventoryItemDeactivated {
                reason: "end of line".into(),
            },
        ),
        envelope(
            AggregateType::Allocation,
            first,
            1,
            AllocationEvent::AllocationCreated {
                order_id: "o-1".into(),
                item_id: item,
                warehouse_id: warehouse,
                quantity: 9,
                expires_at: None,
            },
        ),
        envelope(
            AggregateType::Allocation,
            first,
            2,
            AllocationEvent::AllocationConfirmed {},
        ),
        envelope(
            AggregateType::Allocation,
            first,
            3,
            AllocationEvent::AllocationFulfilled { quantity: 9 },
        ),
        envelope(
            AggregateType::Allocation,
            second,
            1,
            AllocationEvent::AllocationCreated {
                order_id: "o-2".into(),
                item_id: item,
                warehouse_id: warehouse,
                quantity: 1,
                expires_at: None,
            },
        ),
        envelope(
            AggregateType::Allocation,
            second,
            2,
            AllocationEvent::AllocationCancelled {
                reason: "customer".into(),
            },
        ),
        w(
            3,
            WarehouseEvent::WarehouseDeactivated {
                reason: "closed".into(),
            },
        ),
    ]
}

/// Calls every adapter operation; their results (empty answers) do not matter here.
async fn drive_every_adapter(client: aws_sdk_dynamodb::Client) {
    let tables = Tables::new("expr_");
    let events = lifecycle();
    let item = events[2].aggregate_id;
    let warehouse = events[0].aggregate_id;

    let store = DynamoEventStore::new(client.clone(), tables.clone());
    let commit = Commit {
        expectations: vec![
            Expectation {
                aggregate_id: item,
                version: 0,
            },
            Expectation {
                aggregate_id: warehouse,
                version: 1,
            },
        ],
        events: vec![events[2].clone()],
        guards: vec![Guard {
            key: format!("sku#{warehouse}#MUG"),
            owner: item,
        }],
        idempotency: Some(IdempotencyRecord {
            key: "k-1".into(),
            fingerprint: "f".into(),
            response: serde_json::json!({}),
        }),
    };
    let _ = store.append(commit).await;
    let _ = store.load(item, 0, None).await;
    let _ = store.load(item, 3, Some(9)).await;
    let _ = store.read_all(None, 100).await;
    let _ = store.idempotency("k-1").await;
    // The first call reads the outbox leases and takes them (the conditional PutItem that
    // also renews them), then sweeps a shard it now holds.
    let _ = store.outbox_pending(10).await;
    let _ = store.outbox_stats().await;
    let _ = store.outbox_remove(&["row".to_owned()]).await;
    let _ = store.load_snapshot(item).await;
    let _ = store
        .save_snapshot(Snapshot {
            aggregate_id: item,
            aggregate_type: AggregateType::InventoryItem,
            version: 5,
            state_version: 1,
            state: serde_json::json!({}),
        })
        .await;
    let _ = store.ping().await;
    let _ = store.count_events().await;

    let projections = DynamoProjections::new(client.clone(), tables.clone());
    // One event at a time: a batch folds an item's events of one day into one transaction,
    // and the same-day UpdateItem of the movement record must be walked too.
    for event in &events {
        let _ = projections.apply(vec![event.clone()]).await;
    }
    let _ = projections.apply(events.clone()).await;
    let _ = projections.dump().await;
    let _ = projections.warehouse(warehouse).await;
    let other = Uuid::now_v7();
    let ranges = [
        Keys::after(None, 10),
        Keys::after(Some(warehouse), 10),
        Keys::before(None, 10),
        Keys::before(Some(other), 10),
        Keys {
            after: Some(warehouse),
            before: Some(other),
            backward: true,
            limit: 10,
        },
    ];
    for keys in ranges {
        let _ = projections.warehouses(false, keys).await;
        let _ = projections.warehouses(true, keys).await;
    }
    let _ = projections.count_warehouses(false).await;
    let _ = projections.count_warehouses(true).await;
    let _ = projections.warehouses_by_ids(&[warehouse, other]).await;
    let _ = projections.items_by_ids(&[item, other]).await;
    let _ = projections.allocations_by_ids(&[item, other]).await;
    let _ = projections.item(item).await;
    let _ = projections.item_by_sku(warehouse, "MUG").await;
    for (warehouse_id, low) in [
        (None, false),
        (None, true),
        (Some(warehouse), false),
        (Some(warehouse), true),
    ] {
        for keys in ranges {
            let _ = projections.items(warehouse_id, low, keys).await;
        }
        let _ = projections.count_items(warehouse_id, low).await;
    }
    let _ = projections.allocation(item).await;
    for filter in [
        AllocationFilter::default(),
        AllocationFilter {
            order_id: Some("o-1".into()),
            ..AllocationFilter::default()
        },
        AllocationFilter {
            item_id: Some(item),
            status: Some(AllocationStatus::Confirmed),
            ..AllocationFilter::default()
        },
        AllocationFilter {
            status: Some(AllocationStatus::Created),
            ..AllocationFilter::default()
        },
        AllocationFilter {
            warehouse_id: Some(item),
            ..AllocationFilter::default()
        },
        AllocationFilter {
            order_id: Some("o-1".into()),
            warehouse_id: Some(item),
            ..AllocationFilter::default()
        },
        AllocationFilter {
            status: Some(AllocationStatus::Cancelled),
            warehouse_id: Some(item),
            ..AllocationFilter::default()
        },
    ] {
        for keys in ranges {
            let _ = projections.allocations(filter.clone(), keys).await;
        }
        let _ = projections.count_allocations(filter).await;
    }
    let _ = projections
        .history(item, None, None, Keys::after(None, 10))
        .await;
    let _ = projections
        .history(item, Some(1), Some(2), Keys::after(Some(3), 10))
        .await;
    let _ = projections
        .history(item, None, None, Keys::before(Some(5), 10))
        .await;
    let _ = projections
        .history(
            item,
            Some(1),
            None,
            Keys {
                after: Some(1),
                before: Some(5),
                backward: false,
                limit: 10,
            },
        )
        .await;
    let _ = projections.count_history(item, None, None).await;
    let _ = projections.count_history(item, Some(1), Some(2)).await;
    let _ = projections
        .movements(Some(warehouse), None, None, None)
        .await;
    let _ = projections
        .movements(
            None,
            Some(item),
            Some("2026-01-01".into()),
            Some("2026-12-31".into()),
        )
        .await;
    let _ = projections.ping().await;

    let generations = DynamoGenerations::new(client, tables);
    let _ = generations.load_layout().await;
    let _ = generations.save_layout(&Layout::default()).await;
    let _ = generations
        .save_layout(&Layout {
            revision: 4,
            ..Layout::default()
        })
        .await;
}

#[tokio::test]
async fn every_expression_names_its_attributes_through_placeholders() {
    let recorder = Arc::new(Mutex::new(Vec::new()));
    drive_every_adapter(recording_client(recorder.clone())).await;
    let seen = recorder.lock().expect("recorder").clone();

    let kinds: BTreeSet<(String, String)> = seen
        .iter()
        .map(|e| (e.operation.clone(), e.field.clone()))
        .collect();
    eprintln!("{} expressions seen, of {} kinds:", seen.len(), kinds.len());
    for (operation, field) in &kinds {
        eprintln!("  {operation} {field}");
    }
    // What the adapters are known to send: if one of these is missing, the walk above no
    // longer reaches it and this test would prove less than it says.
    for (operation, field) in [
        ("TransactWriteItems", "ConditionExpression"),
        ("Query", "KeyConditionExpression"),
        ("Query", "FilterExpression"),
        ("PutItem", "ConditionExpression"),
        ("UpdateItem", "UpdateExpression"),
        ("UpdateItem", "ConditionExpression"),
    ] {
        assert!(
            kinds.contains(&(operation.to_owned(), field.to_owned())),
            "no {operation} {field} was seen; the walk misses an adapter path"
        );
    }

    // The outbox lease (take or renew) is walked too.
    assert!(
        seen.iter().any(|e| e.operation == "PutItem"
            && e.field == "ConditionExpression"
            && e.text.contains("#expires")),
        "no outbox lease PutItem was seen; the walk misses the lease keeper"
    );

    let bare: Vec<String> = seen
        .iter()
        .flat_map(|e| {
            bare_names(&e.text).into_iter().map(move |name| {
                let reserved = if is_reserved(&name) {
                    " (RESERVED)"
                } else {
                    ""
                };
                format!(
                    "{} {}: `{name}`{reserved} in `{}`",
                    e.operation, e.field, e.text
                )
            })
        })
        .collect();
    assert!(
        bare.is_empty(),
        "attribute names used bare in expressions:\n{}",
        bare.join("\n")
    );
}

#[tokio::test]
async fn a_bare_reserved_word_is_refused_before_it_is_sent() {
    let recorder = Arc::new(Mutex::new(Vec::new()));
    let client = recording_client(recorder.clone());
    let refused = client
        .query()
        .table_name("expr_inventory_outbox")
        .key_condition_expression("shard = :shard")
        .expression_attribute_values(
            ":shard",
            aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
        )
        .send()
        .await;
    let error = format!(
        "{}",
        aws_sdk_dynamodb::error::DisplayErrorContext(refused.expect_err("must be refused"))
    );
    assert!(error.contains("`shard`"), "{error}");
    // The aliased form of the same query goes out.
    client
        .query()
        .table_name("expr_inventory_outbox")
        .key_condition_expression("#shard = :shard")
        .expression_attribute_names("#shard", "shard")
        .expression_attribute_values(
            ":shard",
            aws_sdk_dynamodb::types::AttributeValue::N("0".into()),
        )
        .send()
        .await
        .expect("the aliased query is sent");
}
