//! What the two pages build.rs bundles into the binary have in common (the GraphiQL page at
//! /graphql, the dashboard at /): serving a bundled file under a URL carrying the build id
//! (cacheable forever), and sending the page itself with its Content-Security-Policy and the
//! headers that keep it out of frames and sniffing.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One bundle: its build id (a hash of its files) and its files.
pub struct Bundle {
    pub build_id: &'static str,
    /// (file name, content type, bytes) of each bundled file.
    pub assets: &'static [(&'static str, &'static str, &'static [u8])],
}

impl Bundle {
    #[cfg(test)]
    pub fn has(&self, file: &str) -> bool {
        self.assets.iter().any(|(name, _, _)| *name == file)
    }

    /// One bundled file. A stale build id (a page from before a restart) still gets the file,
    /// but not the cache-forever header.
    pub fn asset(&self, build: &str, file: &str) -> Response {
        let Some((_, kind, bytes)) = self.assets.iter().find(|(name, _, _)| *name == file) else {
            return (StatusCode::NOT_FOUND, "no such asset").into_response();
        };
        let cache = if build == self.build_id {
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

/// `connect-src` for a page that talks to this origin only, over HTTP and WebSocket: the
/// WebSocket URLs are named as well as `'self'`, which not every browser lets cover ws:/wss:.
pub fn connect_src(headers: &HeaderMap) -> String {
    let sockets = plain_host(headers)
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    format!("connect-src 'self'{sockets}")
}

/// An HTML page with its policy, never framed, never cached without asking.
pub fn page(html: String, content_security_policy: &str) -> Response {
    let mut response = ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response();
    let out = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(content_security_policy) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_sources_name_this_host_only_when_it_is_plain() {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        assert_eq!(
            connect_src(&headers),
            "connect-src 'self' ws://127.0.0.1:8080 wss://127.0.0.1:8080"
        );
        headers.insert(HOST, HeaderValue::from_static("evil; script-src *"));
        assert_eq!(connect_src(&headers), "connect-src 'self'");
    }
}
