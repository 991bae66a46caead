//! Wiring: builds the service from its configuration — store, projections, bus, outbox relay,
//! command handling — and takes it down gracefully. The only place that names adapters.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::application::Commands;
use crate::bus::local::LocalBus;
use crate::bus::{relay, EventBus, EventHandler, HandlerError};
use crate::graphql::AppContext;
use crate::projection::runner::ProjectionRunner;
use crate::projection::sqlite::SqliteProjections;
use crate::projection::{ProjectionError, ProjectionStore};
use crate::store::sqlite::SqliteEventStore;
use crate::store::{EventEnvelope, EventStore};

/// How long shutdown waits for the relay to publish what is still in the outbox.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

pub struct Service {
    pub context: AppContext,
    shutdown: watch::Sender<bool>,
    relay: JoinHandle<()>,
}

/// The durable consumer that keeps the projections up to date and announces changed rows.
struct Projector {
    runner: ProjectionRunner<SqliteProjections>,
    bus: Arc<dyn EventBus>,
}

#[async_trait]
impl EventHandler for Projector {
    async fn handle(&self, events: &[EventEnvelope]) -> Result<(), HandlerError> {
        match self.runner.handle(events.to_vec()).await {
            Ok(changes) => {
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

pub fn projections_path(data_dir: &Path) -> PathBuf {
    data_dir.join("projections.db")
}

impl Service {
    /// Starts the embedded service on `data_dir`: SQLite store and projections, local bus.
    pub async fn start(data_dir: &Path) -> anyhow::Result<Self> {
        let store: Arc<dyn EventStore> = Arc::new(SqliteEventStore::open(data_dir)?);
        let projections = Arc::new(SqliteProjections::open(&projections_path(data_dir))?);
        let bus: Arc<dyn EventBus> = Arc::new(LocalBus::new());
        let projector = Projector {
            runner: ProjectionRunner::new(store.clone(), projections.clone()),
            bus: bus.clone(),
        };
        bus.consume("projections", Arc::new(projector)).await?;
        let (shutdown, stopping) = watch::channel(false);
        let relay = tokio::spawn(relay::run(
            store.clone(),
            bus.clone(),
            stopping,
            DRAIN_DEADLINE,
        ));
        let source = format!("inventory-service/{}", std::process::id());
        Ok(Self {
            context: AppContext {
                commands: Arc::new(Commands::new(store.clone(), source)),
                read: projections,
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
    }
}

/// Differences between the live projections and a rebuild from every stored event; empty when
/// they agree. Run it when writes have settled (the live side may lag by milliseconds).
pub async fn verify_projections(data_dir: &Path) -> anyhow::Result<Vec<String>> {
    let store = SqliteEventStore::open(data_dir)?;
    let live = SqliteProjections::open(&projections_path(data_dir))?;
    let scratch = tempfile_dir(data_dir)?;
    let rebuilt = SqliteProjections::open(&scratch.join("rebuild.db"))?;
    let mut cursor = None;
    loop {
        let page = store.read_all(cursor, 5_000).await?;
        let applied = rebuilt.apply(page.events.clone()).await?;
        anyhow::ensure!(
            applied.gap.is_none(),
            "the store has a gap in a stream: {:?}",
            applied.gap
        );
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let differences = diff(&live.dump().await?, &rebuilt.dump().await?);
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(differences)
}

fn tempfile_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join(format!("verify-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn diff(
    live: &BTreeMap<String, Vec<serde_json::Value>>,
    rebuilt: &BTreeMap<String, Vec<serde_json::Value>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (table, rows) in rebuilt {
        let empty = Vec::new();
        let live_rows = live.get(table).unwrap_or(&empty);
        if live_rows.len() != rows.len() {
            out.push(format!(
                "{table}: {} live rows, {} rebuilt",
                live_rows.len(),
                rows.len()
            ));
        }
        if let Some((l, r)) = live_rows.iter().zip(rows).find(|(l, r)| l != r) {
            out.push(format!("{table}: live {l} differs from rebuilt {r}"));
        }
    }
    out
}
