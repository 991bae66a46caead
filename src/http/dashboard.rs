//! The live inventory dashboard at `/`: build.rs bundles web/dashboard (React, urql,
//! graphql-ws) and this module embeds it, so the page and everything it loads come from the
//! service. The page is a client of the public GraphQL API like any other (it authenticates
//! the same way and sees only what its principal may); its policy lets it load scripts and
//! styles from here only, none inline, and talk only to this origin.

use axum::extract::Path;
use axum::http::HeaderMap;
use axum::response::Response;

use super::embedded::{self, Bundle};

mod bundle {
    include!(concat!(env!("OUT_DIR"), "/dashboard_assets.rs"));
}

pub const BUNDLE: Bundle = Bundle {
    build_id: bundle::BUILD_ID,
    assets: bundle::ASSETS,
};

/// Where the assets are served; the build id in the path lets browsers cache them forever.
pub const ASSET_ROUTE: &str = "/dashboard/assets/{build}/{file}";

fn page_html() -> String {
    let base = format!("/dashboard/assets/{}", BUNDLE.build_id);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>Inventory dashboard</title>\n\
         <link rel=\"stylesheet\" href=\"{base}/dashboard.css\">\n\
         <script type=\"module\" src=\"{base}/dashboard.js\"></script>\n\
         </head>\n<body>\n<div id=\"dashboard\">Loading the dashboard…</div>\n\
         <noscript>The dashboard needs JavaScript; the API is at /graphql.</noscript>\n\
         </body>\n</html>\n"
    )
}

/// Scripts and styles from here only (React sets styles through the CSSOM, which needs no
/// `'unsafe-inline'`), no workers, no images but our own.
pub fn content_security_policy(headers: &HeaderMap) -> String {
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        embedded::connect_src(headers)
    )
}

/// `GET /`.
pub async fn page(headers: HeaderMap) -> Response {
    embedded::page(page_html(), &content_security_policy(&headers))
}

/// One bundled file.
pub async fn asset(Path((build, file)): Path<(String, String)>) -> Response {
    BUNDLE.asset(&build, &file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_bundled_assets() {
        let html = page_html();
        for file in ["dashboard.js", "dashboard.css"] {
            assert!(
                html.contains(&format!("/dashboard/assets/{}/{file}", BUNDLE.build_id)),
                "{html}"
            );
            assert!(BUNDLE.has(file), "{file}");
        }
        assert!(
            !html.contains("http"),
            "no absolute URL in the page: {html}"
        );
        let csp = content_security_policy(&HeaderMap::new());
        assert!(
            csp.contains("script-src 'self';") && !csp.contains("unsafe"),
            "{csp}"
        );
    }
}
