//! Prometheus metrics: the recorder is installed once per process and `/metrics` renders it.
//! Code elsewhere records through the `metrics` facade with the names below, so the names a
//! dashboard depends on are all in one place.

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

pub const COMMANDS: &str = "inventory_commands_total";
pub const COMMAND_SECONDS: &str = "inventory_command_duration_seconds";
pub const CONFLICTS: &str = "inventory_command_conflicts_total";
pub const OUTBOX_DEPTH: &str = "inventory_outbox_depth";
pub const OUTBOX_OLDEST_AGE: &str = "inventory_outbox_oldest_age_seconds";
pub const PUBLISHED: &str = "inventory_events_published_total";
pub const PROJECTION_LAG: &str = "inventory_projection_lag_seconds";
pub const DEAD_LETTERS: &str = "inventory_dead_lettered_messages";
pub const SUBSCRIBERS: &str = "inventory_subscribers";
pub const OUTBOX_SHARDS_OWNED: &str = "inventory_outbox_shards_owned";
pub const DYNAMODB_REQUESTS: &str = "inventory_dynamodb_requests_total";
pub const READ_MODEL_QUERIES: &str = "inventory_read_model_queries_total";
pub const DYNAMODB_CAPACITY: &str = "inventory_dynamodb_capacity_units_total";
pub const EXPIRY_DELAY: &str = "inventory_expiry_delay_seconds";
pub const EDGE_REFUSALS: &str = "inventory_edge_refusals_total";
pub const WEBSOCKETS: &str = "inventory_websockets";
pub const PROJECTOR_STALLED: &str = "inventory_projector_stalled";
pub const PROJECTOR_WAITING: &str = "inventory_projector_waiting_seconds";
pub const LAYOUT_FENCED: &str = "inventory_projection_layout_fenced_total";

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder (first call only) and returns the handle that renders it. `None` if
/// another recorder was installed first (e.g. by an embedding program).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ];
            PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Describes every metric once, so `/metrics` carries HELP lines.
pub fn describe() {
    metrics::describe_counter!(
        COMMANDS,
        "Commands handled, by mutation and outcome (ok, rejected, failed)."
    );
    metrics::describe_histogram!(
        COMMAND_SECONDS,
        metrics::Unit::Seconds,
        "Command latency, load to commit."
    );
    metrics::describe_counter!(
        CONFLICTS,
        "Appends that lost an optimistic-concurrency race and were retried."
    );
    metrics::describe_gauge!(
        OUTBOX_DEPTH,
        "Events committed but not yet confirmed published."
    );
    metrics::describe_gauge!(
        OUTBOX_OLDEST_AGE,
        metrics::Unit::Seconds,
        "Age of the oldest unpublished event."
    );
    metrics::describe_counter!(PUBLISHED, "Events the bus confirmed.");
    metrics::describe_gauge!(
        PROJECTION_LAG,
        metrics::Unit::Seconds,
        "Commit-to-projection delay of the last projected event."
    );
    metrics::describe_gauge!(
        DEAD_LETTERS,
        "Messages given up on and dead-lettered since start."
    );
    metrics::describe_gauge!(SUBSCRIBERS, "Open GraphQL subscriptions on this instance.");
    metrics::describe_gauge!(
        OUTBOX_SHARDS_OWNED,
        "1 for each DynamoDB outbox shard whose lease this instance holds and sweeps."
    );
    metrics::describe_counter!(
        DYNAMODB_REQUESTS,
        "DynamoDB request attempts sent, by operation (each is billed)."
    );
    metrics::describe_counter!(
        READ_MODEL_QUERIES,
        "Read-model calls made by the API, by query (a DataLoader batch is one call)."
    );
    metrics::describe_gauge!(
        DYNAMODB_CAPACITY,
        "DynamoDB capacity units consumed, by table and index (empty for the table itself); only with --dynamodb-report-capacity. Only ever grows."
    );
    metrics::describe_histogram!(
        EXPIRY_DELAY,
        metrics::Unit::Seconds,
        "How long after its deadline each expired allocation was cancelled (this instance's expiries)."
    );
    metrics::describe_counter!(
        EDGE_REFUSALS,
        "Requests and WebSocket operations refused at the edge, by code (UNAUTHENTICATED, RATE_LIMITED, HOST_NOT_ALLOWED, TOO_MANY_CONNECTIONS, TOO_MANY_OPERATIONS, SLOW_CONSUMER, ...)."
    );
    metrics::describe_gauge!(WEBSOCKETS, "Open GraphQL WebSocket connections.");
    metrics::describe_gauge!(
        PROJECTOR_STALLED,
        "1 while the live projector is stalled: work has waited --projector-stall-seconds with no batch applied (/health/ready is 503 meanwhile)."
    );
    metrics::describe_gauge!(
        PROJECTOR_WAITING,
        metrics::Unit::Seconds,
        "How long work has waited for the live projector with no batch applied (0 when nothing waits)."
    );
    metrics::describe_counter!(
        LAYOUT_FENCED,
        "Times this instance found its lease on the projection layout lapsed (paused, or cut off from the store) and re-read the layout before projecting again."
    );
}

/// A gauge's last value kept beside the recorder, for the gauges the public API reports too
/// (`serviceStatus`): reading them back out of the Prometheus text would mean parsing it. The
/// bits of an `f64`; NaN until first set.
struct Reading(AtomicU64);

impl Reading {
    const fn unset() -> Self {
        Self(AtomicU64::new(f64::NAN.to_bits()))
    }

    fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    fn get(&self) -> Option<f64> {
        let value = f64::from_bits(self.0.load(Ordering::Relaxed));
        (!value.is_nan()).then_some(value)
    }
}

static LAST_PROJECTION_LAG: Reading = Reading::unset();
static LAST_OUTBOX_DEPTH: Reading = Reading::unset();
static LAST_OUTBOX_OLDEST_AGE: Reading = Reading::unset();

/// Records `PROJECTION_LAG` (seconds from commit to projection of the last projected event).
pub fn record_projection_lag(seconds: f64) {
    metrics::gauge!(PROJECTION_LAG).set(seconds);
    LAST_PROJECTION_LAG.set(seconds);
}

/// Records `OUTBOX_DEPTH` and `OUTBOX_OLDEST_AGE` as the relay measured them.
pub fn record_outbox(depth: u64, oldest_age_seconds: f64) {
    metrics::gauge!(OUTBOX_DEPTH).set(depth as f64);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(oldest_age_seconds);
    LAST_OUTBOX_DEPTH.set(depth as f64);
    LAST_OUTBOX_OLDEST_AGE.set(oldest_age_seconds);
}

/// The last values this process recorded of the gauges above; `None` for one not measured
/// yet (no event projected since start, or no relay running here).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Readings {
    pub projection_lag_seconds: Option<f64>,
    pub outbox_depth: Option<u64>,
    pub outbox_oldest_age_seconds: Option<f64>,
}

pub fn readings() -> Readings {
    Readings {
        projection_lag_seconds: LAST_PROJECTION_LAG.get(),
        outbox_depth: LAST_OUTBOX_DEPTH.get().map(|depth| depth as u64),
        outbox_oldest_age_seconds: LAST_OUTBOX_OLDEST_AGE.get(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_is_none_until_set_then_the_last_value() {
        let reading = Reading::unset();
        assert_eq!(reading.get(), None);
        reading.set(0.25);
        reading.set(1.5);
        assert_eq!(reading.get(), Some(1.5));
    }
}
