//! `GET` and `POST /graphql`. Before anything of a request is read or run: the media type it
//! wants (406), for POST a JSON body type (415: no cross-site "simple" request can reach a
//! mutation), then its caller (`admission`: 401, 429, 503); then the body within its deadline
//! (408) and size (413), a batch's length, and execution with the caller's identity. Every
//! answer carries the request's correlation id in `X-Correlation-Id`.

use async_graphql::parser::types::OperationType;
use async_graphql::{BatchRequest, BatchResponse, Request, Variables};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Query, State};
use axum::http::header::{ALLOW, CONNECTION, CONTENT_TYPE, VARY};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::net::IpAddr;
use tracing::Instrument;

use super::admission::{correlation_id, header, request_meta};
use super::negotiate::{self, Media};
use super::{batch, error, graphiql, peer_ip, set_content_type, HttpState, Peer, MAX_BODY_BYTES};
use crate::auth::Principal;
use crate::graphql::executed::Executed;
use crate::graphql::limits::{code, Allowance};

/// The parameters of `GET /graphql`, as the spec names them; `variables` and `extensions` are
/// JSON text.
#[derive(Deserialize)]
pub(super) struct GetParams {
    query: Option<String>,
    variables: Option<String>,
    #[serde(rename = "operationName")]
    operation_name: Option<String>,
    extensions: Option<String>,
}

pub(super) async fn get(
    State(state): State<HttpState>,
    headers: HeaderMap,
    peer: Peer,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let correlation = correlation_id(&headers);
    let caller = Caller::new(&state, &headers, &peer, &correlation);
    let mut response = get_response(caller, params).await;
    // The same URL answers HTML or JSON depending on Accept.
    response
        .headers_mut()
        .insert(VARY, HeaderValue::from_static("accept"));
    with_correlation(response, &correlation)
}

pub(super) async fn post(
    State(state): State<HttpState>,
    peer: Peer,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let headers = parts.headers.clone();
    let correlation = correlation_id(&headers);
    let caller = Caller::new(&state, &headers, &peer, &correlation);
    let response = post_response(caller, axum::extract::Request::from_parts(parts, body)).await;
    with_correlation(response, &correlation)
}

/// What is known of a request before its body is read.
#[derive(Clone, Copy)]
struct Caller<'a> {
    state: &'a HttpState,
    headers: &'a HeaderMap,
    peer: Option<IpAddr>,
    correlation: &'a str,
}

impl<'a> Caller<'a> {
    fn new(
        state: &'a HttpState,
        headers: &'a HeaderMap,
        peer: &Peer,
        correlation: &'a str,
    ) -> Self {
        Self {
            state,
            headers,
            peer: peer_ip(peer),
            correlation,
        }
    }

    /// The principal the request runs as, within its rate limit, or the refusal to send.
    async fn principal(&self, media: Media) -> Result<Principal, Response> {
        let admission = &self.state.edge.admission;
        let principal = admission
            .authenticate(header(self.headers, "authorization"), self.peer)
            .await
            .map_err(|refused| refused.response(media))?;
        admission
            .admit(&principal)
            .map_err(|refused| refused.response(media))?;
        Ok(principal)
    }
}

fn with_correlation(mut response: Response, correlation: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(correlation) {
        response.headers_mut().insert("x-correlation-id", value);
    }
    response
}

fn not_acceptable() -> Response {
    error(
        StatusCode::NOT_ACCEPTABLE,
        Media::Json,
        "NOT_ACCEPTABLE",
        "responses are application/graphql-response+json or application/json; the Accept header allows neither".to_owned(),
    )
}

async fn get_response(
    caller: Caller<'_>,
    params: Result<Query<GetParams>, QueryRejection>,
) -> Response {
    let headers = caller.headers;
    let has_query = params.as_ref().is_ok_and(|p| p.query.is_some());
    if !has_query && negotiate::wants_html(headers) {
        return graphiql::page(headers);
    }
    let Some(media) = negotiate::negotiate(headers) else {
        return not_acceptable();
    };
    // GraphiQL's page itself loads without credentials; what it asks for next needs them.
    let principal = match caller.principal(media).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
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
            Err(e) => {
                return bad(format!(
                    "`variables` is not a JSON object{}",
                    json_place(&e)
                ))
            }
        }
    }
    if let Some(extensions) = params.extensions.filter(|v| !v.trim().is_empty()) {
        match serde_json::from_str(&extensions) {
            Ok(extensions) => request.extensions = extensions,
            Err(e) => {
                return bad(format!(
                    "`extensions` is not a JSON object{}",
                    json_place(&e)
                ))
            }
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
    run(caller, media, BatchRequest::Single(request), principal).await
}

async fn post_response(caller: Caller<'_>, request: axum::extract::Request) -> Response {
    let Some(media) = negotiate::negotiate(caller.headers) else {
        return not_acceptable();
    };
    // JSON bodies only: a cross-site form or `text/plain` fetch (a "simple" request a browser
    // sends without asking) can then never run a mutation.
    if !is_json(caller.headers) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "UNSUPPORTED_MEDIA_TYPE",
            "POST /graphql takes a JSON body: Content-Type application/json (or \
             application/graphql-response+json)"
                .to_owned(),
        );
    }
    let principal = match caller.principal(media).await {
        Ok(principal) => principal,
        Err(refusal) => return refusal,
    };
    // The whole body within its deadline: hyper's own timeouts end at the headers, and a
    // per-read timeout (tower-http's `RequestBodyTimeout`) would let a body trickled a byte at
    // a time run on for ever.
    let deadline = caller.state.edge.body_read_timeout;
    let body = match tokio::time::timeout(deadline, Bytes::from_request(request, &())).await {
        Ok(body) => body,
        Err(_) => {
            let mut response = error(
                StatusCode::REQUEST_TIMEOUT,
                media,
                "REQUEST_TIMEOUT",
                format!(
                    "the request body did not arrive within {} ms",
                    deadline.as_millis()
                ),
            );
            // The rest of the body is never read: the connection cannot carry another request.
            response
                .headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
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
    // A batch is counted before it is read into requests (each a few hundred bytes of
    // memory), so an oversized one costs nothing but the scan.
    let limits = caller.state.edge.limits;
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
            return error(
                StatusCode::BAD_REQUEST,
                media,
                "BAD_REQUEST",
                format!(
                    "the body is not a GraphQL request (a JSON object with a `query` string, \
                     or an array of them){}",
                    json_place(&e)
                ),
            );
        }
    };
    run(caller, media, request, principal).await
}

/// Where JSON text broke, not serde's words (they name the library's types, e.g. "untagged
/// enum BatchRequest"); nothing for JSON that parsed but has the wrong shape.
fn json_place(error: &serde_json::Error) -> String {
    if error.is_syntax() || error.is_eof() {
        format!(
            ": invalid JSON at line {}, column {}",
            error.line(),
            error.column()
        )
    } else {
        String::new()
    }
}

/// A JSON body: `application/json`, or `application/graphql-response+json` as some clients
/// send it.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|media| {
            media.eq_ignore_ascii_case("application/json")
                || media.eq_ignore_ascii_case("application/graphql-response+json")
        })
}

/// Executes a request with the caller's identity and correlation id, and answers in the
/// negotiated media type: under `application/graphql-response+json` a single request that
/// never reached execution (it did not parse or validate) is a 400; everything else, and
/// everything under `application/json`, is a 200. Batches (outside the spec) are 200, except
/// one with more operations than allowed: a 400 before any of them runs. A batch's operations
/// share one allowance (`graphql::limits`).
async fn run(
    caller: Caller<'_>,
    media: Media,
    request: BatchRequest,
    principal: Principal,
) -> Response {
    let state = caller.state;
    let allowance = match &request {
        BatchRequest::Single(_) => Allowance::single(state.edge.limits),
        BatchRequest::Batch(_) => Allowance::batch(state.edge.limits),
    };
    let meta = request_meta(principal, caller.headers, caller.correlation.to_owned());
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
    response
}
