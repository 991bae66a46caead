//! DataLoaders for the links between entities (an allocation's item and warehouse, an item's
//! warehouse, `node`): the ids a query asks for within a moment are read in ONE read-model
//! call per kind (`*_by_ids`: SQLite `WHERE id IN`, DynamoDB BatchGetItem), so a page of 100
//! allocations with their items and warehouses costs three reads, not 201.
//!
//! One set of loaders serves every request, with no cache: the read models change under us
//! (a projector applies events between two fields of one query), so a cached row would be a
//! stale row, and a loader without a cache holds nothing between batches that a per-request
//! loader would need to forget. Keys of one batch are de-duplicated by the loader, and
//! concurrent requests share batches too.
//!
//! A batch collects the keys asked for within a window of its first ([`BATCH_WINDOW`] unless
//! `--batch-window-ms` says otherwise). The library's 1 ms was too short for a page of 100 in
//! a debug build on a busy machine: the links of the page's later rows missed the first batch
//! (two reads per kind instead of one). Every batch waits its whole window, so it is latency
//! added to each level of links; a few milliseconds is small beside a DynamoDB read.

use async_graphql::dataloader::{DataLoader, Loader};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// How long a batch waits for more keys after its first, by default.
pub const BATCH_WINDOW: Duration = Duration::from_millis(3);

use crate::projection::{AllocationView, ItemView, ProjectionError, ReadModel, WarehouseView};

/// The three loaders, as one piece of schema data.
pub struct Loaders {
    pub warehouses: DataLoader<WarehouseLoader>,
    pub items: DataLoader<ItemLoader>,
    pub allocations: DataLoader<AllocationLoader>,
}

impl Loaders {
    /// The loaders over `read`, each batch gathering the ids asked for within `window`.
    pub fn new(read: Arc<dyn ReadModel>, window: Duration) -> Self {
        Self {
            warehouses: DataLoader::new(WarehouseLoader(read.clone()), tokio::spawn).delay(window),
            items: DataLoader::new(ItemLoader(read.clone()), tokio::spawn).delay(window),
            allocations: DataLoader::new(AllocationLoader(read), tokio::spawn).delay(window),
        }
    }
}

pub struct WarehouseLoader(Arc<dyn ReadModel>);
pub struct ItemLoader(Arc<dyn ReadModel>);
pub struct AllocationLoader(Arc<dyn ReadModel>);

impl Loader<Uuid> for WarehouseLoader {
    type Value = WarehouseView;
    type Error = Arc<ProjectionError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, WarehouseView>, Self::Error> {
        let rows = self.0.warehouses_by_ids(ids).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Loader<Uuid> for ItemLoader {
    type Value = ItemView;
    type Error = Arc<ProjectionError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, ItemView>, Self::Error> {
        let rows = self.0.items_by_ids(ids).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

impl Loader<Uuid> for AllocationLoader {
    type Value = AllocationView;
    type Error = Arc<ProjectionError>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, AllocationView>, Self::Error> {
        let rows = self.0.allocations_by_ids(ids).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}
