//! The HTTP edge: GraphQL over HTTP as its spec describes (`POST /graphql`, queries also by
//! `GET /graphql?query=…`, content negotiation between `application/graphql-response+json` and
//! legacy `application/json`), the self-hosted GraphiQL page for browsers on `GET /graphql`,
//! subscriptions on `/graphql/ws` (graphql-transport-ws and graphql-ws), and health probes. The
//! body limit is answered as a GraphQL error; each request gets a correlation id that flows
//! into event metadata.

mod batch;
mod graphiql;
mod negotiate;

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, Variables};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header::{ALLOW, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;

use crate::config::EdgeConfig;
use crate::cors::Origins;
use crate::graphql::executed::Executed;
use crate::graphql::limits::{code, Allowance, Limits};
use crate::graphql::{AppContext, InventorySchema, RequestMeta};
use crate::projection::catch_up::CatchUpStatus;
use crate::ws::WsConfig;
use negotiate::Media;

/// Largest request body accepted: far above any real operation, far below a memory problem.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const HEADER_VALUE_MAX: usize = 128;

#[derive(Clone)]
struct HttpState {
    schema: InventorySchema,
    app: AppContext,
    edge: Edge,
    catch_up: CatchUpStatus,
}

/// How the edge treats other origins and WebSockets.
#[derive(Debug, Clone, Default)]
pub struct Edge {
    /// Origins allowed cross-origin access (CORS, and WebSocket upgrades).
    pub origins: Origins,
    pub ws: WsConfig,
    /// What one request may cost (`--max-query-cost` and the others).
    pub limits: Limits,
}

impl Edge {
    pub fn from_config(config: &EdgeConfig) -> Result<Self, crate::cors::NotAnOrigin> {
        let limits = config.limits.limits();
        Ok(Self {
            origins: Origins::parse(&config.cors_origins)?,
            ws: WsConfig {
                init_timeout: std::time::Duration::from_millis(config.ws_init_timeout_ms),
                limits,
                ..WsConfig::default()
            },
            limits,
        })
    }
}

/// The service's routes; `/health/ready` answers 503 until `catch_up` is done.
pub fn router(
    schema: InventorySchema,
    app: AppContext,
    edge: Edge,
    catch_up: CatchUpStatus,
) -> Router {
    let origins = edge.origins.clone();
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route(graphiql::ASSET_ROUTE, get(graphiql::asset))
        .route("/graphql/ws", get(graphql_ws))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(HttpState {
            schema,
            app,
            edge,
            catch_up,
        });
    if let Some(cors) = origins.layer() {
        router = router.layer(cors);
    }
    // Outside the CORS layer: other origins get none of its headers.
    router.layer(axum::middleware::from_fn_with_state(
        origins,
        crate::cors::only_configured,
    ))
}

/// `/graphql/ws`: GraphQL over WebSocket (see `crate::ws`), after the origin check.
async fn graphql_ws(
    State(state): State<HttpState>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let meta = RequestMeta {
        principal: crate::auth::Principal::anonymous(Some(crate::auth::Role::Admin)),
        actor: header(&headers, "x-actor").unwrap_or_else(|| "anonymous".to_owned()),
        correlation_id: uuid::Uuid::now_v7().to_string(),
    };
    crate::ws::upgrade(
        upgrade,
        &headers,
        state.edge.origins.allows_socket(&headers),
        state.schema.clone(),
        state.edge.ws.clone(),
        meta,
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

fn not_acceptable() -> Response {
    error(
        StatusCode::NOT_ACCEPTABLE,
        Media::Json,
        "NOT_ACCEPTABLE",
        "responses are application/graphql-response+json or application/json; the Accept header allows neither".to_owned(),
    )
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= HEADER_VALUE_MAX)
        .map(str::to_owned)
}

/// The parameters of `GET /graphql`, as the spec names them; `variables` and `extensions` are
/// JSON text.
#[derive(Deserialize)]
struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    extensions: Option<String>,
}

async fn graphql_get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let mut response = get_response(&state, &headers, params).await;
    // The same URL answers HTML or JSON depending on Accept.
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept"));
    response
}

async fn get_response(
    state: &HttpState,
    headers: &HeaderMap,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let has_query = params.as_ref().is_ok_and(|p| p.query.is_some());
    if !has_query && negotiate::wants_html(headers) {
        return graphiql::page(headers);
    }
    let Some(media) = negotiate::negotiate(headers) else {
        return not_acceptable();
    };
    let bad = |message: String| error(StatusCode::BAD_REQUEST, media, "BAD_REQUEST", message);
    let params = match params {
        Ok(Query(params)) => params,
        Err(rejection) => return bad(format!("bad query string: {}", rejection.body_text())),
    };
    let Some(query) = params.query else {
        return bad(
            "GET /graphql needs a `query` parameter (browsers asking for text/html get GraphiQL)"
                .to_owned(),
        );
    };
    let mut request = Request::new(query);
    if let Some(variables) = params.variables.filter(|v| !v.trim().is_empty()) {
        match serde_json::from_str::<Variables>(&variables) {
            Ok(variables) => request = request.variables(variables),
            Err(e) => return bad(format!("`variables` is not a JSON object: {e}")),
        }
    }
    if let Some(extensions) = params.extensions.filter(|v| !v.trim().is_empty()) {
        match serde_json::from_str(&extensions) {
            Ok(extensions) => request.extensions = extensions,
            Err(e) => return bad(format!("`extensions` is not a JSON object: {e}")),
        }
    }
    if let Some(name) = params.operation_name.filter(|n| !n.is_empty()) {
        request = request.operation_name(name);
    }
    // GET must not change anything: a mutation is refused before it runs. A document that does
    // not parse goes on, to be answered as any request error is.
    let wanted = request.operation_name.clone();
    if let Ok(document) = request.parsed_query() {
        let wanted = wanted.as_deref();
        let mutation = document.operations.iter().any(|(name, operation)| {
            operation.node.ty == OperationType::Mutation
                && (wanted.is_none() || name.map(|n| n.as_str()) == wanted)
        });
        if mutation {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                "METHOD_NOT_ALLOWED",
                "mutations are sent with POST".to_owned(),
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    run(state, headers, media, BatchRequest::Single(request)).await
}

async fn graphql_post(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Some(media) = negotiate::negotiate(&headers) else {
        return not_acceptable();
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                "REQUEST_TOO_LARGE",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(rejection) => {
            return error(
                rejection.status(),
                media,
                "BAD_REQUEST",
                rejection.body_text(),
            )
        }
    };
    // JSON bodies only: a cross-site form or `text/plain` fetch (a "simple" request a browser
    // sends without asking) can then never run a mutation.
    if !is_json(&headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST /graphql takes a JSON body with Content-Type: application/json".to_owned(),
        );
    }
    // A batch is counted before it is read into requests (each a few hundred bytes of
    // memory), so an oversized one costs nothing but the scan.
    let limits = state.edge.limits;
    if let Some(operations) = batch::length(&body, limits.max_batch_operations) {
        if operations > limits.max_batch_operations {
            return error(
                StatusCode::BAD_REQUEST,
                media,
                code::BATCH_TOO_LARGE,
                format!(
                    "a batch holds at most {} operations; this one has more",
                    limits.max_batch_operations
                ),
            );
        }
    }
    let request: BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            // Where the JSON broke, not serde's words (they name the library's types).
            let at = if e.is_syntax() || e.is_eof() {
                format!(": invalid JSON at line {}, column {}", e.line(), e.column())
            } else {
                String::new()
            };
            return error(
                StatusCode::BAD_REQUEST,
                media,
                "BAD_REQUEST",
                format!(
                    "the body is not a GraphQL request (a JSON object with a `query` string, \
                     or an array of them){at}"
                ),
            );
        }
    };
    run(&state, &headers, media, request).await
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Executes a request with the caller's identity and correlation id, and answers in the
/// negotiated media type: under `application/graphql-response+json` a single request that
/// never reached execution (it did not parse or validate) is a 400; everything else, and
/// everything under `application/json`, is a 200. Batches (outside the spec) are 200, except
/// one with more operations than allowed: a 400 before any of them runs. A batch's operations
/// share one allowance (`graphql::limits`).
async fn run(
    state: &HttpState,
    headers: &HeaderMap,
    media: Media,
    request: BatchRequest,
) -> Response {
    let allowance = match &request {
        BatchRequest::Single(_) => Allowance::single(state.edge.limits),
        BatchRequest::Batch(_) => Allowance::batch(state.edge.limits),
    };
    let meta = RequestMeta {
        principal: crate::auth::Principal::anonymous(Some(crate::auth::Role::Admin)),
        actor: header(headers, "x-actor").unwrap_or_else(|| "anonymous".to_owned()),
        correlation_id: header(headers, "x-correlation-id")
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
    };
    let span =
        tracing::info_span!("graphql", correlation_id = %meta.correlation_id, actor = %meta.actor);
    let correlation = meta.correlation_id.clone();
    let executed = Executed::default();
    let request = match request {
        BatchRequest::Single(request) => BatchRequest::Single(request.data(executed.clone())),
        batch => batch,
    };
    let mut response = state
        .schema
        .execute_batch(request.data(meta).data(allowance))
        .instrument(span)
        .await;
    match &mut response {
        BatchResponse::Single(single) => crate::graphql::prepare_errors(single, &correlation),
        BatchResponse::Batch(all) => {
            for single in all {
                crate::graphql::prepare_errors(single, &correlation);
            }
        }
    }
    // A request error (one that never reached execution) has no `data` entry at all, as the
    // GraphQL spec says; async-graphql would send `"data": null`.
    let request_error =
        matches!(&response, BatchResponse::Single(single) if single.is_err()) && !executed.get();
    let status = if request_error && media == Media::GraphqlResponseJson {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut body = serde_json::to_value(&response).unwrap_or_else(
        |e| json!({ "errors": [{ "message": format!("the response could not be encoded: {e}") }] }),
    );
    if request_error {
        if let Some(object) = body.as_object_mut() {
            object.remove("data");
        }
    }
    let mut response = (status, Json(body)).into_response();
    set_content_type(&mut response, media);
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
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
    let body = json!({
        "store": store.is_ok(),
        "projections": read.is_ok() && caught_up,
        "bus": bus,
        "caughtUp": caught_up,
    });
    let status = if store.is_ok() && read.is_ok() && bus && caught_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
