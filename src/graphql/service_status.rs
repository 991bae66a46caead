//! `serviceStatus`: the health figures a dashboard's status strip shows, readable by any
//! viewer (`/metrics` may be on another listener, and is Prometheus text besides). The figures
//! are the very values `/metrics` reports, as the instance answering last recorded them
//! (`crate::metrics::readings`); nothing is measured anew per request.

use async_graphql::{Object, SimpleObject};

use super::roles::RoleGuard;
use crate::auth::Role;

/// How far behind the answering instance is.
#[derive(SimpleObject)]
pub struct ServiceStatus {
    /// Seconds from commit to projection of the last event this instance projected
    /// (`inventory_projection_lag_seconds`); it keeps that value while no events arrive.
    /// Null until this instance has projected an event.
    projection_lag_seconds: Option<f64>,
    /// Events committed but not yet confirmed published (`inventory_outbox_depth`), as
    /// measured within the last second or so. Null where no outbox relay runs.
    outbox_depth: Option<u64>,
    /// Age in seconds of the oldest of those events (`inventory_outbox_oldest_age_seconds`);
    /// 0 when the outbox is empty, null where no outbox relay runs.
    outbox_oldest_age_seconds: Option<f64>,
}

#[derive(Default)]
pub struct ServiceStatusQuery;

#[Object]
impl ServiceStatusQuery {
    /// Projection lag and outbox depth of the instance that answers, as `/metrics` reports
    /// them. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn service_status(&self) -> ServiceStatus {
        let readings = crate::metrics::readings();
        ServiceStatus {
            projection_lag_seconds: readings.projection_lag_seconds,
            outbox_depth: readings.outbox_depth,
            outbox_oldest_age_seconds: readings.outbox_oldest_age_seconds,
        }
    }
}
