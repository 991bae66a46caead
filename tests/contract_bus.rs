//! The event bus contract, run over every adapter: the in-process `LocalBus` and `RabbitBus`
//! against the real RabbitMQ at `INVENTORY_TEST_AMQP_URL` (default: the local broker as guest).
//! Each RabbitMQ test uses its own name prefix and deletes what it declared, so tests run
//! concurrently with each other and with anything else on the broker. The broker itself is
//! never stopped here; losing *our* connection is provoked with `rabbitmqctl close_connection`.

use async_trait::async_trait;
use inventory_service::bus::local::LocalBus;
use inventory_service::bus::rabbitmq::{Names, RabbitBus, RabbitConfig};
use inventory_service::bus::{EventBus, EventHandler, HandlerError, LiveMessage};
use inventory_service::domain::allocation::AllocationStatus;
use inventory_service::domain::item::{ItemEvent, StockChangeReason};
use inventory_service::domain::AggregateType;
use inventory_service::projection::runner::ReadModelChanges;
use inventory_service::projection::{AllocationView, ItemView};
use inventory_service::store::{EventEnvelope, Metadata};
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::broadcast;
use uuid::Uuid;

const QUEUE: &str = "projections";
const WAIT: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------------
// Fixtures

fn amqp_url() -> String {
    std::env::var("INVENTORY_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

fn unique_prefix() -> String {
    format!("test-{}.", Uuid::new_v4().simple())
}

fn event(aggregate: Uuid, sequence: u64) -> EventEnvelope {
    EventEnvelope::new(
        Uuid::now_v7(),
        AggregateType::InventoryItem,
        aggregate,
        sequence,
        &ItemEvent::StockLevelChanged {
            previous_quantity: sequence as i64 - 1,
            new_quantity: sequence as i64,
            delta: 1,
            reason: StockChangeReason::Received,
            reference: Some(format!("ref-{sequence}")),
            allocation_id: None,
        },
        Metadata {
            actor: "contract".into(),
            correlation_id: format!("corr-{aggregate}-{sequence}"),
            source: "contract_bus".into(),
            ..Metadata::default()
        },
        1_700_000_000_000 + sequence as i64,
    )
}

/// `count` events: `streams` aggregates, numbered 1.. within each.
fn events(streams: usize, count: usize) -> Vec<EventEnvelope> {
    let aggregates: Vec<Uuid> = (0..streams).map(|_| Uuid::now_v7()).collect();
    (0..count)
        .map(|i| event(aggregates[i % streams], (i / streams) as u64 + 1))
        .collect()
}

fn item_view() -> ItemView {
    ItemView {
        id: Uuid::now_v7(),
        warehouse_id: Uuid::now_v7(),
        sku: "SKU-1".into(),
        product_id: "P-1".into(),
        on_hand: 12,
        allocated: 2,
        reorder_threshold: 5,
        reorder_quantity: 20,
        active: true,
        incoming: 0,
        version: 3,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_500,
    }
}

fn allocation_view() -> AllocationView {
    AllocationView {
        id: Uuid::now_v7(),
        order_id: "order-1".into(),
        item_id: Uuid::now_v7(),
        warehouse_id: Uuid::now_v7(),
        quantity: 2,
        status: AllocationStatus::Confirmed,
        cancel_reason: None,
        expires_at: None,
        version: 2,
        created_at: 1_700_000_000_000,
        updated_at: 1_700_000_000_100,
    }
}

type Decide = Box<dyn Fn(&EventEnvelope, u32) -> Result<(), HandlerError> + Send + Sync>;

/// A handler that records what it applied; `decide(event, attempt)` says how each try ends.
/// `attempts` may be shared between instances, so "the first try fails" means the first
/// anywhere.
struct Recorder {
    decide: Decide,
    attempts: Arc<Mutex<HashMap<Uuid, u32>>>,
    handled: Mutex<Vec<EventEnvelope>>,
}

impl Recorder {
    fn accepting() -> Arc<Self> {
        Self::sharing(Arc::default(), Box::new(|_, _| Ok(())))
    }

    fn sharing(attempts: Arc<Mutex<HashMap<Uuid, u32>>>, decide: Decide) -> Arc<Self> {
        Arc::new(Self {
            decide,
            attempts,
            handled: Mutex::new(Vec::new()),
        })
    }

    fn handled(&self) -> Vec<EventEnvelope> {
        self.handled.lock().unwrap().clone()
    }

    fn handled_ids(&self) -> Vec<Uuid> {
        self.handled().iter().map(|e| e.event_id).collect()
    }

    fn attempts(&self, id: Uuid) -> u32 {
        self.attempts.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl EventHandler for Recorder {
    async fn handle(&self, events: &[EventEnvelope]) -> Result<(), HandlerError> {
        for event in events {
            let attempt = {
                let mut attempts = self.attempts.lock().unwrap();
                let n = attempts.entry(event.event_id).or_default();
                *n += 1;
                *n
            };
            (self.decide)(event, attempt)?;
            self.handled.lock().unwrap().push(event.clone());
        }
        Ok(())
    }
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < WAIT, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn next_live(live: &mut broadcast::Receiver<Arc<LiveMessage>>) -> Arc<LiveMessage> {
    tokio::time::timeout(WAIT, live.recv())
        .await
        .expect("a live message in time")
        .expect("live feed open")
}

/// Quick retries so the poison tests finish in well under a second.
fn test_config() -> RabbitConfig {
    RabbitConfig {
        retry_delay: Duration::from_millis(20),
        retry_delay_max: Duration::from_millis(100),
        ..RabbitConfig::default()
    }
}

async fn rabbit(prefix: &str) -> Arc<RabbitBus> {
    // The adapter's warnings and errors, shown for failing tests.
    let _ = tracing_subscriber::fmt()
        .with_env_filter("inventory_service=info")
        .with_test_writer()
        .try_init();
    let bus = RabbitBus::connect_with(&amqp_url(), prefix, test_config()).expect("connect");
    bus.wait_ready(WAIT).await.expect("RabbitMQ ready");
    bus
}

/// A separate plain connection that inspects and cleans up the broker behind the bus's back.
struct Admin {
    connection: Connection,
    names: Names,
}

impl Admin {
    async fn connect(prefix: &str) -> Admin {
        let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
            .await
            .expect("admin connection");
        Admin {
            connection,
            names: Names::new(prefix),
        }
    }

    /// Ready messages in a queue (a passive declare, on a fresh channel since a failed one
    /// closes its channel).
    async fn count(&self, queue: &str) -> u32 {
        let channel = self.connection.create_channel().await.expect("channel");
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        let declared = channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
            .unwrap_or_else(|e| panic!("queue {queue} exists: {e}"));
        let _ = channel.close(200, "ok".into()).await;
        declared.message_count()
    }

    /// An exclusive queue bound to every event, to look at messages as the broker has them.
    async fn probe(&self) -> (lapin::Channel, String) {
        let channel = self.connection.create_channel().await.expect("channel");
        let exclusive = QueueDeclareOptions {
            exclusive: true,
            auto_delete: true,
            ..QueueDeclareOptions::default()
        };
        let queue = channel
            .queue_declare("".into(), exclusive, FieldTable::default())
            .await
            .expect("probe queue");
        channel
            .queue_bind(
                queue.name().clone(),
                self.names.events.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind probe");
        (channel, queue.name().to_string())
    }

    async fn get(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        let channel = self.connection.create_channel().await.expect("channel");
        let options = BasicGetOptions { no_ack: true };
        channel.basic_get(queue.into(), options).await.expect("get")
    }

    async fn publish_raw(&self, routing_key: &str, body: &[u8]) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .basic_publish(
                self.names.events.as_str().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .expect("publish raw");
    }

    /// Deletes the test's queues and exchanges.
    async fn cleanup(&self, queues: &[&str]) {
        let channel = self.connection.create_channel().await.expect("channel");
        for queue in queues {
            for name in [self.names.queue(queue), self.names.dead_queue(queue)] {
                let _ = channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        for exchange in [
            &self.names.events,
            &self.names.changes,
            &self.names.dead_letter,
        ] {
            let _ = channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.connection.close(200, "done".into()).await;
    }
}

// ---------------------------------------------------------------------------------------------
// The contract every adapter keeps

/// Every published event reaches the durable consumer, each stream in order, none rejected.
async fn publish_reaches_the_consumer(bus: Arc<dyn EventBus>) {
    let recorder = Recorder::accepting();
    bus.consume(QUEUE, recorder.clone()).await.expect("consume");
    let published = events(3, 30);
    for batch in published.chunks(7) {
        bus.publish(batch).await.expect("publish");
    }
    eventually("every event is handled", || recorder.handled().len() >= 30).await;
    let handled = recorder.handled();
    let ids: HashSet<Uuid> = handled.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), 30, "each event handled once");
    assert!(published.iter().all(|e| ids.contains(&e.event_id)));
    for event in &published {
        let got = handled.iter().find(|h| h.event_id == event.event_id);
        assert_eq!(got, Some(event), "the envelope arrives unchanged");
    }
    let mut last: HashMap<Uuid, u64> = HashMap::new();
    for event in &handled {
        let previous = last
            .insert(event.aggregate_id, event.sequence_number)
            .unwrap_or(0);
        assert!(event.sequence_number > previous, "per-aggregate order");
    }
    assert_eq!(bus.dead_letters(), 0);
    assert!(bus.is_ready());
}

/// Published events and announced read-model changes reach the live feed.
async fn live_feed_carries_events_and_changes(bus: Arc<dyn EventBus>) {
    let mut live = bus.live();
    let published = event(Uuid::now_v7(), 1);
    bus.publish(std::slice::from_ref(&published))
        .await
        .expect("publish");
    match &*next_live(&mut live).await {
        LiveMessage::Event(got) => assert_eq!(got, &published),
        other => panic!("expected the event, got {other:?}"),
    }
    let (item, allocation) = (item_view(), allocation_view());
    let changes = ReadModelChanges {
        items: vec![item.clone()],
        allocations: vec![allocation.clone()],
    };
    bus.announce(changes).await.expect("announce");
    match &*next_live(&mut live).await {
        LiveMessage::ItemChanged(got) => assert_eq!(got, &item),
        other => panic!("expected the item, got {other:?}"),
    }
    match &*next_live(&mut live).await {
        LiveMessage::AllocationChanged(got) => assert_eq!(got, &allocation),
        other => panic!("expected the allocation, got {other:?}"),
    }
}

#[tokio::test]
async fn local_bus_publish_reaches_the_consumer() {
    publish_reaches_the_consumer(Arc::new(LocalBus::new())).await;
}

#[tokio::test]
async fn local_bus_live_feed_carries_events_and_changes() {
    live_feed_carries_events_and_changes(Arc::new(LocalBus::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_publish_reaches_the_consumer() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    publish_reaches_the_consumer(bus.clone()).await;
    bus.close().await;
    let admin = Admin::connect(&prefix).await;
    assert_eq!(
        admin.count(&admin.names.queue(QUEUE)).await,
        0,
        "all acknowledged"
    );
    admin.cleanup(&[QUEUE]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_live_feed_carries_events_and_changes() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    live_feed_carries_events_and_changes(bus.clone()).await;
    bus.close().await;
    Admin::connect(&prefix).await.cleanup(&[]).await;
}

// ---------------------------------------------------------------------------------------------
// RabbitMQ specifics

/// What lands on the exchange: routing key, persistence, id, content type, headers, body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_publishes_persistent_messages_with_routing_key_and_headers() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    let admin = Admin::connect(&prefix).await;
    let (_probe_channel, probe) = admin.probe().await;
    let published = event(Uuid::now_v7(), 7);
    bus.publish(std::slice::from_ref(&published))
        .await
        .expect("publish");

    let message = admin.get(&probe).await.expect("the probe got the event");
    assert_eq!(
        message.routing_key.as_str(),
        "InventoryItem.StockLevelChanged"
    );
    let properties = &message.properties;
    assert_eq!(*properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        properties.message_id().as_ref().map(|id| id.as_str()),
        Some(published.event_id.to_string().as_str())
    );
    assert_eq!(
        properties.content_type().as_ref().map(|t| t.as_str()),
        Some("application/json")
    );
    let headers = properties.headers().clone().expect("headers");
    let header = |name: &str| headers.inner().get(name).cloned();
    let text = |value: String| Some(AMQPValue::LongString(LongString::from(value)));
    assert_eq!(
        header("aggregate-id"),
        text(published.aggregate_id.to_string())
    );
    assert_eq!(header("sequence-number"), Some(AMQPValue::LongLongInt(7)));
    assert_eq!(
        header("schema-version"),
        Some(AMQPValue::LongLongInt(i64::from(published.schema_version)))
    );
    assert_eq!(
        header("correlation-id"),
        text(published.metadata.correlation_id.clone())
    );
    let body: EventEnvelope = serde_json::from_slice(&message.data).expect("JSON envelope");
    assert_eq!(body, published);

    bus.close().await;
    admin.cleanup(&[]).await;
}

/// Events published while no consumer is attached wait in the durable queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_keeps_events_until_a_consumer_attaches() {
    let prefix = unique_prefix();
    let first = rabbit(&prefix).await;
    first.declare_queue(QUEUE).await.expect("declare");
    let published = events(2, 10);
    first.publish(&published).await.expect("publish");
    assert_eq!(first.queued(QUEUE).await, Some(10), "the bus counts them");
    first.close().await;

    let admin = Admin::connect(&prefix).await;
    let queue = admin.names.queue(QUEUE);
    assert_eq!(admin.count(&queue).await, 10, "kept with nobody consuming");

    let second = rabbit(&prefix).await;
    let recorder = Recorder::accepting();
    second
        .consume(QUEUE, recorder.clone())
        .await
        .expect("consume");
    eventually("the kept events are handled", || {
        recorder.handled().len() >= 10
    })
    .await;
    let ids: HashSet<Uuid> = recorder.handled_ids().into_iter().collect();
    assert_eq!(ids, published.iter().map(|e| e.event_id).collect());
    second.close().await;
    assert_eq!(admin.count(&queue).await, 0, "all acknowledged");
    admin.cleanup(&[QUEUE]).await;
}

/// Two instances on one prefix: events and read-model changes from A reach B's subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_live_feed_spans_instances() {
    let prefix = unique_prefix();
    let a = rabbit(&prefix).await;
    let b = rabbit(&prefix).await;
    let mut live_b = b.live();
    let mut live_a = a.live();

    let published = event(Uuid::now_v7(), 1);
    a.publish(std::slice::from_ref(&published))
        .await
        .expect("publish");
    for live in [&mut live_b, &mut live_a] {
        match &*next_live(live).await {
            LiveMessage::Event(got) => assert_eq!(got, &published),
            other => panic!("expected the event, got {other:?}"),
        }
    }

    let item = item_view();
    let changes = ReadModelChanges {
        items: vec![item.clone()],
        allocations: vec![],
    };
    a.announce(changes).await.expect("announce");
    match &*next_live(&mut live_b).await {
        LiveMessage::ItemChanged(got) => assert_eq!(got, &item),
        other => panic!("expected the item on B, got {other:?}"),
    }

    a.close().await;
    b.close().await;
    Admin::connect(&prefix).await.cleanup(&[]).await;
}

/// Two instances consuming one group split the work; every event is applied, including those
/// whose first try failed with `Retry`, and none again but the batch-mates of a failed try.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rabbit_bus_competing_consumers_apply_each_event_once() {
    let prefix = unique_prefix();
    let a = rabbit(&prefix).await;
    let b = rabbit(&prefix).await;
    let attempts: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let published = events(10, 200);
    let flaky: HashSet<Uuid> = published.iter().step_by(9).map(|e| e.event_id).collect();
    let decide = |flaky: HashSet<Uuid>| -> Decide {
        Box::new(move |event, attempt| {
            if flaky.contains(&event.event_id) && attempt == 1 {
                Err(HandlerError::Retry("projection store busy".into()))
            } else {
                Ok(())
            }
        })
    };
    let on_a = Recorder::sharing(attempts.clone(), decide(flaky.clone()));
    let on_b = Recorder::sharing(attempts.clone(), decide(flaky.clone()));
    a.consume(QUEUE, on_a.clone()).await.expect("consume on A");
    b.consume(QUEUE, on_b.clone()).await.expect("consume on B");

    for batch in published.chunks(20) {
        a.publish(batch).await.expect("publish");
    }
    let applied = || {
        let mut ids: Vec<Uuid> = on_a.handled_ids();
        ids.extend(on_b.handled_ids());
        ids
    };
    eventually("every event is applied", || {
        applied().into_iter().collect::<HashSet<_>>().len() >= 200
    })
    .await;
    // Anything delivered again would show up now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut times: HashMap<Uuid, u32> = HashMap::new();
    for id in applied() {
        *times.entry(id).or_default() += 1;
    }
    assert_eq!(times.len(), 200);
    assert!(published.iter().all(|e| times.contains_key(&e.event_id)));
    // A consumer hands the deliveries at hand to the handler as one batch; a batch that fails
    // on one event is handed over again delivery by delivery, so the events before the failing
    // one are applied again (the projector drops them as duplicates). Nothing else repeats:
    // each event is applied exactly as often as it was tried and did not fail.
    for event in &published {
        let failed = u32::from(flaky.contains(&event.event_id));
        assert_eq!(
            times[&event.event_id],
            on_a.attempts(event.event_id) - failed,
            "an event is applied again only as the batch-mate of a failed one"
        );
    }
    assert!(!on_a.handled().is_empty(), "A took a share");
    assert!(!on_b.handled().is_empty(), "B took a share");
    for id in &flaky {
        // Its first try failed and a later one landed; it may be tried again after that as
        // the batch-mate of another failing event (and then applied again, counted above).
        assert!(
            on_a.attempts(*id) >= 2,
            "a flaky event is tried again after its failure"
        );
    }
    assert_eq!(a.dead_letters() + b.dead_letters(), 0);

    a.close().await;
    b.close().await;
    let admin = Admin::connect(&prefix).await;
    assert_eq!(admin.count(&admin.names.queue(QUEUE)).await, 0);
    admin.cleanup(&[QUEUE]).await;
}

/// A rejected event and an undecodable body go to the dead-letter queue at once; the messages
/// behind them are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_dead_letters_rejected_and_undecodable_messages() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    let admin = Admin::connect(&prefix).await;
    let published = events(1, 4);
    let poison = published[0].event_id;
    let recorder = Recorder::sharing(
        Arc::default(),
        Box::new(move |event, _| {
            if event.event_id == poison {
                Err(HandlerError::Reject("cannot apply".into()))
            } else {
                Ok(())
            }
        }),
    );
    bus.consume(QUEUE, recorder.clone()).await.expect("consume");
    admin
        .publish_raw("InventoryItem.Garbage", b"{not json")
        .await;
    bus.publish(&published).await.expect("publish");

    eventually("the good events are applied", || {
        recorder.handled().len() >= 3
    })
    .await;
    eventually("both are dead-lettered", || bus.dead_letters() >= 2).await;
    let dead = admin.names.dead_queue(QUEUE);
    let start = Instant::now();
    while admin.count(&dead).await < 2 {
        assert!(start.elapsed() < WAIT, "dead-letter queue filled in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Not retried: tried alone once (and before that in its batch, if it came with others).
    assert!(
        recorder.attempts(poison) <= 2,
        "a rejected event is not retried"
    );
    let mut dead_ids = HashSet::new();
    while let Some(message) = admin.get(&dead).await {
        dead_ids.insert(
            message
                .properties
                .message_id()
                .clone()
                .map(|id| id.to_string()),
        );
    }
    assert!(dead_ids.contains(&Some(poison.to_string())));
    assert!(dead_ids.contains(&None), "the raw garbage message");
    assert_eq!(bus.dead_letters(), 2);

    bus.close().await;
    admin.cleanup(&[QUEUE]).await;
}

/// An event that always asks for a retry is tried a bounded number of times, then
/// dead-lettered, while the events behind it flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_dead_letters_an_event_that_keeps_failing() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    let published = events(3, 6);
    let poison = published[0].event_id;
    let recorder = Recorder::sharing(
        Arc::default(),
        Box::new(move |event, _| {
            if event.event_id == poison {
                Err(HandlerError::Retry("store down".into()))
            } else {
                Ok(())
            }
        }),
    );
    bus.consume(QUEUE, recorder.clone()).await.expect("consume");
    bus.publish(&published).await.expect("publish");

    eventually("the rest is applied", || recorder.handled().len() >= 5).await;
    eventually("the poison is dead-lettered", || bus.dead_letters() >= 1).await;
    let max = test_config().max_deliveries;
    // Tried on each of its max_deliveries deliveries, and once more if its first delivery came
    // with others and the batch was tried whole first.
    let tries = recorder.attempts(poison);
    assert!(
        (max..=max + 1).contains(&tries),
        "tried {tries} times for {max} deliveries"
    );
    let admin = Admin::connect(&prefix).await;
    let dead = admin.names.dead_queue(QUEUE);
    let start = Instant::now();
    while admin.count(&dead).await < 1 {
        assert!(start.elapsed() < WAIT, "dead-letter queue filled in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let message = admin.get(&dead).await.expect("the poison");
    assert_eq!(
        message
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string()),
        Some(poison.to_string())
    );
    // Nothing else is retried or dead-lettered later.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(recorder.attempts(poison), tries);
    assert_eq!(bus.dead_letters(), 1);

    bus.close().await;
    admin.cleanup(&[QUEUE]).await;
}

/// While the broker cannot be reached the bus is not ready and `publish` fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_fails_fast_while_disconnected() {
    // Nothing listens on port 1.
    let bus = RabbitBus::connect_with("amqp://guest:guest@127.0.0.1:1/%2f", "x.", test_config())
        .expect("connect returns at once");
    assert!(!bus.is_ready());
    let start = Instant::now();
    assert!(bus.publish(&[event(Uuid::now_v7(), 1)]).await.is_err());
    assert!(start.elapsed() < Duration::from_millis(100), "fails fast");
    assert!(bus.wait_ready(Duration::from_millis(300)).await.is_err());
    // A consumer may be registered now; it starts once connected.
    bus.consume(QUEUE, Recorder::accepting())
        .await
        .expect("registered");
    bus.close().await;
    assert!(RabbitBus::connect("not a url", "x.").is_err());
}

/// Closes this bus's connection from the broker side (not the broker itself). `None` when
/// `rabbitmqctl` is not available here (e.g. a remote broker).
fn kill_connection(prefix: &str) -> Option<usize> {
    let listed = std::process::Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties"])
        .args(["--quiet", "--no-table-headers"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let mut closed = 0;
    for line in String::from_utf8_lossy(&listed.stdout).lines() {
        // `<pid>\t[{"connection_name", "inventory-service (<prefix>inventory.events)"}, ...]`
        let Some((pid, properties)) = line.split_once('\t') else {
            continue;
        };
        if !properties.contains(prefix) {
            continue;
        }
        let status = std::process::Command::new("rabbitmqctl")
            .args(["--quiet", "close_connection", pid, "contract test"])
            .status()
            .expect("run rabbitmqctl");
        assert!(status.success(), "rabbitmqctl close_connection {pid}");
        closed += 1;
    }
    Some(closed)
}

/// After losing its connection the bus reconnects, and its consumer and live feed work again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rabbit_bus_recovers_its_consumers_after_losing_the_connection() {
    let prefix = unique_prefix();
    let bus = rabbit(&prefix).await;
    let recorder = Recorder::accepting();
    bus.consume(QUEUE, recorder.clone()).await.expect("consume");
    bus.publish(&[event(Uuid::now_v7(), 1)])
        .await
        .expect("publish");
    eventually("the first event is applied", || {
        !recorder.handled().is_empty()
    })
    .await;

    // Watch readiness closely: the reconnect may well be over before `rabbitmqctl` returns.
    let went_down = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = tokio::spawn({
        let (bus, went_down) = (bus.clone(), went_down.clone());
        async move {
            while !went_down.load(std::sync::atomic::Ordering::Relaxed) {
                if !bus.is_ready() {
                    went_down.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    let killed_at = Instant::now();
    let Some(closed) = kill_connection(&prefix) else {
        eprintln!("rabbitmqctl unavailable: skipping the reconnect half of this test");
        watcher.abort();
        bus.close().await;
        Admin::connect(&prefix).await.cleanup(&[QUEUE]).await;
        return;
    };
    assert_eq!(closed, 1, "found this bus's connection");
    {
        tokio::time::timeout(WAIT, watcher)
            .await
            .expect("the loss is noticed")
            .expect("watcher");
        bus.wait_ready(WAIT).await.expect("reconnected");
        eprintln!("lost and reconnected within {:?}", killed_at.elapsed());
        let mut live = bus.live();
        let second = event(Uuid::now_v7(), 1);
        bus.publish(std::slice::from_ref(&second))
            .await
            .expect("publish after reconnect");
        eventually("the consumer runs again", || {
            recorder.handled_ids().contains(&second.event_id)
        })
        .await;
        match &*next_live(&mut live).await {
            LiveMessage::Event(got) => assert_eq!(got, &second),
            other => panic!("expected the event, got {other:?}"),
        }
    }

    bus.close().await;
    Admin::connect(&prefix).await.cleanup(&[QUEUE]).await;
}
