//! The GraphiQL page and its assets, all served by the service itself: build.rs bundles
//! web/graphiql (the npm `graphiql` package, React, graphql-ws) and this module embeds the
//! result, so GraphiQL works with no network but the service. The page goes out with a
//! Content-Security-Policy that lets it load scripts, workers and styles from here only and talk
//! only to this origin (HTTP and WebSocket), and refuses framing.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use super::embedded::{self, Bundle};

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/graphiql_assets.rs"));
}

pub const BUNDLE: Bundle = Bundle {
    build_id: bundle::BUILD_ID,
    assets: bundle::ASSETS,
};

/// Where the assets are served; the build id in the path lets browsers cache them forever.
pub const ASSET_ROUTE: &str = "/graphql/assets/{build}/{file}";

fn page_html() -> String {
    let base = format!("/graphql/assets/{}", BUNDLE.build_id);
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

/// The policy sent with the page. Scripts only from here and none inline; Monaco (GraphiQL's
/// editor) runs its workers from here and injects `<style>` elements, hence `worker-src 'self'`
/// and `style-src 'unsafe-inline'` (styles cannot run code).
pub fn content_security_policy(headers: &HeaderMap) -> String {
    format!(
        "default-src 'none'; script-src 'self'; worker-src 'self'; \
         style-src 'self' 'unsafe-inline'; font-src 'self' data:; img-src 'self' data:; \
         {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        embedded::connect_src(headers)
    )
}

/// `GET /graphql` from a browser.
pub fn page(headers: &HeaderMap) -> Response {
    embedded::page(page_html(), &content_security_policy(headers))
}

/// One bundled file.
pub async fn asset(Path((build, file)): Path<(String, String)>) -> Response {
    BUNDLE.asset(&build, &file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::HOST;
    use axum::http::HeaderValue;

    #[test]
    fn the_page_loads_only_bundled_assets() {
        let html = page_html();
        for file in ["graphiql.js", "graphiql.css"] {
            assert!(
                html.contains(&format!("/graphql/assets/{}/{file}", BUNDLE.build_id)),
                "{html}"
            );
            assert!(BUNDLE.has(file), "{file}");
        }
        assert!(
            !html.contains("http"),
            "no absolute URL in the page: {html}"
        );
        // Monaco's workers are bundled beside the script.
        for worker in ["editor.worker.js", "json.worker.js", "graphql.worker.js"] {
            assert!(BUNDLE.has(worker), "{worker}");
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
