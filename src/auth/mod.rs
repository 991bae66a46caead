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
