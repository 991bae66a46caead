//! Relay's `Node`: every entity by its global id (`node`, `nodes`), so Relay and Apollo can
//! refetch and normalise any object. The ids are the entities' own UUIDs, unique across kinds,
//! kept as they were so no client breaks; the kind is found by asking the three loaders at
//! once, so `nodes` of 100 ids costs three batched reads. For a principal scoped to
//! warehouses, an object outside them is null here, as if there were none (see `scope`).

use async_graphql::{Context, Interface, Object, ID};
use uuid::Uuid;

use super::loaders::Loaders;
use super::roles::RoleGuard;
use super::scope::sees;
use super::types::{Allocation, InventoryItem, Warehouse};
use super::{bad_argument, infrastructure, query_id};
use crate::auth::Role;

/// Most ids one `nodes` call takes.
pub const MAX_NODES: usize = 100;

/// An object with a globally unique id: fetch it again with `node(id:)`.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "Globally unique id (a UUID); `node(id:)` returns this object."
))]
pub enum Node {
    Warehouse(Warehouse),
    InventoryItem(InventoryItem),
    Allocation(Allocation),
}

impl Node {
    /// The warehouse the object lies in (a warehouse's own id).
    pub fn warehouse_id(&self) -> Uuid {
        match self {
            Node::Warehouse(w) => w.0.id,
            Node::InventoryItem(i) => i.0.warehouse_id,
            Node::Allocation(a) => a.0.warehouse_id,
        }
    }
}

/// The entity with this id, whatever its kind, or `None`; whatever the caller's scope.
pub async fn find(loaders: &Loaders, id: Uuid) -> async_graphql::Result<Option<Node>> {
    let (warehouse, item, allocation) = futures::try_join!(
        loaders.warehouses.load_one(id),
        loaders.items.load_one(id),
        loaders.allocations.load_one(id),
    )
    .map_err(infrastructure)?;
    Ok(warehouse
        .map(|w| Node::Warehouse(Warehouse(w)))
        .or_else(|| item.map(|i| Node::InventoryItem(InventoryItem(i))))
        .or_else(|| allocation.map(|a| Node::Allocation(Allocation(a)))))
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The warehouse, inventory item or allocation with this id, or null if there is none
    /// (or, for a principal scoped to warehouses, if it lies outside them).
    /// Needs the `viewer` role.
    #[graphql(guard = "RoleGuard(Role::Viewer)")]
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Any object's `id`.")] id: ID,
    ) -> async_graphql::Result<Option<Node>> {
        let id = query_id("id", &id)?;
        let found = find(ctx.data::<Loaders>()?, id).await?;
        Ok(found.filter(|node| sees(ctx, node.warehouse_id())))
    }

    /// The objects with these ids, in the same order, null where there is none (or, for a
    /// principal scoped to warehouses, where it lies outside them); at most 100 ids
    /// (INVALID_INPUT beyond). Needs the `viewer` role.
    #[graphql(
        guard = "RoleGuard(Role::Viewer)",
        complexity = "crate::graphql::limits::list(ids.len(), child_complexity)"
    )]
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Up to 100 ids of any kind.")] ids: Vec<ID>,
    ) -> async_graphql::Result<Vec<Option<Node>>> {
        if ids.len() > MAX_NODES {
            return Err(bad_argument(format!(
                "nodes takes at most {MAX_NODES} ids, got {}",
                ids.len()
            )));
        }
        let ids = ids
            .iter()
            .map(|id| query_id("ids", id))
            .collect::<async_graphql::Result<Vec<Uuid>>>()?;
        let loaders = ctx.data::<Loaders>()?;
        let found =
            futures::future::try_join_all(ids.into_iter().map(|id| find(loaders, id))).await?;
        Ok(found
            .into_iter()
            .map(|node| node.filter(|node| sees(ctx, node.warehouse_id())))
            .collect())
    }
}
