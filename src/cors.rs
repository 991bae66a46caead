//! Cross-origin access: none by default; `--cors-origin` names the origins (a dashboard served
//! elsewhere) whose browsers may call the API. tower-http's `CorsLayer` answers their
//! preflights and adds the headers (a maintained implementation of the fetch standard's rules,
//! rather than our own); in front of it, requests from any other origin get no CORS header at
//! all, and their preflights a plain 403. WebSockets have no preflight, so the upgrade checks
//! `Origin` against the same list (`allows_socket`); the service's own origin is always fine.

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a cross-origin client may send.
const ALLOWED_HEADERS: [&str; 5] = [
    "content-type",
    "accept",
    "authorization",
    "x-api-key",
    "x-correlation-id",
];

/// The origins allowed cross-origin access.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    allowed: Arc<Vec<HeaderValue>>,
}

/// Why an origin given on the command line is not one.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not an origin: give scheme://host[:port], e.g. https://dashboard.example.com")]
pub struct NotAnOrigin(String);

impl Origins {
    /// Parses `scheme://host[:port]` origins (no path, no trailing slash).
    pub fn parse(origins: &[String]) -> Result<Self, NotAnOrigin> {
        let mut allowed = Vec::new();
        for origin in origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()) {
            let valid = origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https")
                    && !rest.is_empty()
                    && !rest.contains(['/', '?', '#', '@', ' '])
            });
            match HeaderValue::from_str(origin) {
                Ok(value) if valid => allowed.push(value),
                _ => return Err(NotAnOrigin(origin.to_owned())),
            }
        }
        Ok(Self {
            allowed: Arc::new(allowed),
        })
    }

    fn contains(&self, origin: &HeaderValue) -> bool {
        self.allowed.iter().any(|allowed| allowed == origin)
    }

    /// Whether a WebSocket may open: no `Origin` (not a browser), the service's own origin
    /// (its authority is the request's `Host`), or a configured one.
    pub fn allows_socket(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        if self.contains(origin) {
            return true;
        }
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let authority = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, authority)| authority);
        matches!((host, authority), (Some(host), Some(authority)) if host.eq_ignore_ascii_case(authority))
    }

    /// The CORS layer for the configured origins (`None` without any: no cross-origin access).
    pub fn layer(&self) -> Option<CorsLayer> {
        if self.allowed.is_empty() {
            return None;
        }
        let headers: Vec<HeaderName> = ALLOWED_HEADERS
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect();
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(self.allowed.iter().cloned()))
                .allow_methods([Method::GET, Method::POST])
                .allow_headers(headers)
                .expose_headers([HeaderName::from_static("x-correlation-id")])
                .max_age(Duration::from_secs(600)),
        )
    }
}

/// In front of the CORS layer: a request from an origin not configured gets no CORS header
/// and, if it is a preflight, a 403.
pub async fn only_configured(
    State(origins): State<Origins>,
    request: Request,
    next: Next,
) -> Response {
    let foreign = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| !origins.contains(origin));
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if foreign && preflight {
        return (
            StatusCode::FORBIDDEN,
            "cross-origin requests from this origin are not allowed",
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    if foreign {
        let cors: Vec<HeaderName> = response
            .headers()
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            response.headers_mut().remove(name);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = value.parse() {
                map.insert(*name, value);
            }
        }
        map
    }

    #[test]
    fn origins_are_scheme_host_and_port_only() {
        assert!(Origins::parse(&["https://dash.example.com".into()]).is_ok());
        assert!(Origins::parse(&["http://localhost:5173".into()]).is_ok());
        for bad in [
            "dash.example.com",
            "https://dash.example.com/",
            "ftp://x",
            "https://",
        ] {
            assert!(Origins::parse(&[bad.into()]).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn a_socket_opens_from_its_own_origin_or_a_configured_one_only() {
        let origins = Origins::parse(&["https://dash.example.com".into()]).unwrap();
        assert!(origins.allows_socket(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(origins.allows_socket(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(origins.allows_socket(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "https://dash.example.com")
        ])));
        assert!(!origins.allows_socket(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!Origins::default().allows_socket(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:9090")
        ])));
    }
}
