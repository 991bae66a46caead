//! `viewer`: who the caller is, as the service authenticated it, so a client can show what
//! its principal may do (a dashboard hides actions a viewer may not take) without trying a
//! mutation to find out. It reads the request's principal only; nothing here touches a store.

use async_graphql::{Context, Enum, Object, SimpleObject, ID};

use super::roles::RoleGuard;
use crate::auth::{Kind, Role};

/// What a principal may do; each role may do everything the ones before it may.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(name = "Role", remote = "crate::auth::Role")]
pub enum RoleName {
    /// Queries and subscriptions.
    Viewer,
    /// Also stock and allocation commands (`inventoryAdjust`, `allocationCreate`...).
    Operator,
    /// Also warehouses, deactivations, projection rebuilds and API keys.
    Admin,
}

/// The caller, as the service sees it.
#[derive(SimpleObject)]
pub struct Principal {
    /// The API key's name or the token's subject; `anonymous` without credentials. Events
    /// this caller causes name it as their actor.
    name: String,
    /// What the caller may do (see the README's roles table).
    role: RoleName,
    /// True when no credentials were sent and the anonymous role applies.
    anonymous: bool,
    /// The warehouses the caller is limited to; null when it may reach every warehouse.
    warehouse_ids: Option<Vec<ID>>,
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: its name, role and warehouses, so a client can offer only what it may do.
    /// UNAUTHENTICATED without credentials where anonymous callers have no role: the sign for
    /// a client to ask for an API key. Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn viewer(&self, ctx: &Context<'_>) -> async_graphql::Result<Principal> {
        let principal = crate::auth::principal(ctx);
        Ok(Principal {
            name: principal.name.clone(),
            // The guard let it through, so it has a role at least this one.
            role: principal.role.unwrap_or(Role::Viewer).into(),
            anonymous: principal.kind == Kind::Anonymous,
            warehouse_ids: principal
                .scope
                .only()
                .map(|set| set.iter().map(|id| ID(id.to_string())).collect()),
        })
    }
}
