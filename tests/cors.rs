//! Cross-origin access through a real server: a configured origin's preflight is answered and
//! its requests carry the CORS headers; any other origin gets none, its preflight a 403, and
//! with no origin configured nothing cross-origin is allowed.

mod common;

use reqwest::header::{HeaderMap, ACCESS_CONTROL_ALLOW_ORIGIN};

const DASHBOARD: &str = "https://dash.example.com";

fn cors_headers(headers: &HeaderMap) -> Vec<String> {
    headers
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect()
}

async fn preflight(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, format!("{url}/graphql"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .send()
        .await
        .expect("preflight")
}

async fn post_from(url: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .header("origin", origin)
        .json(&serde_json::json!({"query": "{ __typename }"}))
        .send()
        .await
        .expect("post")
}

#[tokio::test]
async fn a_configured_origin_is_answered_and_any_other_gets_no_cors_header() {
    let temp = tempfile::tempdir().expect("temp dir");
    let server = common::Server::start_with(
        temp.path(),
        &[(
            "INVENTORY_CORS_ORIGINS",
            "https://dash.example.com,http://localhost:5173",
        )],
    )
    .await;

    let answer = preflight(&server.url, DASHBOARD).await;
    assert!(answer.status().is_success(), "{}", answer.status());
    assert_eq!(
        answer
            .headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap_or("")),
        Some(DASHBOARD)
    );
    let methods = answer
        .headers()
        .get("access-control-allow-methods")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(methods.contains("POST"), "allowed methods: {methods}");
    let post = post_from(&server.url, DASHBOARD).await;
    assert_eq!(
        post.headers()
            .get(ACCESS_CONTROL_ALLOW_ORIGIN)
            .map(|v| v.to_str().unwrap_or("")),
        Some(DASHBOARD)
    );

    let foreign = preflight(&server.url, "http://evil.example").await;
    assert_eq!(foreign.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(
        cors_headers(foreign.headers()).is_empty(),
        "{:?}",
        foreign.headers()
    );
    let post = post_from(&server.url, "http://evil.example").await;
    assert!(
        cors_headers(post.headers()).is_empty(),
        "{:?}",
        post.headers()
    );
}

#[tokio::test]
async fn with_no_origin_configured_nothing_cross_origin_is_allowed() {
    let server = common::Server::start().await;
    let answer = preflight(&server.url, DASHBOARD).await;
    assert_eq!(answer.status(), reqwest::StatusCode::FORBIDDEN);
    assert!(cors_headers(answer.headers()).is_empty());
    let post = post_from(&server.url, DASHBOARD).await;
    assert!(cors_headers(post.headers()).is_empty());
}
