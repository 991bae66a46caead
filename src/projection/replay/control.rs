//! Rebuilds started through the API: each runs as a background task of this server, and a
//! status query reports it, or one another process runs or left interrupted, from the durable
//! layout record.

use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

use super::{chain, load, names, replay, sorted, ReplayError, ReplayOptions};
use crate::application::now_ms;
use crate::projection::layout::{ProjectionName, Rebuild};
use crate::projection::switch::Switchboard;
use crate::store::EventStore;

/// What a status query shows about a rebuild.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RebuildStatus {
    pub rebuild: Rebuild,
    pub state: RebuildState,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RebuildState {
    Running,
    /// Recorded as in progress but nobody has advanced it for a while: resume it.
    Interrupted,
    Done,
    Failed,
}

/// A rebuild not advanced for this long is reported as interrupted.
const STALLED_AFTER_MS: i64 = 15_000;

/// Rebuilds started through the API, run as background tasks of this process.
pub struct RebuildControl {
    store: Arc<dyn EventStore>,
    board: Arc<Switchboard>,
    running: Mutex<Option<Running>>,
}

struct Running {
    task: JoinHandle<()>,
    latest: Arc<Mutex<RebuildStatus>>,
}

impl RebuildControl {
    pub fn new(store: Arc<dyn EventStore>, board: Arc<Switchboard>) -> Self {
        Self {
            store,
            board,
            running: Mutex::new(None),
        }
    }

    /// Starts rebuilding `projections` (or resuming the rebuild in progress when empty) in the
    /// background; refused while one runs in this process or another process holds one.
    pub async fn start(
        &self,
        projections: Vec<ProjectionName>,
        throttle: Duration,
    ) -> Result<RebuildStatus, ReplayError> {
        if self
            .lock()
            .as_ref()
            .is_some_and(|running| !running.task.is_finished())
        {
            return Err(ReplayError::Refused(
                "a rebuild is already running in this server".into(),
            ));
        }
        let layout = load(&self.board).await?;
        if let Some(building) = &layout.building {
            let wanted = sorted(projections.clone());
            let stalled = now_ms() - building.updated_at > STALLED_AFTER_MS;
            if !stalled {
                return Err(ReplayError::Refused(format!(
                    "a rebuild of {} (generation {}) is running in another process",
                    names(&building.projections),
                    building.generation
                )));
            }
            if !wanted.is_empty() && wanted != building.projections {
                return Err(ReplayError::Refused(format!(
                    "an interrupted rebuild of {} (generation {}) must be resumed first",
                    names(&building.projections),
                    building.generation
                )));
            }
        } else if projections.is_empty() {
            return Err(ReplayError::Refused(
                "no rebuild is in progress: name the projections to rebuild".into(),
            ));
        }
        let first = RebuildStatus {
            rebuild: layout.building.clone().unwrap_or_else(|| {
                Rebuild::new(
                    layout.next_generation(),
                    sorted(projections.clone()),
                    None,
                    now_ms(),
                )
            }),
            state: RebuildState::Running,
            error: None,
        };
        let latest = Arc::new(Mutex::new(first.clone()));
        let task = {
            let store = self.store.clone();
            let board = self.board.clone();
            let latest = latest.clone();
            let options = ReplayOptions {
                projections,
                throttle,
                ..ReplayOptions::default()
            };
            tokio::spawn(async move {
                let set = |change: &dyn Fn(&mut RebuildStatus)| {
                    if let Ok(mut latest) = latest.lock() {
                        change(&mut latest);
                    }
                };
                let result = replay(store, &board, options, |rebuild| {
                    set(&|status| status.rebuild = rebuild.clone())
                })
                .await;
                match result {
                    Ok(rebuild) => set(&|status| {
                        status.rebuild = rebuild.clone();
                        status.state = RebuildState::Done;
                    }),
                    Err(error) => {
                        let error = chain(&error);
                        tracing::error!(%error, "projection rebuild failed");
                        set(&|status| {
                            status.state = RebuildState::Failed;
                            status.error = Some(error.clone());
                        })
                    }
                }
            })
        };
        *self.lock() = Some(Running { task, latest });
        Ok(first)
    }

    /// The rebuild in progress (here or in another process), else the last one this server
    /// ran, else the last one recorded.
    pub async fn status(&self) -> Result<Option<RebuildStatus>, ReplayError> {
        let layout = load(&self.board).await?;
        let local = self
            .lock()
            .as_ref()
            .and_then(|running| running.latest.lock().ok().map(|s| s.clone()));
        if let Some(local) = &local {
            let recorded = layout.building.as_ref().or(layout.last.as_ref());
            let newer_elsewhere = recorded.is_some_and(|r| r.generation > local.rebuild.generation);
            if !newer_elsewhere {
                return Ok(Some(local.clone()));
            }
        }
        Ok(match (layout.building, layout.last) {
            (Some(rebuild), _) => {
                let stalled = now_ms() - rebuild.updated_at > STALLED_AFTER_MS;
                Some(RebuildStatus {
                    rebuild,
                    state: if stalled {
                        RebuildState::Interrupted
                    } else {
                        RebuildState::Running
                    },
                    error: None,
                })
            }
            (None, Some(rebuild)) => Some(RebuildStatus {
                rebuild,
                state: RebuildState::Done,
                error: None,
            }),
            (None, None) => None,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Running>> {
        crate::sync::lock(&self.running)
    }
}
