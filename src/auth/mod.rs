//! Who is asking, and what they may do. Every request carries a `Principal`: an API key's
//! name, a token's subject, or the anonymous principal with the role `--anonymous-role`
//! gives it (none at all by default off loopback). Roles are ordered: a `viewer` reads and
//! subscribes, an `operator` also runs stock and allocation commands, an `admin` also manages
//! warehouses, deactivates, rebuilds projections and manages keys. A principal may be scoped to
//! warehouses: it then neither reads nor changes anything outside them.
//!
//! Authentication happens once per request (HTTP) or connection (WebSocket `connection_init`)
//! at the edge (`Authenticator`); authorization where the operation is known: the GraphQL
//! field for the role, the command's decide step for the warehouse (where the state it
//! decides on says which warehouse an item or allocation belongs to).

pub mod jwt;
pub mod keys;

use async_graphql::{Context, ErrorExtensions};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use uuid::Uuid;

/// What a principal may do; each role may do everything the ones before it may.
#[derive(
    clap::ValueEnum,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Queries and subscriptions.
    Viewer,
    /// Also stock and allocation commands.
    Operator,
    /// Also warehouses, deactivations, projection rebuilds and API keys.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Operator => "operator",
            Self::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "viewer" => Some(Self::Viewer),
            "operator" => Some(Self::Operator),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The warehouses a principal may see and change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Every warehouse, and those created later.
    #[default]
    All,
    /// Only these.
    Warehouses(Arc<BTreeSet<Uuid>>),
}

impl Scope {
    /// `All` for an empty list, else exactly these warehouses.
    pub fn of(warehouses: impl IntoIterator<Item = Uuid>) -> Self {
        let set: BTreeSet<Uuid> = warehouses.into_iter().collect();
        if set.is_empty() {
            Self::All
        } else {
            Self::Warehouses(Arc::new(set))
        }
    }

    pub fn allows(&self, warehouse_id: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::Warehouses(set) => set.contains(&warehouse_id),
        }
    }

    /// The warehouses, when limited to some.
    pub fn only(&self) -> Option<&BTreeSet<Uuid>> {
        match self {
            Self::All => None,
            Self::Warehouses(set) => Some(set),
        }
    }
}

/// How a principal proved who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// No credentials: the anonymous role applies.
    Anonymous,
    /// `Authorization: Bearer <API key>`.
    ApiKey,
    /// `Authorization: Bearer <JWT>` from the configured identity provider.
    Token,
}

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// The key's name or the token's subject; `anonymous` without credentials. Every event
    /// the principal causes names it as its actor, and its idempotency keys are its own.
    pub name: String,
    /// `None`: anonymous access is off, so nothing is allowed.
    pub role: Option<Role>,
    pub scope: Scope,
    pub kind: Kind,
    /// May name another actor in `X-Actor` (a trusted gateway acting for its users).
    pub acts_for_others: bool,
}

pub const ANONYMOUS: &str = "anonymous";

impl Principal {
    pub fn anonymous(role: Option<Role>) -> Self {
        Self {
            name: ANONYMOUS.to_owned(),
            role,
            scope: Scope::All,
            kind: Kind::Anonymous,
            acts_for_others: false,
        }
    }

    /// Only `role` or a higher one passes; anonymous callers are told to authenticate, others
    /// that they may not.
    pub fn require(&self, role: Role) -> Result<(), Denied> {
        match self.role {
            Some(have) if have >= role => Ok(()),
            _ if self.kind == Kind::Anonymous => Err(Denied::Unauthenticated(format!(
                "this needs the {role} role; send `Authorization: Bearer <API key or token>`"
            ))),
            _ => Err(Denied::Forbidden(format!(
                "{} may not do this: it needs the {role} role",
                self.name
            ))),
        }
    }

    /// Whether the principal may see and change what lies in this warehouse.
    pub fn sees(&self, warehouse_id: Uuid) -> bool {
        self.scope.allows(warehouse_id)
    }

    /// A refusal for something in a warehouse outside the principal's scope.
    pub fn outside(&self, warehouse_id: Uuid) -> Denied {
        Denied::Forbidden(format!(
            "{} may not reach warehouse {warehouse_id}: it is outside its warehouses",
            self.name
        ))
    }

    /// `Ok` when the warehouse is in scope.
    pub fn within(&self, warehouse_id: Uuid) -> Result<(), Denied> {
        if self.sees(warehouse_id) {
            Ok(())
        } else {
            Err(self.outside(warehouse_id))
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// No credentials, or ones that prove nothing (unknown, revoked, expired, badly signed).
    #[error("{0}")]
    Unauthenticated(String),
    /// Known, but not allowed.
    #[error("{0}")]
    Forbidden(String),
}

impl Denied {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthenticated(_) => "UNAUTHENTICATED",
            Self::Forbidden(_) => "FORBIDDEN",
        }
    }
}

impl ErrorExtensions for Denied {
    fn extend(&self) -> async_graphql::Error {
        let code = self.code();
        async_graphql::Error::new(self.to_string()).extend_with(|_, e| e.set("code", code))
    }
}

/// The principal a GraphQL request runs as; one without any (not built by the edge) may do
/// nothing.
pub fn principal<'a>(ctx: &Context<'a>) -> std::borrow::Cow<'a, Principal> {
    match ctx.data_opt::<crate::graphql::RequestMeta>() {
        Some(meta) => std::borrow::Cow::Borrowed(&meta.principal),
        None => std::borrow::Cow::Owned(Principal::anonymous(None)),
    }
}

/// For a resolver: the principal, if it has `role` or a higher one.
pub fn require<'a>(
    ctx: &Context<'a>,
    role: Role,
) -> async_graphql::Result<std::borrow::Cow<'a, Principal>> {
    let principal = principal(ctx);
    principal.require(role).map_err(|denied| denied.extend())?;
    Ok(principal)
}

/// Turns a request's `Authorization` header (or a WebSocket's `connection_init`
/// `authorization`) into its principal: an API key (`inv_…`), a JWT from the configured
/// identity provider, or, without credentials, the anonymous principal with the configured
/// role. Credentials that prove nothing are refused, never treated as anonymous.
#[derive(Clone, Default)]
pub struct Authenticator {
    anonymous: Option<Role>,
    keys: Option<Arc<keys::KeyDirectory>>,
    tokens: Option<Arc<jwt::Verifier>>,
}

impl Authenticator {
    /// Only the anonymous principal, with `role` (tests, and a service with no keys).
    pub fn anonymous(role: Option<Role>) -> Self {
        Self {
            anonymous: role,
            keys: None,
            tokens: None,
        }
    }

    pub fn with_keys(mut self, keys: Arc<keys::KeyDirectory>) -> Self {
        self.keys = Some(keys);
        self
    }

    pub fn with_tokens(mut self, tokens: Arc<jwt::Verifier>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    /// The role anonymous requests get.
    pub fn anonymous_role(&self) -> Option<Role> {
        self.anonymous
    }

    /// The principal for an `Authorization` value (`Bearer <secret>`), or the anonymous one
    /// when there is none. A store failure looking a key up is `Unavailable`, not a refusal.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, Refusal> {
        let Some(value) = authorization.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(Principal::anonymous(self.anonymous));
        };
        let Some(secret) = bearer(value) else {
            return Err(Refusal::Denied(Denied::Unauthenticated(
                "the Authorization header must be `Bearer <API key or token>`".to_owned(),
            )));
        };
        if secret.starts_with(keys::SECRET_PREFIX) {
            let Some(keys) = &self.keys else {
                return Err(unknown_credentials());
            };
            return match keys.principal(secret).await {
                Ok(Some(principal)) => Ok(principal),
                Ok(None) => Err(unknown_credentials()),
                Err(error) => Err(Refusal::Unavailable(error)),
            };
        }
        match &self.tokens {
            Some(tokens) => tokens
                .principal(secret)
                .await
                .map_err(|e| Refusal::Denied(Denied::Unauthenticated(e.to_string()))),
            None => Err(unknown_credentials()),
        }
    }
}

/// Why authentication gave no principal.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(transparent)]
    Denied(Denied),
    /// The key store could not be asked: retry later (HTTP 503).
    #[error("the key store is unavailable")]
    Unavailable(#[source] crate::store::StoreError),
}

fn unknown_credentials() -> Refusal {
    Refusal::Denied(Denied::Unauthenticated(
        "the credentials are not valid (unknown, revoked or expired)".to_owned(),
    ))
}

/// The secret of `Bearer <secret>` (the scheme is case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, secret) = value.split_once(' ')?;
    let secret = secret.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !secret.is_empty()).then_some(secret)
}

/// A token a client may supply for the audit trail (`X-Actor`, `X-Correlation-Id`): at most
/// 64 characters of `[A-Za-z0-9._:@-]`, so nothing stored can carry markup or forge lines.
pub fn audit_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    (!value.is_empty() && value.len() <= 64 && value.chars().all(allowed)).then_some(value)
}

/// The actor events name: the principal, or `<principal> for <X-Actor>` when the principal
/// may act for others and names a valid one; otherwise `X-Actor` is ignored.
pub fn actor(principal: &Principal, requested: Option<&str>) -> String {
    match requested.and_then(audit_token) {
        Some(other) if principal.acts_for_others && other != principal.name => {
            format!("{} for {other}", principal.name)
        }
        _ => principal.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_anonymous_callers_are_told_to_authenticate() {
        let viewer = Principal {
            role: Some(Role::Viewer),
            kind: Kind::ApiKey,
            ..Principal::anonymous(None)
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        assert_eq!(
            viewer.require(Role::Operator).map_err(|d| d.code()),
            Err("FORBIDDEN")
        );
        let nobody = Principal::anonymous(None);
        assert_eq!(
            nobody.require(Role::Viewer).map_err(|d| d.code()),
            Err("UNAUTHENTICATED")
        );
        assert!(Principal::anonymous(Some(Role::Admin))
            .require(Role::Admin)
            .is_ok());
    }

    #[test]
    fn a_scope_limits_the_warehouses() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert!(Scope::of([]).allows(b));
        let scoped = Scope::of([a]);
        assert!(scoped.allows(a));
        assert!(!scoped.allows(b));
    }

    #[test]
    fn x_actor_counts_only_for_a_principal_that_acts_for_others() {
        let mut gateway = Principal {
            name: "gateway".into(),
            role: Some(Role::Operator),
            kind: Kind::ApiKey,
            ..Principal::anonymous(None)
        };
        assert_eq!(actor(&gateway, Some("admin@corp (CFO)")), "gateway");
        assert_eq!(actor(&gateway, Some("alice@corp")), "gateway");
        gateway.acts_for_others = true;
        assert_eq!(
            actor(&gateway, Some("alice@corp")),
            "gateway for alice@corp"
        );
        assert_eq!(actor(&gateway, Some("<script>")), "gateway");
    }

    #[test]
    fn only_bearer_credentials_are_read() {
        assert_eq!(bearer("Bearer inv_abc"), Some("inv_abc"));
        assert_eq!(bearer("bearer  tok "), Some("tok"));
        assert_eq!(bearer("Basic dXNlcg=="), None);
        assert_eq!(bearer("Bearer "), None);
    }
}
