//! Operators' API for projection replay: start (or resume) a rebuild of projections into fresh
//! tables, follow its progress, and see which generation of tables serves each projection.

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject};
use chrono::{DateTime, TimeZone, Utc};
use std::time::Duration;

use super::roles::RoleGuard;
use super::types::UserError;
use super::{infrastructure, AppContext};
use crate::auth::Role;
use crate::projection::replay::{RebuildStatus, ReplayError};

/// A read model that can be rebuilt on its own.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::projection::layout::ProjectionName")]
pub enum ProjectionName {
    /// Warehouses (`warehouses`, `warehouse`).
    Warehouses,
    /// Current stock per item (`inventoryItems`, `inventoryItem`, low-stock lists).
    CurrentInventory,
    /// Allocations and their status (`allocations`, `allocation`).
    AllocationStatus,
    /// Every stock change per item (`inventoryHistory`).
    InventoryHistory,
    /// Daily movement totals (`stockMovementReport`).
    StockMovements,
    /// Transfers and their status (`transfers`, `transfer`).
    TransferStatus,
}

/// Where a rebuild stands.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::projection::replay::RebuildState")]
pub enum RebuildState {
    /// Reading the store into the new tables; readers still use the old ones.
    Running,
    /// Recorded as in progress but not advancing: start it again to resume where it stopped.
    Interrupted,
    /// Switched over: readers use the new tables.
    Done,
    /// Stopped by an error (see `error`); start it again to resume.
    Failed,
}

/// A projection rebuild and its progress.
#[derive(SimpleObject)]
pub struct ProjectionRebuild {
    /// The generation of tables being built (or built).
    generation: i32,
    /// The projections it rebuilds.
    projections: Vec<ProjectionName>,
    /// Running, interrupted, done or failed.
    state: RebuildState,
    /// Events read from the store and applied so far.
    events_done: u64,
    /// The store's event count when the rebuild started (an estimate on DynamoDB).
    events_total: Option<u64>,
    /// Events per second since this run (or its resumption) began.
    events_per_second: f64,
    /// Estimated seconds until the switch, at the current rate.
    seconds_left: Option<f64>,
    /// When it was first started.
    started_at: DateTime<Utc>,
    /// When it last advanced.
    updated_at: DateTime<Utc>,
    /// Why it failed, when it did.
    error: Option<String>,
}

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

impl From<RebuildStatus> for ProjectionRebuild {
    fn from(status: RebuildStatus) -> Self {
        let rebuild = status.rebuild;
        Self {
            generation: rebuild.generation as i32,
            projections: rebuild.projections.iter().map(|p| (*p).into()).collect(),
            state: status.state.into(),
            events_done: rebuild.events_done,
            events_total: rebuild.events_total,
            events_per_second: rebuild.rate(),
            seconds_left: rebuild.seconds_left(),
            started_at: at(rebuild.started_at),
            updated_at: at(rebuild.updated_at),
            error: status.error,
        }
    }
}

/// Which generation of tables serves a projection.
#[derive(SimpleObject)]
pub struct ProjectionGeneration {
    /// The projection.
    projection: ProjectionName,
    /// Its generation; 0 until it is first rebuilt.
    generation: i32,
}

#[derive(Default)]
pub struct RebuildQuery;

#[Object]
impl RebuildQuery {
    /// The rebuild in progress, else the last one; null when projections were never rebuilt.
    /// Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn projection_rebuild(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<ProjectionRebuild>> {
        let app = ctx.data::<AppContext>()?;
        let status = app.rebuilds.status().await.map_err(infrastructure)?;
        Ok(status.map(Into::into))
    }

    /// The generation of tables serving each projection. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn projection_generations(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<ProjectionGeneration>> {
        let app = ctx.data::<AppContext>()?;
        let routing = app.projections.routing().await.map_err(infrastructure)?;
        Ok(crate::projection::layout::ProjectionName::ALL
            .into_iter()
            .map(|p| ProjectionGeneration {
                projection: p.into(),
                generation: routing.layout.generation_of(p) as i32,
            })
            .collect())
    }
}

/// What to rebuild.
#[derive(InputObject)]
pub struct ProjectionRebuildInput {
    /// The projections to rebuild; empty resumes the interrupted rebuild.
    projections: Vec<ProjectionName>,
    /// Pause between pages of 5,000 events, to leave room for live traffic (0 to 60,000).
    #[graphql(default = 0)]
    throttle_ms: i32,
}

/// The rebuild as started, or why it was refused.
#[derive(SimpleObject)]
pub struct ProjectionRebuildPayload {
    /// The rebuild now running in the background.
    rebuild: Option<ProjectionRebuild>,
    /// Why nothing was started (another rebuild runs, bad input...).
    user_errors: Vec<UserError>,
}

fn refused(message: String) -> ProjectionRebuildPayload {
    ProjectionRebuildPayload {
        rebuild: None,
        user_errors: vec![UserError {
            field: None,
            message,
            code: "INVALID_STATE_TRANSITION".into(),
        }],
    }
}

#[derive(Default)]
pub struct RebuildMutation;

#[Object]
impl RebuildMutation {
    /// Rebuilds projections from every stored event into fresh tables, in the background, and
    /// switches readers over once caught up; queries keep reading the current tables meanwhile.
    /// Follow it with `projectionRebuild`. Needs the `admin` role.
    #[graphql(guard = "RoleGuard(Role::Admin)")]
    async fn projection_rebuild_start(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: ProjectionRebuildInput,
    ) -> async_graphql::Result<ProjectionRebuildPayload> {
        let app = ctx.data::<AppContext>()?;
        if !(0..=60_000).contains(&input.throttle_ms) {
            return Ok(ProjectionRebuildPayload {
                rebuild: None,
                user_errors: vec![UserError {
                    field: Some(vec!["input".into(), "throttleMs".into()]),
                    message: format!(
                        "throttleMs must be between 0 and 60000, got {}",
                        input.throttle_ms
                    ),
                    code: "INVALID_INPUT".into(),
                }],
            });
        }
        let projections = input.projections.into_iter().map(Into::into).collect();
        let throttle = Duration::from_millis(input.throttle_ms as u64);
        match app.rebuilds.start(projections, throttle).await {
            Ok(status) => Ok(ProjectionRebuildPayload {
                rebuild: Some(status.into()),
                user_errors: vec![],
            }),
            Err(ReplayError::Refused(message)) => Ok(refused(message)),
            Err(error @ ReplayError::Failed(_)) => Err(infrastructure(error)),
        }
    }
}
