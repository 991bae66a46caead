//! Settings shared by every command, each a flag with an environment-variable fallback. The
//! defaults run the embedded service (SQLite files under `./data`, in-process bus).

use clap::{Args, ValueEnum};
use std::path::PathBuf;

use crate::graphql::limits;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Embedded SQLite files under `--data-dir`.
    Sqlite,
    /// DynamoDB (or a local DynamoDB-compatible endpoint).
    Dynamodb,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BusKind {
    /// In-process: one instance, no broker.
    Local,
    /// RabbitMQ: several instances share projections and live subscriptions.
    Rabbitmq,
}

#[derive(Args, Clone, Debug)]
pub struct BusConfig {
    /// How committed events travel to projectors and subscribers.
    #[arg(long, env = "INVENTORY_BUS", value_enum, default_value = "local")]
    pub bus: BusKind,
    /// RabbitMQ URL.
    #[arg(
        long,
        env = "INVENTORY_AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    pub amqp_url: String,
    /// Prefix of every exchange and queue name, so several environments can share a broker.
    #[arg(long, env = "INVENTORY_BUS_PREFIX", default_value = "")]
    pub bus_prefix: String,
    /// Do not run the outbox relay (operations and fault tests: commits stay in the outbox).
    #[arg(
        long,
        env = "INVENTORY_RELAY_PAUSED",
        default_value_t = false,
        hide = true
    )]
    pub relay_paused: bool,
    /// How long a relay's lease on a DynamoDB outbox shard lasts unless renewed (renewed every
    /// third): the longest a dead instance's shards wait for another; shorter costs more
    /// renewals (tests use a short one).
    #[arg(
        long,
        env = "INVENTORY_OUTBOX_LEASE_MS",
        default_value_t = crate::store::dynamodb::DEFAULT_OUTBOX_LEASE.as_millis() as u64,
        value_parser = clap::value_parser!(u64).range(300..),
        hide = true
    )]
    pub outbox_lease_ms: u64,
    /// How long an idle outbox relay waits after a commit before publishing, so that the
    /// commits right behind it share its batch and the projectors write each row once for all
    /// of them. Default: 5 ms on DynamoDB (each request is billed), 0 on the embedded store.
    #[arg(long, env = "INVENTORY_RELAY_LINGER_MS", value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub relay_linger_ms: Option<u64>,
    /// How long events may wait for the live projector (in the outbox, in hand, failing) with
    /// no batch applied before it counts as stalled: `/health/ready` turns 503 with the reason,
    /// `inventory_projector_stalled` is 1 and the log says so once. 0 turns the watch off.
    #[arg(
        long,
        env = "INVENTORY_PROJECTOR_STALL_SECONDS",
        default_value_t = DEFAULT_PROJECTOR_STALL_SECONDS
    )]
    pub projector_stall_seconds: u64,
}

/// Long enough for a throttled projection table to be ridden out by the retries (the SDK's,
/// then the relay's or the broker's), short enough for a load balancer to act on.
pub const DEFAULT_PROJECTOR_STALL_SECONDS: u64 = 30;

impl BusConfig {
    /// The relay's linger on `store` (`relay_linger_ms`, or the store's default).
    pub fn relay_linger(&self, store: StoreKind) -> std::time::Duration {
        let default = match store {
            StoreKind::Dynamodb => DYNAMODB_RELAY_LINGER_MS,
            StoreKind::Sqlite => 0,
        };
        std::time::Duration::from_millis(self.relay_linger_ms.unwrap_or(default))
    }
}

/// The relay's default linger on DynamoDB: on the local endpoint a sequential client's next
/// commits land within it; on AWS, where a commit takes about 10 ms, it folds mostly what
/// concurrent clients commit.
pub const DYNAMODB_RELAY_LINGER_MS: u64 = 5;

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            bus: BusKind::Local,
            amqp_url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            bus_prefix: String::new(),
            relay_paused: false,
            outbox_lease_ms: crate::store::dynamodb::DEFAULT_OUTBOX_LEASE.as_millis() as u64,
            relay_linger_ms: None,
            projector_stall_seconds: DEFAULT_PROJECTOR_STALL_SECONDS,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct StorageConfig {
    /// Where events, outbox, snapshots and projections live.
    #[arg(long, env = "INVENTORY_STORE", value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// Directory of the embedded store (events.db, projections.db).
    #[arg(long, env = "INVENTORY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// DynamoDB endpoint URL, for DynamoDB Local or another local endpoint; unset for AWS.
    #[arg(long, env = "INVENTORY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Prefix of every DynamoDB table name, so several environments can share an account.
    #[arg(long, env = "INVENTORY_TABLE_PREFIX", default_value = "")]
    pub table_prefix: String,
    /// Create missing DynamoDB tables at start-up (as `migrate` does).
    #[arg(long, env = "INVENTORY_MIGRATE", default_value_t = false)]
    pub migrate: bool,
    /// Ask DynamoDB for the capacity every request consumes and report it in `/metrics`
    /// (`inventory_dynamodb_capacity_units_total`): for cost measurements, off in production.
    #[arg(
        long,
        env = "INVENTORY_DYNAMODB_REPORT_CAPACITY",
        default_value_t = false
    )]
    pub dynamodb_report_capacity: bool,
    /// DynamoDB outbox partition keys the commits spread over (by aggregate). Raise it for a
    /// write rate one key cannot take; never lower it while rows wait (a row in a shard past
    /// the count would not be swept).
    #[arg(long, env = "INVENTORY_OUTBOX_SHARDS", default_value_t = crate::store::dynamodb::DEFAULT_OUTBOX_SHARDS)]
    pub outbox_shards: u32,
    /// Snapshot an aggregate every this many events (0 turns snapshots off).
    #[arg(long, env = "INVENTORY_SNAPSHOT_EVERY", default_value_t = crate::application::commands::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
}

/// The background work on reservations that expire.
#[derive(Args, Clone, Debug)]
pub struct ExpiryConfig {
    /// How often this instance looks for allocations past their deadline and cancels them
    /// (ms). An expiry lands within about this long after its deadline; every instance may
    /// sweep, and exactly one cancels each allocation.
    #[arg(
        long,
        env = "INVENTORY_EXPIRY_INTERVAL_MS",
        default_value_t = DEFAULT_EXPIRY_INTERVAL_MS,
        value_parser = clap::value_parser!(u64).range(10..=60_000)
    )]
    pub expiry_interval_ms: u64,
}

pub const DEFAULT_EXPIRY_INTERVAL_MS: u64 = 1_000;

impl Default for ExpiryConfig {
    fn default() -> Self {
        Self {
            expiry_interval_ms: DEFAULT_EXPIRY_INTERVAL_MS,
        }
    }
}

/// How the HTTP edge treats browsers on other origins and WebSocket clients.
#[derive(Args, Clone, Debug)]
pub struct EdgeConfig {
    /// An origin (scheme://host[:port]) whose pages may call the API from a browser
    /// (CORS) and open its WebSocket; repeatable. Default: none (same origin only).
    #[arg(
        long = "cors-origin",
        env = "INVENTORY_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// How long a WebSocket may stay open without `connection_init` before it is closed
    /// (graphql-transport-ws code 4408).
    #[arg(
        long,
        env = "INVENTORY_WS_INIT_TIMEOUT_MS",
        default_value_t = 3_000,
        value_parser = clap::value_parser!(u64).range(50..=60_000)
    )]
    pub ws_init_timeout_ms: u64,
    /// A host name (or address) requests may name in `Host`, besides `localhost`,
    /// `127.0.0.1`, `[::1]` and the listen address; repeatable. On a loopback address every
    /// other name is refused (421, HOST_NOT_ALLOWED), which defeats DNS rebinding; elsewhere
    /// every name passes unless some are given here.
    #[arg(
        long = "allowed-host",
        env = "INVENTORY_ALLOWED_HOSTS",
        value_delimiter = ','
    )]
    pub allowed_hosts: Vec<String>,
    /// Serve `/metrics` on this address only (its own listener), so it need not be public;
    /// the main address then answers 404 there. Unset: `/metrics` on the main address.
    #[arg(long, env = "INVENTORY_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    pub connections: ConnectionsConfig,
    #[command(flatten)]
    pub rates: RateLimitConfig,
    #[command(flatten)]
    pub limits: LimitsConfig,
}

/// What one connection may hold, and for how long: the answer to clients that open
/// connections and never finish their requests, or stop reading what they asked for.
#[derive(Args, Clone, Debug)]
pub struct ConnectionsConfig {
    /// How long a request's head (request line and headers) may take to arrive, from the
    /// connection's start or the previous response; over it the connection is closed.
    #[arg(
        long,
        env = "INVENTORY_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=300_000)
    )]
    pub header_read_timeout_ms: u64,
    /// How long a request's body may take to arrive, all of it (a lying `Content-Length` or
    /// an endless chunked body is cut off with 408).
    #[arg(
        long,
        env = "INVENTORY_BODY_READ_TIMEOUT_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub body_read_timeout_ms: u64,
    /// Most WebSocket connections open at once; an upgrade past it gets 503
    /// (TOO_MANY_CONNECTIONS).
    #[arg(
        long,
        env = "INVENTORY_WS_MAX_CONNECTIONS",
        default_value_t = 1_000,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub ws_max_connections: u64,
    /// Most operations (subscriptions above all) one WebSocket runs at once; past it a
    /// `subscribe` gets an error with code TOO_MANY_OPERATIONS.
    #[arg(
        long,
        env = "INVENTORY_WS_MAX_OPERATIONS",
        default_value_t = 20,
        value_parser = clap::value_parser!(u64).range(1..=10_000)
    )]
    pub ws_max_operations: u64,
    /// Most WebSocket operations one principal runs at once over all its connections (every
    /// anonymous client counts as the one principal `anonymous`); past it TOO_MANY_OPERATIONS.
    #[arg(
        long,
        env = "INVENTORY_MAX_OPERATIONS_PER_PRINCIPAL",
        default_value_t = 200,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub max_operations_per_principal: u64,
    /// How long a WebSocket's outgoing queue may stay full (the client reads nothing) before
    /// the connection is dropped with close code 1008 "slow consumer".
    #[arg(
        long,
        env = "INVENTORY_WS_SLOW_CONSUMER_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(100..=600_000)
    )]
    pub ws_slow_consumer_ms: u64,
}

/// Rate limits at the edge (the `governor` crate's GCRA).
#[derive(Args, Clone, Debug)]
pub struct RateLimitConfig {
    /// Requests per second one principal may make (HTTP requests and WebSocket operations;
    /// all anonymous clients share the principal `anonymous`); over it HTTP 429 with
    /// `Retry-After`, or RATE_LIMITED. 0 turns the limit off.
    #[arg(long, env = "INVENTORY_RATE_LIMIT_PER_SECOND", default_value_t = 200)]
    pub rate_limit_per_second: u32,
    /// How many requests a principal may make at once after a quiet spell (0: as many as
    /// per second).
    #[arg(long, env = "INVENTORY_RATE_LIMIT_BURST", default_value_t = 400)]
    pub rate_limit_burst: u32,
    /// Failed authentications per minute one peer address may make before its credentials
    /// are not even looked at for a while (429); slows key guessing. 0 turns it off.
    #[arg(long, env = "INVENTORY_AUTH_FAILURES_PER_MINUTE", default_value_t = 30)]
    pub auth_failures_per_minute: u32,
}

impl RateLimitConfig {
    pub fn settings(&self) -> crate::http::rate::RateSettings {
        crate::http::rate::RateSettings {
            per_second: self.rate_limit_per_second,
            burst: self.rate_limit_burst,
            auth_failures_per_minute: self.auth_failures_per_minute,
        }
    }
}

/// What one request may cost, over HTTP and WebSocket alike (see `graphql::limits` for how a
/// query is priced). The defaults fit every dashboard query; raise them only with the memory
/// to match.
#[derive(Args, Clone, Debug)]
pub struct LimitsConfig {
    /// Highest cost of one operation: each field costs 1, a connection's selection counts once
    /// per row of its page (`first`/`last`, default 50), an `*AsOf` replay 1,000, a catch-up
    /// subscription 1,000. Over it: QUERY_TOO_COMPLEX, before anything runs.
    #[arg(
        long,
        env = "INVENTORY_MAX_QUERY_COST",
        default_value_t = limits::MAX_COMPLEXITY as u64,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub max_query_cost: u64,
    /// Longest query document, in bytes. Over it: QUERY_TOO_LARGE, before it is parsed.
    #[arg(
        long,
        env = "INVENTORY_MAX_QUERY_BYTES",
        default_value_t = limits::MAX_QUERY_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1024..=crate::http::MAX_BODY_BYTES as u64)
    )]
    pub max_query_bytes: u64,
    /// Deepest selection of one operation (introspection has its own bound).
    /// Over it: QUERY_TOO_DEEP.
    #[arg(
        long,
        env = "INVENTORY_MAX_QUERY_DEPTH",
        default_value_t = limits::MAX_DEPTH as u64,
        value_parser = clap::value_parser!(u64).range(1..=64)
    )]
    pub max_query_depth: u64,
    /// Most operations in one batch (a JSON array of requests). Over it: BATCH_TOO_LARGE
    /// (HTTP 400), before any runs.
    #[arg(
        long,
        env = "INVENTORY_MAX_BATCH_OPERATIONS",
        default_value_t = limits::MAX_BATCH_OPERATIONS as u64,
        value_parser = clap::value_parser!(u64).range(1..=100)
    )]
    pub max_batch_operations: u64,
    /// Highest cost of a batch's operations together. An operation that would pass it is
    /// refused with BATCH_TOO_COMPLEX.
    #[arg(
        long,
        env = "INVENTORY_MAX_BATCH_COST",
        default_value_t = limits::MAX_BATCH_COMPLEXITY as u64,
        value_parser = clap::value_parser!(u64).range(1..=1_000_000)
    )]
    pub max_batch_cost: u64,
    /// Largest answer, in bytes of JSON (a batch's answers together; each subscription event
    /// on its own). A larger one is replaced by a RESPONSE_TOO_LARGE error.
    #[arg(
        long,
        env = "INVENTORY_MAX_RESPONSE_BYTES",
        default_value_t = limits::MAX_RESPONSE_BYTES as u64,
        value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024)
    )]
    pub max_response_bytes: u64,
}

impl LimitsConfig {
    pub fn limits(&self) -> limits::Limits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        limits::Limits {
            max_depth: size(self.max_query_depth),
            max_complexity: size(self.max_query_cost),
            max_query_bytes: size(self.max_query_bytes),
            max_batch_operations: size(self.max_batch_operations),
            max_batch_complexity: size(self.max_batch_cost),
            max_response_bytes: size(self.max_response_bytes),
        }
    }
}

/// `--anonymous-role`: what a request without credentials may do.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonymousRole {
    /// Nothing: every request needs an API key or a token.
    None,
    Viewer,
    Operator,
    Admin,
}

/// Who may call the API: API keys (always, from the store), tokens from an identity
/// provider (`--jwt-*`), and what anonymous callers may do.
#[derive(Args, Clone, Debug, Default)]
pub struct AuthConfig {
    /// What requests without credentials may do. Default: `admin` when listening on
    /// loopback only (a developer's own machine, where the Host and Origin checks keep other
    /// sites out), `none` on any other address, so no reachable deployment is open.
    #[arg(long, env = "INVENTORY_ANONYMOUS_ROLE", value_enum)]
    pub anonymous_role: Option<AnonymousRole>,
    #[command(flatten)]
    pub tokens: crate::auth::jwt::TokenConfig,
}

impl AuthConfig {
    /// The anonymous role for a service listening on `listen`.
    pub fn anonymous(&self, listen: std::net::SocketAddr) -> Option<crate::auth::Role> {
        use crate::auth::Role;
        match self.anonymous_role {
            Some(AnonymousRole::None) => None,
            Some(AnonymousRole::Viewer) => Some(Role::Viewer),
            Some(AnonymousRole::Operator) => Some(Role::Operator),
            Some(AnonymousRole::Admin) => Some(Role::Admin),
            None if listen.ip().is_loopback() => Some(Role::Admin),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_callers_are_admins_on_loopback_only_unless_configured() {
        let unset = AuthConfig::default();
        let loopback: std::net::SocketAddr = ([127, 0, 0, 1], 8080).into();
        let everywhere: std::net::SocketAddr = ([0, 0, 0, 0], 8080).into();
        assert_eq!(unset.anonymous(loopback), Some(crate::auth::Role::Admin));
        assert_eq!(unset.anonymous(everywhere), None);
        let viewer = AuthConfig {
            anonymous_role: Some(AnonymousRole::Viewer),
            ..AuthConfig::default()
        };
        assert_eq!(
            viewer.anonymous(everywhere),
            Some(crate::auth::Role::Viewer)
        );
        let none = AuthConfig {
            anonymous_role: Some(AnonymousRole::None),
            ..AuthConfig::default()
        };
        assert_eq!(none.anonymous(loopback), None);
    }
}
