//! Who is let in at the edge, over HTTP and WebSocket alike: the credentials
//! (`Authorization: Bearer …`, or a socket's `connection_init` `authorization`) become a
//! principal through the `Authenticator`; no credentials where anonymous access is off, or
//! credentials that prove nothing, are refused before anything runs; a principal over its rate
//! limit waits, and so does an address that failed to authenticate too often. The audit fields
//! come from here too: the actor is the principal (`X-Actor` only for one that may act for
//! others), and `X-Correlation-Id` is kept only when it is a bounded token.

use axum::http::header::{RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use std::net::IpAddr;
use std::time::Duration;

use super::negotiate::Media;
use super::rate::RateLimits;
use crate::auth::{Authenticator, Denied, Principal, Refusal};
use crate::graphql::RequestMeta;

/// Codes of the refusals made here.
pub mod code {
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
}

/// Why a caller was not let in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// No credentials where they are needed, ones that prove nothing, or a principal that may
    /// not do this.
    Denied(Denied),
    /// The key store could not be asked; retry later.
    Unavailable,
    /// Over a rate limit; retry after this long.
    RateLimited(Duration),
}

impl Refused {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Denied(denied) => denied.code(),
            Self::Unavailable => code::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) => code::RATE_LIMITED,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Self::Denied(denied) => denied.to_string(),
            Self::Unavailable => {
                "the credentials could not be checked (the key store is unavailable); retry later"
                    .to_owned()
            }
            Self::RateLimited(_) => format!(
                "too many requests; retry in {} s",
                self.retry_after_secs().unwrap_or(1)
            ),
        }
    }

    /// Whole seconds to wait, rounded up (at least 1), for `Retry-After`.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited(wait) => Some(wait.as_secs_f64().ceil().max(1.0) as u64),
            Self::Unavailable => Some(1),
            Self::Denied(_) => None,
        }
    }

    /// The HTTP answer: 401 with `WWW-Authenticate: Bearer`, 403, 429 or 503 with
    /// `Retry-After`, each with a GraphQL error body.
    pub fn response(&self, media: Media) -> Response {
        let status = match self {
            Self::Denied(Denied::Unauthenticated(_)) => StatusCode::UNAUTHORIZED,
            Self::Denied(Denied::Forbidden(_)) => StatusCode::FORBIDDEN,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        let mut response = super::error(status, media, self.code(), self.message());
        let headers = response.headers_mut();
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after_secs() {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// The authenticator and the rate limits, shared by every request and socket.
#[derive(Clone)]
pub struct Admission {
    authenticator: Authenticator,
    rates: RateLimits,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("anonymous_role", &self.authenticator.anonymous_role())
            .field("rates", &self.rates)
            .finish()
    }
}

impl Admission {
    pub fn new(authenticator: Authenticator, rates: RateLimits) -> Self {
        Self {
            authenticator,
            rates,
        }
    }

    pub fn with_authenticator(mut self, authenticator: Authenticator) -> Self {
        self.authenticator = authenticator;
        self
    }

    /// The principal behind `authorization` (an `Authorization` value), from `peer`.
    pub async fn authenticate(
        &self,
        authorization: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Principal, Refused> {
        let credentials = authorization.map(str::trim).filter(|v| !v.is_empty());
        if credentials.is_none() && self.authenticator.anonymous_role().is_none() {
            // Nothing but introspection could run: say so at once.
            return Err(refused(Refused::Denied(Denied::Unauthenticated(
                "this service needs credentials: send `Authorization: Bearer <API key or token>`"
                    .to_owned(),
            ))));
        }
        if credentials.is_some() {
            self.rates
                .may_authenticate(peer)
                .map_err(|wait| refused(Refused::RateLimited(wait)))?;
        }
        match self.authenticator.authenticate(credentials).await {
            Ok(principal) => Ok(principal),
            Err(Refusal::Denied(denied)) => {
                self.rates
                    .failed_authentication(peer)
                    .map_err(|wait| refused(Refused::RateLimited(wait)))?;
                Err(refused(Refused::Denied(denied)))
            }
            Err(Refusal::Unavailable(error)) => {
                tracing::error!(cause = %crate::error::Report(&error), "cannot check credentials");
                Err(refused(Refused::Unavailable))
            }
        }
    }

    /// Counts one request (or WebSocket operation) of `principal` against its rate limit.
    pub fn admit(&self, principal: &Principal) -> Result<(), Refused> {
        self.rates
            .request(&principal.name)
            .map_err(|wait| refused(Refused::RateLimited(wait)))
    }
}

/// Counts a refusal by its code, for `/metrics`.
fn refused(refusal: Refused) -> Refused {
    metrics::counter!(crate::metrics::EDGE_REFUSALS, "code" => refusal.code()).increment(1);
    refusal
}

/// A header's value as text, if it has one.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request's correlation id: the client's `X-Correlation-Id` when it is a bounded token
/// (`auth::audit_token`), else a fresh UUIDv7.
pub fn correlation_id(headers: &HeaderMap) -> String {
    header(headers, "x-correlation-id")
        .and_then(crate::auth::audit_token)
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// What a request runs as: the principal, the actor its events name (`auth::actor`, which
/// heeds `X-Actor` only for a principal that acts for others), and its correlation id.
pub fn request_meta(
    principal: Principal,
    headers: &HeaderMap,
    correlation_id: String,
) -> RequestMeta {
    RequestMeta {
        actor: crate::auth::actor(&principal, header(headers, "x-actor")),
        principal,
        correlation_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().expect("header"));
        }
        map
    }

    #[tokio::test]
    async fn no_credentials_is_the_anonymous_role_or_a_refusal_without_one() {
        let open = Admission::new(
            Authenticator::anonymous(Some(Role::Viewer)),
            RateLimits::default(),
        );
        let anonymous = open.authenticate(None, None).await.expect("anonymous");
        assert_eq!(anonymous.role, Some(Role::Viewer));
        let closed = Admission::new(Authenticator::anonymous(None), RateLimits::default());
        let refusal = closed
            .authenticate(Some("  "), None)
            .await
            .expect_err("closed");
        assert_eq!(refusal.code(), "UNAUTHENTICATED");
        let bad = open.authenticate(Some("Bearer inv_nope"), None).await;
        assert_eq!(bad.map_err(|r| r.code()), Err("UNAUTHENTICATED"));
    }

    #[test]
    fn a_correlation_id_is_kept_only_as_a_bounded_token() {
        assert_eq!(
            correlation_id(&headers(&[("x-correlation-id", "probe-42")])),
            "probe-42"
        );
        let replaced = correlation_id(&headers(&[("x-correlation-id", "<script>")]));
        assert!(uuid::Uuid::parse_str(&replaced).is_ok(), "{replaced}");
        assert!(uuid::Uuid::parse_str(&correlation_id(&HeaderMap::new())).is_ok());
    }

    #[test]
    fn the_actor_is_the_principal_not_the_header() {
        let meta = request_meta(
            Principal::anonymous(Some(Role::Admin)),
            &headers(&[("x-actor", "admin@corp")]),
            "c".into(),
        );
        assert_eq!(meta.actor, "anonymous");
    }

    #[test]
    fn each_refusal_has_its_status_and_headers() {
        let unauthenticated = Refused::Denied(Denied::Unauthenticated("who?".into()));
        let response = unauthenticated.response(Media::Json);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()[WWW_AUTHENTICATE], "Bearer");
        let forbidden = Refused::Denied(Denied::Forbidden("no".into())).response(Media::Json);
        assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
        let unavailable = Refused::Unavailable.response(Media::Json);
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[RETRY_AFTER], "1");
        let limited = Refused::RateLimited(Duration::from_millis(1_500)).response(Media::Json);
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()[RETRY_AFTER], "2");
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(
            Refused::RateLimited(Duration::from_millis(1)).retry_after_secs(),
            Some(1)
        );
        assert_eq!(
            Refused::RateLimited(Duration::from_millis(2_100)).retry_after_secs(),
            Some(3)
        );
    }
}
