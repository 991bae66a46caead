//! GraphQL over HTTP as its spec describes it, against the real server: queries by GET,
//! mutations refused by GET with 405, content negotiation between
//! `application/graphql-response+json` (400 for requests that fail to parse or validate) and
//! legacy `application/json` (200), and the self-hosted GraphiQL page with its policy headers
//! and assets, for browsers only.

mod common;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use serde_json::{json, Value};

const SPEC: &str = "application/graphql-response+json";

struct Answer {
    status: StatusCode,
    content_type: String,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.expect("body");
    Answer {
        status,
        content_type,
        headers,
        body,
    }
}

fn get(
    server: &common::Server,
    params: &[(&str, &str)],
    accept: Option<&str>,
) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .get(format!("{}/graphql", server.url))
        .query(params);
    match accept {
        Some(accept) => request.header(ACCEPT, accept),
        None => request,
    }
}

fn post(server: &common::Server, body: Value, accept: Option<&str>) -> reqwest::RequestBuilder {
    let request = reqwest::Client::new()
        .post(format!("{}/graphql", server.url))
        .json(&body);
    match accept {
        Some(accept) => request.header(ACCEPT, accept),
        None => request,
    }
}

#[tokio::test]
async fn queries_by_get_with_variables_and_operation_name() {
    let server = common::Server::start().await;
    let warehouse = server.create_warehouse("GET-1").await;
    // Queries read the projection, which follows the commit within milliseconds.
    server
        .eventually(
            "query($id: ID!) { warehouse(id: $id) { code } }",
            json!({ "id": warehouse }),
            |data| data["warehouse"]["code"] == "GET-1",
        )
        .await;
    let query = "query Other { __typename } query One($id: ID!) { warehouse(id: $id) { code } }";
    let variables = json!({ "id": warehouse }).to_string();
    for accept in [None, Some("application/json"), Some(SPEC)] {
        let answer = send(get(
            &server,
            &[
                ("query", query),
                ("variables", &variables),
                ("operationName", "One"),
            ],
            accept,
        ))
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        assert_eq!(answer.json()["data"]["warehouse"]["code"], "GET-1");
        let expected = if accept == Some(SPEC) {
            SPEC
        } else {
            "application/json"
        };
        assert!(
            answer.content_type.starts_with(expected),
            "{accept:?}: {}",
            answer.content_type
        );
        assert!(answer.headers.contains_key("x-correlation-id"));
    }
}

#[tokio::test]
async fn a_mutation_by_get_is_405_and_changes_nothing() {
    let server = common::Server::start().await;
    let mutation = "mutation { warehouseCreate(input: {name: \"W\", code: \"VIA-GET\"}) { warehouse { id } } }";
    let answer = send(get(&server, &[("query", mutation)], Some(SPEC))).await;
    assert_eq!(
        answer.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        answer.body
    );
    assert_eq!(
        answer.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    // Also when the mutation is picked by name from a document that has a query too.
    let document = format!(
        "query Q {{ __typename }} {}",
        mutation.replacen("mutation", "mutation M", 1)
    );
    let answer = send(get(
        &server,
        &[("query", &document), ("operationName", "M")],
        None,
    ))
    .await;
    assert_eq!(
        answer.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        answer.body
    );
    let answer = send(get(
        &server,
        &[("query", &document), ("operationName", "Q")],
        None,
    ))
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    // Nothing was created: the code is still free.
    let created = server.create_warehouse("VIA-GET").await;
    assert!(!created.is_empty());
}

#[tokio::test]
async fn request_errors_are_400_under_the_spec_type_and_200_under_legacy_json() {
    let server = common::Server::start().await;
    let cases = [
        ("{ notAField }", "validation"),
        ("{ unclosed ", "parse"),
        (
            "query A { __typename } query B { __typename }",
            "operation not chosen",
        ),
    ];
    for (query, what) in cases {
        let spec = send(post(&server, json!({ "query": query }), Some(SPEC))).await;
        assert_eq!(
            spec.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            spec.body
        );
        assert!(
            spec.content_type.starts_with(SPEC),
            "{what}: {}",
            spec.content_type
        );
        let body = spec.json();
        assert!(body["errors"][0]["message"].is_string(), "{what}: {body}");
        assert!(
            body.get("data").is_none(),
            "a request error has no data entry: {body}"
        );

        let legacy = send(post(
            &server,
            json!({ "query": query }),
            Some("application/json"),
        ))
        .await;
        assert_eq!(legacy.status, StatusCode::OK, "{what}: {}", legacy.body);
        assert!(legacy.content_type.starts_with("application/json"));
        assert!(legacy.json()["errors"][0]["message"].is_string());

        let by_get = send(get(&server, &[("query", query)], Some(SPEC))).await;
        assert_eq!(
            by_get.status,
            StatusCode::BAD_REQUEST,
            "{what} by GET: {}",
            by_get.body
        );
    }
}

#[tokio::test]
async fn execution_errors_are_200_with_data_under_both_types() {
    let server = common::Server::start().await;
    // Well-formed and valid, but the id is malformed: an error raised while executing.
    let query = "{ inventoryItem(id: \"not-an-id\") { id } }";
    for accept in ["application/json", SPEC] {
        let answer = send(post(&server, json!({ "query": query }), Some(accept))).await;
        assert_eq!(answer.status, StatusCode::OK, "{accept}: {}", answer.body);
        let body = answer.json();
        assert!(body["errors"][0]["message"].is_string(), "{body}");
        assert!(body.get("data").is_some(), "{body}");
    }
}

#[tokio::test]
async fn accept_negotiation_and_malformed_requests() {
    let server = common::Server::start().await;
    let ok = json!({ "query": "{ __typename }" });
    // Preference by q; wildcards mean legacy JSON.
    let answer = send(post(
        &server,
        ok.clone(),
        Some("application/json;q=0.5, application/graphql-response+json"),
    ))
    .await;
    assert!(
        answer.content_type.starts_with(SPEC),
        "{}",
        answer.content_type
    );
    let answer = send(post(&server, ok.clone(), Some("*/*"))).await;
    assert!(
        answer.content_type.starts_with("application/json"),
        "{}",
        answer.content_type
    );
    // Neither type acceptable.
    let answer = send(post(&server, ok.clone(), Some("text/plain"))).await;
    assert_eq!(answer.status, StatusCode::NOT_ACCEPTABLE, "{}", answer.body);
    // GET without a query, not from a browser.
    let answer = send(get(&server, &[], Some(SPEC))).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    // Variables that are not a JSON object.
    let answer = send(get(
        &server,
        &[("query", "{ __typename }"), ("variables", "[1")],
        None,
    ))
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.body);
    // POST keeps its body checks, answered in the negotiated type.
    let answer = send(
        reqwest::Client::new()
            .post(format!("{}/graphql", server.url))
            .header(ACCEPT, SPEC)
            .header(CONTENT_TYPE, "application/json")
            .body("{ not json"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(
        answer.content_type.starts_with(SPEC),
        "{}",
        answer.content_type
    );
    assert_eq!(
        answer.json()["errors"][0]["extensions"]["code"],
        "BAD_REQUEST"
    );
}

#[tokio::test]
async fn a_post_without_a_json_content_type_is_refused_and_runs_nothing() {
    let server = common::Server::start().await;
    let mutation = json!({
        "query": "mutation { warehouseCreate(input: {name: \"W\", code: \"CSRF\"}) { warehouse { id } } }"
    })
    .to_string();
    // What a cross-site form or no-preflight fetch can send.
    for content_type in ["text/plain", "application/x-www-form-urlencoded"] {
        let answer = send(
            reqwest::Client::new()
                .post(format!("{}/graphql", server.url))
                .header(CONTENT_TYPE, content_type)
                .body(mutation.clone()),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}"
        );
        assert_eq!(
            answer.json()["errors"][0]["extensions"]["code"],
            "UNSUPPORTED_MEDIA_TYPE"
        );
    }
    // The code is still free, so nothing ran.
    assert!(!server.create_warehouse("CSRF").await.is_empty());
}

#[tokio::test]
async fn graphiql_is_served_to_browsers_with_its_own_assets_and_a_strict_policy() {
    let server = common::Server::start().await;
    let browser = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let page = send(get(&server, &[], Some(browser))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    let header = |name: &str| {
        page.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let csp = header("content-security-policy");
    assert!(csp.contains("script-src 'self';"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let host = server.url.trim_start_matches("http://");
    assert!(
        csp.contains(&format!("connect-src 'self' ws://{host} wss://{host};")),
        "{csp}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(
        !page.body.contains("https://"),
        "nothing from elsewhere: {}",
        page.body
    );

    // Every script and stylesheet the page names is served here, with the right type.
    let assets: Vec<&str> = page
        .body
        .split('"')
        .filter(|part| part.starts_with("/graphql/assets/"))
        .collect();
    assert_eq!(assets.len(), 2, "{}", page.body);
    for asset in assets {
        let answer = send(reqwest::Client::new().get(format!("{}{asset}", server.url))).await;
        assert_eq!(answer.status, StatusCode::OK, "{asset}");
        let expected = if asset.ends_with(".js") {
            "text/javascript"
        } else {
            "text/css"
        };
        assert!(
            answer.content_type.starts_with(expected),
            "{asset}: {}",
            answer.content_type
        );
        assert!(
            answer.body.len() > 10_000,
            "{asset} is {} bytes",
            answer.body.len()
        );
        assert!(
            !answer.body.contains("cdn.jsdelivr") && !answer.body.contains("unpkg.com"),
            "{asset}"
        );
    }
    let missing =
        send(reqwest::Client::new().get(format!("{}/graphql/assets/x/nope.js", server.url))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // A browser with a query parameter gets the result, not the page.
    let answer = send(get(&server, &[("query", "{ __typename }")], Some(browser))).await;
    assert_eq!(
        answer.json()["data"]["__typename"],
        "Query",
        "{}",
        answer.body
    );
}

/// A syntax error says where and what was expected, with the correlation id to quote, and does
/// not echo a long query back.
#[tokio::test]
async fn a_syntax_error_names_its_place_without_echoing_the_query() {
    // Queries this long are refused unread by default (QUERY_TOO_LARGE); with the limit
    // raised, they are parsed, and a syntax error is still not echoed.
    let data = tempfile::tempdir().expect("temp dir");
    let server =
        common::Server::start_with(data.path(), &[("INVENTORY_MAX_QUERY_BYTES", "1048576")]).await;
    let query = format!(
        "{{ warehouses {{ edges {{ node {{ id }} }} }} {}",
        "x".repeat(100_000)
    );
    let answer = send(
        post(&server, json!({ "query": query }), Some("application/json"))
            .header("x-correlation-id", "probe-42"),
    )
    .await;
    let error = &answer.json()["errors"][0];
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.starts_with("syntax error at line:column 1:"),
        "{message}"
    );
    assert!(message.len() < 300, "{} characters", message.len());
    assert!(!message.contains("xxxx"), "the query is echoed: {message}");
    assert_eq!(error["extensions"]["correlationId"], "probe-42");
    assert!(
        answer.body.len() < 1_000,
        "{} bytes back",
        answer.body.len()
    );
}

/// A body that is not a GraphQL request is told so in the API's words, not the library's.
#[tokio::test]
async fn a_body_that_is_not_a_request_is_answered_without_internal_type_names() {
    let server = common::Server::start().await;
    for body in [json!({ "query": 5 }), json!([1, 2]), json!("text")] {
        let answer = send(post(&server, body.clone(), Some("application/json"))).await;
        assert_eq!(answer.status, reqwest::StatusCode::BAD_REQUEST, "{body}");
        let message = answer.json()["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            message.starts_with("the body is not a GraphQL request"),
            "{message}"
        );
        assert!(
            !message.contains("untagged") && !message.contains("BatchRequest"),
            "{message}"
        );
    }
}
