//! The GraphiQL page and its assets, all served by the service itself: build.rs bundles
//! web/graphiql (the npm `graphiql` package, React, graphql-ws) and this module embeds the
//! result, so GraphiQL works with no network but the service. The page goes out with a
//! Content-Security-Policy that lets it load scripts, workers and styles from here only and talk
//! only to this origin (HTTP and WebSocket), and refuses framing.

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/graphiql_assets.rs"));
}
pub use bundle::{ASSETS, BUILD_ID};

/// Where the assets are served; the build id in the path lets browsers cache them forever.
pub const ASSET_ROUTE: &str = "/graphql/assets/{build}/{file}";

fn page_html() -> String {
    let base = format!("/graphql/assets/{BUILD_ID}");
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Inventory service · GraphiQL</title>\n\
         <link rel=\"stylesheet\" href=\"{base}/graphiql.css\">\n\
         <script type=\"module\" src=\"{base}/graphiql.js\"></script>\n\
         </head>\n<body>\n<div id=\"graphiql\">Loading GraphiQL…</div>\n\
         <noscript>GraphiQL needs JavaScript.</noscript>\n</body>\n</html>\n"
    )
}

/// The `Host` the page was asked for, if it is a plain host[:port] (it goes into the CSP).
fn plain_host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(HOST)?.to_str().ok()?;
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
    plain.then_some(host)
}

/// The policy sent with the page. Scripts only from here and none inline; Monaco (GraphiQL's
/// editor) runs its workers from here and injects `<style>` elements, hence `worker-src 'self'`
/// and `style-src 'unsafe-inline'` (styles cannot run code). WebSocket URLs are named as well as
/// `'self'`, which not every browser lets cover ws:/wss:.
pub fn content_security_policy(headers: &HeaderMap) -> String {
    let sockets = plain_host(headers)
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    format!(
        "default-src 'none'; script-src 'self'; worker-src 'self'; \
         style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
         connect-src 'self'{sockets}; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

/// `GET /graphql` from a browser.
pub fn page(headers: &HeaderMap) -> Response {
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], page_html()).into_response();
    let out = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(headers)) {
        out.insert("content-security-policy", csp);
    }
    out.insert("x-frame-options", HeaderValue::from_static("DENY"));
    out.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    out.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    out.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One bundled file. A stale build id (a page from before a restart) still gets the file,
/// but not the cache-forever header.
pub async fn asset(Path((build, file)): Path<(String, String)>) -> Response {
    let Some((_, kind, bytes)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let cache = if build == BUILD_ID {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        [
            (CONTENT_TYPE, *kind),
            (CACHE_CONTROL, cache),
            (axum::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        *bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_bundled_assets() {
        let html = page_html();
        for file in ["graphiql.js", "graphiql.css"] {
            assert!(
                html.contains(&format!("/graphql/assets/{BUILD_ID}/{file}")),
                "{html}"
            );
            assert!(ASSETS.iter().any(|(name, _, _)| *name == file), "{file}");
        }
        assert!(
            !html.contains("http"),
            "no absolute URL in the page: {html}"
        );
        // Monaco's workers are bundled beside the script.
        for worker in ["editor.worker.js", "json.worker.js", "graphql.worker.js"] {
            assert!(
                ASSETS.iter().any(|(name, _, _)| *name == worker),
                "{worker}"
            );
        }
    }

    #[test]
    fn the_policy_names_this_host_only_when_it_is_plain() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let csp = content_security_policy(&headers);
        assert!(csp.contains("connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080;"));
        assert!(csp.contains("script-src 'self';"));
        assert!(csp.contains("frame-ancestors 'none'"));
        headers.insert(HOST, HeaderValue::from_static("evil; script-src *"));
        assert!(content_security_policy(&headers).contains("connect-src 'self';"));
    }
}
