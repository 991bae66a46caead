//! Which `Host` a request may name. A service on loopback is reachable from any page the
//! user's browser opens, through DNS rebinding (`evil.example` re-resolved to 127.0.0.1 after
//! the page loaded): the browser then sends `Host: evil.example`, which is how it is told
//! apart. So on a loopback address only `localhost`, `127.0.0.1`, `[::1]`, the listen address
//! itself and the names given with `--allowed-host` pass (any port); elsewhere every name
//! passes unless `--allowed-host` names some. Refused: 421 with code HOST_NOT_ALLOWED.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;
use std::sync::Arc;

use super::negotiate::Media;

const LOOPBACK_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];

/// The host names requests may carry; `None`: any.
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    names: Option<Arc<Vec<String>>>,
}

impl AllowedHosts {
    /// Any host (tests, and a default `Edge`).
    pub fn any() -> Self {
        Self::default()
    }

    /// The names for a service listening on `listen`, with `extra` from `--allowed-host`.
    pub fn new(listen: SocketAddr, extra: &[String]) -> Self {
        let extra: Vec<String> = extra
            .iter()
            .map(|name| normalise(name))
            .filter(|name| !name.is_empty())
            .collect();
        if !listen.ip().is_loopback() && extra.is_empty() {
            return Self::any();
        }
        let own = match listen {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        let mut names: Vec<String> = LOOPBACK_NAMES.iter().map(|n| (*n).to_owned()).collect();
        names.push(own);
        names.extend(extra);
        names.sort();
        names.dedup();
        Self {
            names: Some(Arc::new(names)),
        }
    }

    /// Whether a request naming `host` (a `Host` header, port included or not) may pass.
    pub fn allows(&self, host: Option<&str>) -> bool {
        let Some(names) = &self.names else {
            return true;
        };
        host.map(normalise)
            .is_some_and(|host| names.contains(&host))
    }
}

/// A host without its port or a final dot, lower case: `Localhost.:8080` → `localhost`,
/// `[::1]:8080` → `[::1]`.
fn normalise(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host.as_str(),
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
            _ => host.as_str(),
        }
    };
    name.trim_end_matches('.').to_owned()
}

/// Refuses a request whose host is not allowed, before anything else looks at it.
pub async fn only_allowed(
    State(hosts): State<AllowedHosts>,
    request: Request,
    next: Next,
) -> Response {
    // HTTP/1.1 sends `Host`; an absolute-form request line carries the authority instead.
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.as_str().to_owned()));
    if hosts.allows(host.as_deref()) {
        return next.run(request).await;
    }
    super::error(
        StatusCode::MISDIRECTED_REQUEST,
        Media::Json,
        "HOST_NOT_ALLOWED",
        "this service does not answer for that host name; add it with --allowed-host \
         (INVENTORY_ALLOWED_HOSTS) if it is the service's own"
            .to_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loopback() -> SocketAddr {
        "127.0.0.1:8080".parse().expect("address")
    }

    #[test]
    fn on_loopback_only_loopback_names_and_configured_ones_pass() {
        let hosts = AllowedHosts::new(loopback(), &["inventory.local".into()]);
        for host in [
            "localhost",
            "localhost:8080",
            "LOCALHOST.:1",
            "127.0.0.1:8080",
            "[::1]:8080",
            "inventory.local:8080",
        ] {
            assert!(hosts.allows(Some(host)), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "127.0.0.2",
            "",
            "[::2]",
        ] {
            assert!(!hosts.allows(Some(host)), "{host}");
        }
        assert!(!hosts.allows(None));
    }

    #[test]
    fn elsewhere_every_name_passes_unless_some_are_configured() {
        let public: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        assert!(AllowedHosts::new(public, &[]).allows(Some("anything.example")));
        assert!(AllowedHosts::new(public, &[]).allows(None));
        let named = AllowedHosts::new(public, &["api.example.com".into()]);
        assert!(named.allows(Some("api.example.com:443")));
        assert!(named.allows(Some("localhost:8080")));
        assert!(!named.allows(Some("evil.example")));
    }

    #[test]
    fn the_listen_address_itself_passes() {
        let other: SocketAddr = "127.0.0.5:9000".parse().expect("address");
        assert!(AllowedHosts::new(other, &[]).allows(Some("127.0.0.5:9000")));
        let v6: SocketAddr = "[::1]:9000".parse().expect("address");
        assert!(AllowedHosts::new(v6, &[]).allows(Some("[::1]:9000")));
    }
}
