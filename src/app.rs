//! Wiring: builds the service from its configuration — store, projections, bus, outbox relay,
//! command handling — and takes it down gracefully. The only place that names adapters.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::application::Commands;
use crate::bus::local::LocalBus;
use crate::bus::rabbitmq::RabbitBus;
use crate::bus::{relay, EventBus, EventHandler, HandlerError};
use crate::config::{BusConfig, BusKind, StorageConfig, StoreKind};
use crate::dynamodb::{self, Tables};
use crate::graphql::AppContext;
use crate::projection::dynamodb::DynamoGenerations;
use crate::projection::layout::ProjectionName;
use crate::projection::replay::RebuildControl;
use crate::projection::runner::{Changed, ProjectionRunner, ReadModelChanges};
use crate::projection::sqlite::{SqliteGenerations, SqliteProjections};
use crate::projection::switch::{Generations, Switchboard};
use crate::projection::{ProjectionError, ProjectionStore};
use crate::store::dynamodb::DynamoEventStore;
use crate::store::sqlite::SqliteEventStore;
use crate::store::{EventEnvelope, EventStore};

/// How long shutdown waits for the relay to publish what is still in the outbox.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub struct Service {
    pub context: AppContext,
    shutdown: watch::Sender<bool>,
    relay: JoinHandle<()>,
}

/// The durable consumer that keeps the projections up to date — in every generation of tables
/// that serves or is being rebuilt — and announces changed rows.
struct Projector {
    store: Arc<dyn EventStore>,
    projections: Arc<Switchboard>,
    bus: Arc<dyn EventBus>,
}

impl Projector {
    async fn apply(&self, events: &[EventEnvelope]) -> Result<ReadModelChanges, ProjectionError> {
        let routing = self.projections.routing().await?;
        // The rows as readers now see them: as the generation serving each read model left
        // them (no read back).
        let mut changes = ReadModelChanges::default();
        for target in routing.targets() {
            let runner = ProjectionRunner::new(self.store.clone(), target.clone());
            let Changed { items, allocations } = runner.handle(events.to_vec()).await?;
            if routing.serves(target, ProjectionName::CurrentInventory) {
                changes.items.extend(items.into_values());
            }
            if routing.serves(target, ProjectionName::AllocationStatus) {
                changes.allocations.extend(allocations.into_values());
            }
        }
        Ok(changes)
    }
}

#[async_trait]
impl EventHandler for Projector {
    async fn handle(&self, events: &[EventEnvelope]) -> Result<(), HandlerError> {
        match self.apply(events).await {
            Ok(changes) => {
                if let Some(last) = events.last() {
                    let lag =
                        (crate::application::now_ms() - last.timestamp).max(0) as f64 / 1000.0;
                    metrics::gauge!(crate::metrics::PROJECTION_LAG).set(lag);
                }
                if let Err(error) = self.bus.announce(changes).await {
                    tracing::warn!(%error, "could not announce read-model changes");
                }
                Ok(())
            }
            Err(ProjectionError::Poison { event_id, reason }) => {
                Err(HandlerError::Reject(format!("event {event_id}: {reason}")))
            }
            Err(error) => Err(HandlerError::Retry(error.to_string())),
        }
    }
}

/// The store and the projections (every generation of their tables), opened from configuration.
pub struct Storage {
    pub store: Arc<dyn EventStore>,
    pub projections: Arc<Switchboard>,
}

impl Storage {
    pub async fn open(config: &StorageConfig) -> anyhow::Result<Self> {
        Self::open_with_lease(config, crate::store::dynamodb::DEFAULT_OUTBOX_LEASE).await
    }

    /// ...with the lease a relay holds on an outbox shard (DynamoDB) for `outbox_lease`.
    pub async fn open_with_lease(
        config: &StorageConfig,
        outbox_lease: Duration,
    ) -> anyhow::Result<Self> {
        let (store, generations): (Arc<dyn EventStore>, Arc<dyn Generations>) = match config.store {
            StoreKind::Sqlite => (
                Arc::new(SqliteEventStore::open(&config.data_dir)?),
                Arc::new(SqliteGenerations::open(&config.data_dir)?),
            ),
            StoreKind::Dynamodb => {
                let client = dynamodb::client_with(
                    config.dynamodb_endpoint.as_deref(),
                    config.dynamodb_report_capacity,
                )
                .await;
                let tables = Tables::new(config.table_prefix.clone());
                if config.migrate {
                    let created = dynamodb::migrate(&client, &tables).await?;
                    if !created.is_empty() {
                        tracing::info!(?created, "created DynamoDB tables");
                    }
                }
                (
                    Arc::new(DynamoEventStore::with_outbox(
                        client.clone(),
                        tables.clone(),
                        config.outbox_shards,
                        outbox_lease,
                    )),
                    Arc::new(DynamoGenerations::new(client, tables)),
                )
            }
        };
        Ok(Self {
            store,
            projections: Arc::new(Switchboard::open(generations).await?),
        })
    }
}

/// Creates the store's tables (DynamoDB) and returns their names; the embedded store creates
/// its tables when it opens, so there is nothing to do for it.
pub async fn migrate(config: &StorageConfig) -> anyhow::Result<Vec<String>> {
    match config.store {
        StoreKind::Sqlite => {
            Storage::open(config).await?;
            Ok(vec![])
        }
        StoreKind::Dynamodb => {
            let client = dynamodb::client_with(
                config.dynamodb_endpoint.as_deref(),
                config.dynamodb_report_capacity,
            )
            .await;
            Ok(dynamodb::migrate(&client, &Tables::new(config.table_prefix.clone())).await?)
        }
    }
}

impl Service {
    /// Starts the service on the configured storage with the in-process bus.
    pub async fn start(config: &StorageConfig) -> anyhow::Result<Self> {
        Self::start_with(config, &BusConfig::default()).await
    }

    /// Starts the service on the configured storage and bus.
    pub async fn start_with(
        config: &StorageConfig,
        bus_config: &BusConfig,
    ) -> anyhow::Result<Self> {
        let lease = Duration::from_millis(bus_config.outbox_lease_ms);
        let Storage { store, projections } = Storage::open_with_lease(config, lease).await?;
        let bus: Arc<dyn EventBus> = match bus_config.bus {
            BusKind::Local => Arc::new(LocalBus::new()),
            BusKind::Rabbitmq => {
                let rabbit = RabbitBus::connect(&bus_config.amqp_url, &bus_config.bus_prefix)?;
                // Give the first connection a moment; if the broker is down the service starts
                // anyway (commits wait in the outbox) and reports not ready.
                if let Err(error) = rabbit.wait_ready(Duration::from_secs(5)).await {
                    tracing::warn!(%error, "RabbitMQ not reachable yet; starting without it");
                }
                rabbit
            }
        };
        // The projectors' queue must exist before the relay publishes, or a broker would confirm
        // events that no durable queue holds.
        bus.consume(
            "projections",
            Arc::new(Projector {
                store: store.clone(),
                projections: projections.clone(),
                bus: bus.clone(),
            }),
        )
        .await?;
        let (shutdown, stopping) = watch::channel(false);
        let relay = if bus_config.relay_paused {
            tracing::warn!("outbox relay paused: commits stay in the outbox");
            tokio::spawn(async {})
        } else {
            tokio::spawn(relay::run(
                store.clone(),
                bus.clone(),
                stopping,
                DRAIN_DEADLINE,
                bus_config.relay_linger(config.store),
            ))
        };
        let source = format!("inventory-service/{}", std::process::id());
        Ok(Self {
            context: AppContext {
                commands: Arc::new(
                    Commands::new(store.clone(), source).with_snapshots(config.snapshot_every),
                ),
                read: projections.clone(),
                rebuilds: Arc::new(RebuildControl::new(store.clone(), projections.clone())),
                projections,
                store,
                bus,
            },
            shutdown,
            relay,
        })
    }

    /// Stops the relay after it has published what the outbox holds (bounded by a deadline).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        if let Err(error) = self.relay.await {
            tracing::error!(%error, "outbox relay ended abnormally");
        }
        self.context.bus.close().await;
    }
}

/// Reads every stored event, page by page (a parallel scan on DynamoDB), handing each page to
/// `handle` before reading the next.
async fn for_each_page<F, Fut>(store: &dyn EventStore, mut handle: F) -> anyhow::Result<()>
where
    F: FnMut(Vec<EventEnvelope>) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut cursor = None;
    loop {
        let page = store.read_all(cursor, 5_000).await?;
        handle(page.events).await?;
        match page.next {
            Some(next) => cursor = Some(next),
            None => return Ok(()),
        }
    }
}

/// Rewrites the snapshot of every aggregate with at least `snapshot_every` events, folded from
/// its events (so a stale, corrupt or missing snapshot is replaced). Returns how many.
pub async fn rebuild_snapshots(config: &StorageConfig) -> anyhow::Result<u64> {
    use crate::application::load;
    use crate::domain::{
        allocation::Allocation, item::InventoryItem, warehouse::Warehouse, Aggregate, AggregateType,
    };
    use crate::store::Snapshot;
    anyhow::ensure!(
        config.snapshot_every > 0,
        "snapshots are disabled (--snapshot-every 0)"
    );
    let Storage { store, .. } = Storage::open(config).await?;
    let mut streams: std::collections::HashMap<uuid::Uuid, (AggregateType, u64)> =
        Default::default();
    for_each_page(&*store, |events| {
        for event in events {
            let entry = streams
                .entry(event.aggregate_id)
                .or_insert((event.aggregate_type, 0));
            entry.1 = entry.1.max(event.sequence_number);
        }
        async { Ok(()) }
    })
    .await?;
    async fn snapshot<A: Aggregate>(
        store: &dyn EventStore,
        id: uuid::Uuid,
    ) -> anyhow::Result<Snapshot> {
        let state = load::<A>(store, id, None).await?;
        Ok(Snapshot {
            aggregate_id: id,
            aggregate_type: A::TYPE,
            version: state.version,
            state_version: A::STATE_VERSION,
            state: serde_json::to_value(&state)?,
        })
    }
    let mut written = 0;
    for (id, (kind, version)) in streams {
        if version < config.snapshot_every {
            continue;
        }
        let snapshot = match kind {
            AggregateType::Warehouse => snapshot::<Warehouse>(&*store, id).await?,
            AggregateType::InventoryItem => snapshot::<InventoryItem>(&*store, id).await?,
            AggregateType::Allocation => snapshot::<Allocation>(&*store, id).await?,
        };
        store.save_snapshot(snapshot).await?;
        written += 1;
    }
    Ok(written)
}

/// Differences between the live projections and a rebuild from every stored event into a
/// scratch SQLite file; empty when they agree. Run it when writes have settled (the live side
/// may lag by milliseconds).
pub async fn verify_projections(config: &StorageConfig) -> anyhow::Result<Vec<String>> {
    let Storage { store, projections } = Storage::open(config).await?;
    let scratch = std::env::temp_dir().join(format!("inventory-verify-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&scratch)?;
    let rebuilt = Arc::new(SqliteProjections::open(&scratch.join("rebuild.db"))?);
    let runner = ProjectionRunner::new(store.clone(), rebuilt.clone());
    let result = async {
        for_each_page(&*store, |events| async {
            Ok(runner.handle(events).await.map(|_| ())?)
        })
        .await?;
        Ok::<_, anyhow::Error>(
            projections
                .dump()
                .await?
                .differences(&rebuilt.dump().await?),
        )
    }
    .await;
    let _ = std::fs::remove_dir_all(&scratch);
    result
}
