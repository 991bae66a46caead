//! The HTTP edge: `POST /graphql` (with a body limit answered as a GraphQL error), GraphiQL on
//! `GET /graphql`, subscriptions on `/graphql/ws` (graphql-transport-ws and graphql-ws), and
//! health probes. Each request gets a correlation id that flows into event metadata.

use async_graphql::http::GraphiQLSource;
use async_graphql_axum::GraphQLSubscription;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tracing::Instrument;

use crate::graphql::{AppContext, InventorySchema, RequestMeta};

/// Largest request body accepted: far above any real operation, far below a memory problem.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
const HEADER_VALUE_MAX: usize = 128;

#[derive(Clone)]
struct HttpState {
    schema: InventorySchema,
    app: AppContext,
}

pub fn router(schema: InventorySchema, app: AppContext) -> Router {
    Router::new()
        .route("/graphql", get(graphiql).post(graphql))
        .route_service("/graphql/ws", GraphQLSubscription::new(schema.clone()))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(HttpState { schema, app })
}

async fn graphiql() -> Html<String> {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .subscription_endpoint("/graphql/ws")
            .title("Inventory service")
            .finish(),
    )
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({ "errors": [{ "message": message, "extensions": { "code": code } }] })),
    )
        .into_response()
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.len() <= HEADER_VALUE_MAX)
        .map(str::to_owned)
}

async fn graphql(
    State(state): State<HttpState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "REQUEST_TOO_LARGE",
                format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(rejection) => return error(rejection.status(), "BAD_REQUEST", rejection.body_text()),
    };
    let request: async_graphql::BatchRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("the body is not a GraphQL request: {e}"),
            )
        }
    };
    let meta = RequestMeta {
        actor: header(&headers, "x-actor").unwrap_or_else(|| "anonymous".to_owned()),
        correlation_id: header(&headers, "x-correlation-id")
            .unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
    };
    let span =
        tracing::info_span!("graphql", correlation_id = %meta.correlation_id, actor = %meta.actor);
    let correlation = meta.correlation_id.clone();
    let response = state
        .schema
        .execute_batch(request.data(meta))
        .instrument(span)
        .await;
    let mut response = Json(response).into_response();
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}

async fn metrics_text() -> Response {
    match crate::metrics::handle() {
        Some(handle) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
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
    let body = json!({ "store": store.is_ok(), "projections": read.is_ok(), "bus": bus });
    let status = if store.is_ok() && read.is_ok() && bus {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
