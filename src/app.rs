//! Start-up: builds the service from its configuration — store, projections (caught up with
//! the store), bus, outbox relay, command handling, the expiry sweeper — serves it over HTTP
//! until a signal, and takes it down gracefully, publishing what the outbox still holds. The
//! only place that names adapters; `main.rs` only parses the command line.

mod archive;
mod expiry;
mod keys;
mod maintenance;
mod projector;

use anyhow::Context as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::application::Commands;
use crate::auth::keys::Keys;
use crate::bus::local::LocalBus;
use crate::bus::rabbitmq::RabbitBus;
use crate::bus::{relay, EventBus};
use crate::config::{BusConfig, BusKind, EdgeConfig, ExpiryConfig, StorageConfig, StoreKind};
use crate::dynamodb::{self, Tables};
use crate::graphql::AppContext;
use crate::projection::catch_up::dynamodb::TableIdentities;
use crate::projection::catch_up::{self, CatchUpStatus, Coverage, EveryStart};
use crate::projection::dynamodb::DynamoGenerations;
use crate::projection::replay::RebuildControl;
use crate::projection::sqlite::SqliteGenerations;
use crate::projection::stall::ProjectorHealth;
use crate::projection::switch::{Generations, Membership, Switchboard};
use crate::store::archive::ArchiveStore;
use crate::store::dynamodb::DynamoEventStore;
use crate::store::sqlite::SqliteEventStore;
use crate::store::EventStore;
pub use archive::{export, import};
pub use keys::{create_key, key_listing, list_keys, open_keys, revoke_key, NewKey, Revocation};
pub use maintenance::{migrate, rebuild_snapshots, replay, verify_projections, ReplayRequest};
use projector::Projector;

/// The live projector's durable queue (its consumer group on the broker).
const PROJECTOR_QUEUE: &str = "projections";

/// How long shutdown waits for the relay to publish what is still in the outbox.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub struct Service {
    pub context: AppContext,
    /// The API keys, in the store's database (for the edge's `KeyDirectory`).
    pub keys: Keys,
    /// The start-up catch-up of the projections; not ready until it is done.
    pub catch_up: CatchUpStatus,
    catching_up: JoinHandle<()>,
    /// Whether the live projector keeps up; not ready while it is stalled.
    pub projector: ProjectorHealth,
    watching: JoinHandle<()>,
    /// This process's lease on the projection layout (its live projector writes under it).
    membership: Membership,
    shutdown: watch::Sender<bool>,
    relay: JoinHandle<()>,
    /// Stopped before the relay, so that its last expiries are published on the way out.
    sweeper_shutdown: watch::Sender<bool>,
    sweeper: JoinHandle<()>,
}

/// The store and the projections (every generation of their tables), opened from configuration.
pub struct Storage {
    pub store: Arc<dyn EventStore>,
    pub projections: Arc<Switchboard>,
    /// Whether a start-up must read the store to catch the projections up.
    pub coverage: Arc<dyn Coverage>,
    /// The API keys, kept by the same store (the same SQLite writer, the same DynamoDB client).
    pub keys: Keys,
    /// The same store's export and import (`store::archive`).
    pub archive: Arc<dyn ArchiveStore>,
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
        type Opened = (
            Arc<dyn EventStore>,
            Keys,
            Arc<dyn ArchiveStore>,
            Arc<dyn Generations>,
            Arc<dyn Coverage>,
        );
        let (store, keys, archive, generations, coverage): Opened = match config.store {
            StoreKind::Sqlite => {
                let store = Arc::new(SqliteEventStore::open(&config.data_dir)?);
                (
                    store.clone(),
                    store.clone(),
                    store,
                    Arc::new(SqliteGenerations::open(&config.data_dir)?),
                    Arc::new(EveryStart),
                )
            }
            StoreKind::Dynamodb => {
                let (client, tables) = dynamodb_client(config).await?;
                let store = Arc::new(DynamoEventStore::with_outbox(
                    client.clone(),
                    tables.clone(),
                    config.outbox_shards,
                    outbox_lease,
                ));
                (
                    store.clone(),
                    store.clone(),
                    store,
                    Arc::new(DynamoGenerations::new(client.clone(), tables.clone())),
                    Arc::new(TableIdentities::new(client, tables)),
                )
            }
        };
        Ok(Self {
            store,
            projections: Arc::new(Switchboard::open(generations).await?),
            coverage,
            keys,
            archive,
        })
    }
}

/// The DynamoDB client and table names of `config`, with the tables created first when
/// `--migrate` asks for it.
async fn dynamodb_client(
    config: &StorageConfig,
) -> anyhow::Result<(aws_sdk_dynamodb::Client, Tables)> {
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
    Ok((client, tables))
}

impl Service {
    /// Starts the service on the configured storage with the in-process bus.
    pub async fn start(config: &StorageConfig) -> anyhow::Result<Self> {
        Self::start_with(config, &BusConfig::default(), &ExpiryConfig::default()).await
    }

    /// Starts the service on the configured storage and bus, sweeping expired reservations as
    /// configured.
    pub async fn start_with(
        config: &StorageConfig,
        bus_config: &BusConfig,
        expiry: &ExpiryConfig,
    ) -> anyhow::Result<Self> {
        let lease = Duration::from_millis(bus_config.outbox_lease_ms);
        let Storage {
            store,
            projections,
            coverage,
            keys,
            ..
        } = Storage::open_with_lease(config, lease).await?;
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
        // Before any projection write: a replay must know this process routes by its layout.
        let membership = projections.join();
        // The projectors' queue must exist before the relay publishes, or a broker would confirm
        // events that no durable queue holds.
        let projector =
            ProjectorHealth::new(Duration::from_secs(bus_config.projector_stall_seconds));
        bus.consume(
            PROJECTOR_QUEUE,
            Arc::new(Projector {
                store: store.clone(),
                projections: projections.clone(),
                bus: bus.clone(),
                health: projector.clone(),
            }),
        )
        .await?;
        let watching = projector.watch(store.clone(), bus.clone(), PROJECTOR_QUEUE);
        // With the live projector attached, so that events committed while the store is read
        // are not missed; the checkpoints let the two write the same tables in any order.
        let (catch_up, catching_up) = catch_up::spawn(store.clone(), projections.clone(), coverage);
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
        let commands =
            Arc::new(Commands::new(store.clone(), source).with_snapshots(config.snapshot_every));
        let (sweeper_shutdown, sweeper_stopping) = watch::channel(false);
        let sweeper = tokio::spawn(
            expiry::Sweeper {
                commands: commands.clone(),
                read: projections.clone(),
                interval: Duration::from_millis(expiry.expiry_interval_ms),
                settled: Default::default(),
            }
            .run(sweeper_stopping),
        );
        Ok(Self {
            context: AppContext {
                commands,
                read: projections.clone(),
                rebuilds: Arc::new(RebuildControl::new(store.clone(), projections.clone())),
                projections,
                store,
                bus,
            },
            keys,
            catch_up,
            catching_up,
            projector,
            watching,
            membership,
            shutdown,
            relay,
            sweeper_shutdown,
            sweeper,
        })
    }

    /// Stops the relay after it has published what the outbox holds (bounded by a deadline).
    pub async fn stop(self) {
        // An unfinished catch-up resumes at the next start (its checkpoints are kept).
        self.catching_up.abort();
        self.watching.abort();
        let _ = self.sweeper_shutdown.send(true);
        if let Err(error) = self.sweeper.await {
            tracing::error!(%error, "expiry sweeper ended abnormally");
        }
        let _ = self.shutdown.send(true);
        if let Err(error) = self.relay.await {
            tracing::error!(%error, "outbox relay ended abnormally");
        }
        self.context.bus.close().await;
        self.membership.leave().await;
    }
}

/// What `serve` needs beyond the storage and the bus.
pub struct ServeSettings {
    pub listen: SocketAddr,
    pub storage: StorageConfig,
    pub bus: BusConfig,
    pub edge: EdgeConfig,
    pub expiry: ExpiryConfig,
    /// Who may call it: keys, tokens, the anonymous role.
    pub auth: crate::config::AuthConfig,
    /// How long a DataLoader batch waits for more ids after its first.
    pub batch_window: Duration,
}

/// Runs the service until Ctrl-C or SIGTERM: starts it, listens, finishes the requests in
/// flight, then publishes what is left in the outbox.
pub async fn serve(settings: ServeSettings) -> anyhow::Result<()> {
    if crate::metrics::handle().is_some() {
        crate::metrics::describe();
    }
    let service = Service::start_with(&settings.storage, &settings.bus, &settings.expiry)
        .await
        .with_context(|| format!("starting on the {:?} store", settings.storage.store))?;
    let schema = crate::graphql::schema_with(Some(service.context.clone()), settings.batch_window);
    let authenticator =
        authenticator(&settings.auth, settings.listen, service.keys.clone()).await?;
    let edge = crate::http::Edge::from_config(&settings.edge, settings.listen)?
        .with_authenticator(authenticator);
    let header_read_timeout = edge.header_read_timeout;
    let router = crate::http::router(
        schema,
        service.context.clone(),
        edge,
        service.catch_up.clone(),
        service.projector.clone(),
    );
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("binding {}", settings.listen))?;
    let address = listener.local_addr()?;
    let (stopping, stop) = watch::channel(false);
    let metrics = match settings.edge.metrics_listen {
        Some(metrics_listen) => {
            let listener = tokio::net::TcpListener::bind(metrics_listen)
                .await
                .with_context(|| format!("binding {metrics_listen} for /metrics"))?;
            let metrics_address = listener.local_addr()?;
            tracing::info!(address = %metrics_address, "/metrics served on its own listener");
            let hosts = crate::http::hosts::AllowedHosts::new(
                metrics_address,
                &settings.edge.allowed_hosts,
            );
            let mut stop = stop.clone();
            Some(tokio::spawn(crate::http::server::serve(
                listener,
                crate::http::metrics_router(hosts),
                header_read_timeout,
                async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                },
            )))
        }
        None => None,
    };
    // The first stdout line is the address, for scripts and the test harness.
    println!("listening on http://{address}");
    tracing::info!(%address, store = ?settings.storage.store, "inventory service listening; GraphiQL at /graphql");
    crate::http::server::serve(listener, router, header_read_timeout, shutdown_signal()).await;
    let _ = stopping.send(true);
    if let Some(metrics) = metrics {
        let _ = metrics.await;
    }
    tracing::info!("no more requests; publishing what remains in the outbox");
    service.stop().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Who may call the service on `listen`: API keys from the store, tokens as configured, and
/// the anonymous role; the log says which applies.
pub async fn authenticator(
    config: &crate::config::AuthConfig,
    listen: SocketAddr,
    keys: crate::auth::keys::Keys,
) -> anyhow::Result<crate::auth::Authenticator> {
    let anonymous = config.anonymous(listen);
    let mut authenticator = crate::auth::Authenticator::anonymous(anonymous)
        .with_keys(Arc::new(crate::auth::keys::KeyDirectory::new(keys)));
    if let Some(tokens) = crate::auth::jwt::Verifier::from_config(&config.tokens).await? {
        authenticator = authenticator.with_tokens(Arc::new(tokens));
    }
    let explicit = config.anonymous_role.is_some();
    match anonymous {
        Some(role) if !explicit => tracing::warn!(
            %listen,
            "requests without credentials act as {role}: the default on loopback; set \
             --anonymous-role none (or viewer) before exposing the service"
        ),
        Some(role) => {
            tracing::info!(%listen, "requests without credentials act as {role} (--anonymous-role)")
        }
        None => tracing::info!(
            %listen,
            "requests without credentials are refused (create a key with `inventory-service api-key create`)"
        ),
    }
    Ok(authenticator)
}
