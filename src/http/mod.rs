//! The HTTP edge: GraphQL over HTTP as its spec describes (`POST /graphql`, queries also by
//! `GET /graphql?query=…`, content negotiation between `application/graphql-response+json` and
//! legacy `application/json`), the self-hosted GraphiQL page for browsers on `GET /graphql`,
//! the live dashboard on `GET /` (a client of the same API; `dashboard`),
//! subscriptions on `/graphql/ws` (graphql-transport-ws and graphql-ws), health probes and
//! metrics. In front of every route: the `Host` check (`hosts`) and the CORS rules
//! (`crate::cors`); before a GraphQL request runs, its caller is authenticated and counted
//! against its rate limit (`admission`, `rate`). Connections are served by `server` (header
//! read timeout); bodies have a deadline of their own. Each request gets a correlation id that
//! flows into event metadata and back in `X-Correlation-Id`.

pub mod admission;
mod batch;
mod dashboard;
mod embedded;
mod graphiql;
mod graphql;
pub mod hosts;
mod negotiate;
pub mod rate;
pub mod server;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::auth::{Authenticator, Role};
use crate::config::EdgeConfig;
use crate::cors::Origins;
use crate::graphql::limits::Limits;
use crate::graphql::{AppContext, InventorySchema};
use crate::projection::catch_up::CatchUpStatus;
use crate::projection::stall::ProjectorHealth;
use crate::ws::{Sockets, WsConfig};
use admission::Admission;
use hosts::AllowedHosts;
use negotiate::Media;
use rate::{RateLimits, RateSettings};

/// Largest request body accepted: far above any real operation, far below a memory problem.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
struct HttpState {
    schema: InventorySchema,
    app: AppContext,
    edge: Edge,
    catch_up: CatchUpStatus,
    projector: ProjectorHealth,
}

/// How the edge treats callers, other origins and hosts, connections and WebSockets.
#[derive(Debug, Clone)]
pub struct Edge {
    /// Origins allowed cross-origin access (CORS, and WebSocket upgrades).
    pub origins: Origins,
    /// Host names requests may carry (`--allowed-host`; loopback names on loopback).
    pub hosts: AllowedHosts,
    /// Authentication and rate limits.
    pub admission: Admission,
    /// The WebSocket endpoint's settings and caps.
    pub sockets: Sockets,
    /// What one request may cost (`--max-query-cost` and the others).
    pub limits: Limits,
    /// How long a request's head may take (the accept loop, `server::serve`).
    pub header_read_timeout: Duration,
    /// How long a request's whole body may take.
    pub body_read_timeout: Duration,
    /// Whether the main router serves `/metrics` (not when `--metrics-listen` gives it its own
    /// listener).
    pub metrics_here: bool,
}

impl Default for Edge {
    /// Anonymous callers are admins, any host, no rate limits: for tests that build a router.
    fn default() -> Self {
        Self {
            origins: Origins::default(),
            hosts: AllowedHosts::any(),
            admission: Admission::new(
                Authenticator::anonymous(Some(Role::Admin)),
                RateLimits::new(RateSettings::OFF),
            ),
            sockets: Sockets::default(),
            limits: Limits::default(),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            metrics_here: true,
        }
    }
}

impl Edge {
    /// The edge as configured, for a service listening on `listen`. Its authenticator lets
    /// anonymous callers be admins until `with_authenticator` gives the configured one.
    pub fn from_config(
        config: &EdgeConfig,
        listen: SocketAddr,
    ) -> Result<Self, crate::cors::NotAnOrigin> {
        let limits = config.limits.limits();
        let connections = &config.connections;
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        let millis = Duration::from_millis;
        Ok(Self {
            origins: Origins::parse(&config.cors_origins)?,
            hosts: AllowedHosts::new(listen, &config.allowed_hosts),
            admission: Admission::new(
                Authenticator::anonymous(Some(Role::Admin)),
                RateLimits::new(config.rates.settings()),
            ),
            sockets: Sockets::new(WsConfig {
                init_timeout: millis(config.ws_init_timeout_ms),
                max_message_bytes: MAX_BODY_BYTES,
                max_operations: size(connections.ws_max_operations),
                max_operations_per_principal: size(connections.max_operations_per_principal),
                max_connections: size(connections.ws_max_connections),
                slow_consumer: millis(connections.ws_slow_consumer_ms),
                limits,
            }),
            limits,
            header_read_timeout: millis(connections.header_read_timeout_ms),
            body_read_timeout: millis(connections.body_read_timeout_ms),
            metrics_here: config.metrics_listen.is_none(),
        })
    }

    /// The edge with the authenticator every request and socket is checked by (API keys,
    /// tokens, the anonymous role).
    pub fn with_authenticator(mut self, authenticator: Authenticator) -> Self {
        self.admission = self.admission.with_authenticator(authenticator);
        self
    }
}

/// The service's routes; `/health/ready` answers 503 until `catch_up` is done and while the
/// `projector` is stalled.
pub fn router(
    schema: InventorySchema,
    app: AppContext,
    edge: Edge,
    catch_up: CatchUpStatus,
    projector: ProjectorHealth,
) -> Router {
    let origins = edge.origins.clone();
    let hosts = edge.hosts.clone();
    let metrics_here = edge.metrics_here;
    let mut router = Router::new()
        .route("/", get(dashboard::page))
        .route(dashboard::ASSET_ROUTE, get(dashboard::asset))
        .route("/graphql", get(graphql::get).post(graphql::post))
        .route(graphiql::ASSET_ROUTE, get(graphiql::asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready));
    if metrics_here {
        router = router.route("/metrics", get(metrics_text));
    }
    let mut router = router
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(HttpState {
            schema,
            app,
            edge,
            catch_up,
            projector,
        });
    if let Some(cors) = origins.layer() {
        router = router.layer(cors);
    }
    // Outside the CORS layer: other origins get none of its headers.
    router
        .layer(axum::middleware::from_fn_with_state(
            origins,
            crate::cors::only_configured,
        ))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            hosts::only_allowed,
        ))
}

/// The router of `--metrics-listen`: `/metrics` only, behind the same `Host` check.
pub fn metrics_router(hosts: AllowedHosts) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .layer(axum::middleware::from_fn_with_state(
            hosts,
            hosts::only_allowed,
        ))
}

/// The peer's address, as the accept loop (`server`) records it.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

fn peer_ip(peer: &Peer) -> Option<IpAddr> {
    peer.as_ref()
        .map(|Extension(ConnectInfo(address))| address.ip())
}

/// `/graphql/ws`: GraphQL over WebSocket (see `crate::ws`), within the connection cap; the
/// origin is checked and the caller authenticated on the socket itself.
async fn graphql_ws(
    State(state): State<HttpState>,
    headers: HeaderMap,
    peer: Peer,
    upgrade: WebSocketUpgrade,
) -> Response {
    let sockets = state.edge.sockets.clone();
    let Some(permit) = sockets.try_open() else {
        metrics::counter!(crate::metrics::EDGE_REFUSALS, "code" => "TOO_MANY_CONNECTIONS")
            .increment(1);
        let mut response = error(
            StatusCode::SERVICE_UNAVAILABLE,
            Media::Json,
            "TOO_MANY_CONNECTIONS",
            format!(
                "at most {} WebSocket connections may be open at once; retry later",
                sockets.config.max_connections
            ),
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let text = |name: &str| admission::header(&headers, name).map(str::to_owned);
    let handshake = crate::ws::Handshake {
        origin_allowed: state.edge.origins.allows_socket(&headers),
        authorization: text("authorization"),
        actor: text("x-actor"),
        correlation_id: admission::header(&headers, "x-correlation-id")
            .and_then(crate::auth::audit_token)
            .map(str::to_owned),
        peer: peer_ip(&peer),
        admission: state.edge.admission.clone(),
    };
    crate::ws::upgrade(
        upgrade,
        &headers,
        handshake,
        state.schema.clone(),
        sockets,
        permit,
    )
}

/// A request-level GraphQL error (no data), sent as the negotiated media type.
fn error(status: StatusCode, media: Media, code: &str, message: String) -> Response {
    let body = json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, Json(body)).into_response();
    set_content_type(&mut response, media);
    response
}

fn set_content_type(response: &mut Response, media: Media) {
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(media.content_type()));
}

async fn metrics_text() -> Response {
    match crate::metrics::handle() {
        Some(handle) => (
            [(CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics recorder not installed").into_response(),
    }
}

async fn ready(State(state): State<HttpState>) -> Response {
    let store = state.app.store.ping().await;
    let read = state.app.read.ping().await;
    let bus = state.app.bus.is_ready();
    // Reachable is not enough: projections still catching up from the store serve old rows.
    let caught_up = state.catch_up.is_done();
    // Nor is a projector that has stopped taking what waits for it.
    let stalled = state.projector.stalled();
    let mut body = json!({
        "store": store.is_ok(),
        "projections": read.is_ok() && caught_up,
        "bus": bus,
        "caughtUp": caught_up,
        "projectorStalled": stalled.is_some(),
    });
    if let Some(reason) = stalled.as_ref() {
        body["reason"] = json!(reason);
    }
    let status = if store.is_ok() && read.is_ok() && bus && caught_up && stalled.is_none() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
