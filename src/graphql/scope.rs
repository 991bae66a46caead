//! Warehouse scoping of reads: a principal scoped to warehouses reads nothing outside them.
//! A lookup naming an entity outside is FORBIDDEN; `node`, `nodes` and the links between
//! entities answer null for it instead (an error there would null a whole list or parent).
//! A list reads only the scope's warehouses, with the filter inside the read model's query
//! (one query per warehouse, merged by key, when the principal has several), so no page and
//! no `totalCount` ever counts a row the caller may not see.

use async_graphql::{Context, ErrorExtensions};
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use uuid::Uuid;

use super::node::find;
use super::{infrastructure, AppContext};
use crate::auth::{Denied, Principal, Scope};
use crate::domain::allocation::AllocationEvent;
use crate::domain::item::ItemEvent;
use crate::domain::transfer::TransferEvent;
use crate::domain::AggregateType;
pub use crate::projection::keyset_slice;
use crate::projection::{Keys, ProjectionError};

/// Which warehouses a list reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Within {
    /// All of them: an unscoped caller who named none.
    All,
    /// One: the one named, or a scoped caller's only warehouse.
    One(Uuid),
    /// A scoped caller's warehouses, when it has several and named none.
    Several(Arc<BTreeSet<Uuid>>),
}

impl Within {
    /// The warehouses to read for a caller, given the one it named, if any: the named one
    /// (FORBIDDEN outside its scope), else its scope.
    pub fn of(principal: &Principal, named: Option<Uuid>) -> Result<Self, Denied> {
        if let Some(warehouse) = named {
            principal.within(warehouse)?;
            return Ok(Self::One(warehouse));
        }
        Ok(match &principal.scope {
            Scope::All => Self::All,
            Scope::Warehouses(set) => match set.iter().next() {
                Some(only) if set.len() == 1 => Self::One(*only),
                _ => Self::Several(set.clone()),
            },
        })
    }

    /// For a resolver: `of` for the request's principal, refusals as GraphQL errors.
    pub fn for_request(ctx: &Context<'_>, named: Option<Uuid>) -> async_graphql::Result<Self> {
        Self::of(&crate::auth::principal(ctx), named).map_err(|denied| denied.extend())
    }

    /// A keyset page over these warehouses: `read` pages one warehouse (`None`: all). With
    /// several, each is read for the whole page and the pages merged by key: the rows of the
    /// union nearest the requested end are among each warehouse's nearest.
    pub async fn page<K, T, F, Fut>(
        &self,
        keys: Keys<K>,
        key_of: fn(&T) -> K,
        read: F,
    ) -> Result<Vec<T>, ProjectionError>
    where
        K: Ord + Copy,
        F: Fn(Option<Uuid>, Keys<K>) -> Fut,
        Fut: Future<Output = Result<Vec<T>, ProjectionError>>,
    {
        match self {
            Self::All => read(None, keys).await,
            Self::One(warehouse) => read(Some(*warehouse), keys).await,
            Self::Several(set) => {
                let pages =
                    futures::future::try_join_all(set.iter().map(|w| read(Some(*w), keys))).await?;
                Ok(keyset_slice(
                    pages.into_iter().flatten().collect(),
                    &keys,
                    key_of,
                ))
            }
        }
    }

    /// A count over these warehouses: `count` counts one (`None`: all).
    pub async fn count<F, Fut>(&self, count: F) -> Result<u64, ProjectionError>
    where
        F: Fn(Option<Uuid>) -> Fut,
        Fut: Future<Output = Result<u64, ProjectionError>>,
    {
        match self {
            Self::All => count(None).await,
            Self::One(warehouse) => count(Some(*warehouse)).await,
            Self::Several(set) => Ok(futures::future::try_join_all(
                set.iter().map(|w| count(Some(*w))),
            )
            .await?
            .into_iter()
            .sum()),
        }
    }

    /// Whether a row of this warehouse belongs (for a live feed, which filters as it goes).
    pub fn contains(&self, warehouse_id: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::One(warehouse) => *warehouse == warehouse_id,
            Self::Several(set) => set.contains(&warehouse_id),
        }
    }

    /// The warehouses, unless all.
    pub fn ids(&self) -> Option<Vec<Uuid>> {
        match self {
            Self::All => None,
            Self::One(warehouse) => Some(vec![*warehouse]),
            Self::Several(set) => Some(set.iter().copied().collect()),
        }
    }
}

/// Whether the request's principal may see what lies in this warehouse.
pub fn sees(ctx: &Context<'_>, warehouse_id: Uuid) -> bool {
    crate::auth::principal(ctx).sees(warehouse_id)
}

/// For a lookup that found an entity in `warehouse_id`: FORBIDDEN when it lies outside the
/// request's principal's warehouses.
pub fn visible(ctx: &Context<'_>, warehouse_id: Uuid) -> async_graphql::Result<()> {
    crate::auth::principal(ctx)
        .within(warehouse_id)
        .map_err(|denied| denied.extend())
}

/// The warehouse a warehouse, item or allocation lies in: its read model row's, else (created
/// but not projected yet) its first stored event's; `None` when nothing is stored under `id`.
pub async fn warehouse_of(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Uuid>> {
    if let Some(node) = find(ctx.data()?, id).await? {
        return Ok(Some(node.warehouse_id()));
    }
    let app = ctx.data::<AppContext>()?;
    let first = app
        .store
        .load(id, 0, Some(1))
        .await
        .map_err(infrastructure)?;
    let Some(event) = first.first() else {
        return Ok(None);
    };
    Ok(match event.aggregate_type {
        AggregateType::Warehouse => Some(id),
        AggregateType::InventoryItem => match event.decode::<ItemEvent>() {
            Ok(ItemEvent::InventoryItemCreated { warehouse_id, .. }) => Some(warehouse_id),
            _ => None,
        },
        AggregateType::Allocation => match event.decode::<AllocationEvent>() {
            Ok(AllocationEvent::AllocationCreated { warehouse_id, .. }) => Some(warehouse_id),
            _ => None,
        },
        // Its source's: the warehouse that created it.
        AggregateType::Transfer => match event.decode::<TransferEvent>() {
            Ok(TransferEvent::TransferCreated {
                from_warehouse_id, ..
            }) => Some(from_warehouse_id),
            _ => None,
        },
    })
}

/// For an argument naming an aggregate (an item, or any aggregate's events): for a scoped
/// principal, its warehouse, which must be one of the principal's (FORBIDDEN otherwise, and
/// when no warehouse is known for it: a scoped principal reads only what is known to lie in
/// its warehouses). `None` for an unscoped principal, with nothing read.
pub async fn named_aggregate(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Uuid>> {
    let principal = crate::auth::principal(ctx);
    if principal.scope == Scope::All {
        return Ok(None);
    }
    match warehouse_of(ctx, id).await? {
        Some(warehouse) => {
            principal.within(warehouse).map_err(|d| d.extend())?;
            Ok(Some(warehouse))
        }
        None => Err(Denied::Forbidden(format!(
            "{} may not read {id}: nothing stored under it lies in its warehouses",
            principal.name
        ))
        .extend()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Kind, Role};

    fn scoped(warehouses: &[Uuid]) -> Principal {
        Principal {
            name: "scoped".into(),
            role: Some(Role::Viewer),
            scope: Scope::of(warehouses.iter().copied()),
            kind: Kind::ApiKey,
            acts_for_others: false,
        }
    }

    #[test]
    fn a_list_reads_the_named_warehouse_else_the_scope() {
        let [a, b, c] = [(); 3].map(|_| Uuid::now_v7());
        let anyone = Principal::anonymous(Some(Role::Viewer));
        assert_eq!(Within::of(&anyone, None), Ok(Within::All));
        assert_eq!(Within::of(&anyone, Some(c)), Ok(Within::One(c)));
        assert_eq!(Within::of(&scoped(&[a]), None), Ok(Within::One(a)));
        assert_eq!(Within::of(&scoped(&[a, b]), Some(b)), Ok(Within::One(b)));
        assert_eq!(
            Within::of(&scoped(&[a, b]), None),
            Ok(Within::Several(Arc::new([a, b].into())))
        );
        let refused = Within::of(&scoped(&[a, b]), Some(c)).unwrap_err();
        assert_eq!(refused.code(), "FORBIDDEN");
    }

    /// Merging per-warehouse pages gives the page of the union, both ways and between bounds.
    #[tokio::test]
    async fn merged_pages_equal_pages_of_the_union() {
        let warehouses: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        // Rows (key, warehouse), keys interleaved across the warehouses.
        let rows: Vec<(u32, Uuid)> = (0..30)
            .map(|k| (k, warehouses[(k * 7 % 3) as usize]))
            .collect();
        let within = Within::Several(Arc::new(warehouses.iter().copied().collect()));
        let key = |row: &(u32, Uuid)| row.0;
        for keys in [
            Keys::after(None, 4),
            Keys::after(Some(5), 7),
            Keys::before(None, 4),
            Keys::before(Some(20), 6),
            Keys {
                after: Some(3),
                before: Some(12),
                backward: true,
                limit: 50,
            },
        ] {
            let merged = within
                .page(keys, key, |w, keys| {
                    let mine: Vec<_> = rows.iter().copied().filter(|r| Some(r.1) == w).collect();
                    async move { Ok(keyset_slice(mine, &keys, key)) }
                })
                .await
                .expect("page");
            assert_eq!(merged, keyset_slice(rows.clone(), &keys, key), "{keys:?}");
        }
    }
}
