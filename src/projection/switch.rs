//! Routes readers and live projectors to the generation of tables that serves each projection
//! (see `layout`). Each process re-reads the durable layout at most `REFRESH` after it last
//! did, so a switch made by another process (a `replay` command, another API server) reaches
//! it within that time; a replay waits `SETTLE` — longer than that — before it relies on every
//! projector having seen a change.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::layout::{Layout, ProjectionName};
use super::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, Keys, MovementRow, ProjectionDump,
    ProjectionError, ProjectionStore, ReadModel, WarehouseView,
};

/// How stale a process's view of the layout may get.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long a replay waits for every process to have seen a layout change.
pub const SETTLE: Duration = Duration::from_millis(2 * REFRESH.as_millis() as u64 + 500);

/// A projection adapter: applies events and answers queries.
pub trait Projection: ProjectionStore + ReadModel {}
impl<T: ProjectionStore + ReadModel> Projection for T {}

/// One storage technology's generations of projection tables, and its durable layout record.
#[async_trait]
pub trait Generations: Send + Sync + 'static {
    /// The tables of `generation` for `projections`; `create` makes the missing ones first.
    async fn open(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError>;

    /// Removes the rows of `projections` from `generation`, or the whole generation when
    /// `whole` (no projection is served from it any more).
    async fn retire(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        whole: bool,
    ) -> Result<(), ProjectionError>;

    async fn load_layout(&self) -> Result<Layout, ProjectionError>;

    /// Stores `layout` with its revision bumped by one, only if the stored revision is still
    /// `layout.revision`; `false` when another process changed it first.
    async fn save_layout(&self, layout: &Layout) -> Result<bool, ProjectionError>;
}

/// One view of the layout with its adapters opened.
#[derive(Clone)]
pub struct Routing {
    pub layout: Layout,
    serving: BTreeMap<ProjectionName, Arc<dyn Projection>>,
    /// One adapter per active generation.
    active: Vec<Arc<dyn Projection>>,
    building: Option<Arc<dyn Projection>>,
    fetched: Instant,
}

impl Routing {
    /// Where a live projector applies new events: every active generation, then the one being
    /// rebuilt.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<dyn Projection>> {
        self.active.iter().chain(self.building.iter())
    }

    /// Whether `target` is the generation readers of `projection` see.
    pub fn serves(&self, target: &Arc<dyn Projection>, projection: ProjectionName) -> bool {
        self.serving.get(&projection).is_some_and(|serving| {
            std::ptr::eq(
                Arc::as_ptr(serving) as *const (),
                Arc::as_ptr(target) as *const (),
            )
        })
    }

    fn of(&self, projection: ProjectionName) -> Result<&Arc<dyn Projection>, ProjectionError> {
        self.serving.get(&projection).ok_or_else(|| {
            ProjectionError::Unavailable(format!("no tables serve the {projection} projection"))
        })
    }
}

pub struct Switchboard {
    generations: Arc<dyn Generations>,
    current: RwLock<Arc<Routing>>,
    refreshing: tokio::sync::Mutex<()>,
}

impl Switchboard {
    pub async fn open(generations: Arc<dyn Generations>) -> Result<Self, ProjectionError> {
        let layout = generations.load_layout().await?;
        let routing = Self::route(&*generations, layout, None).await?;
        Ok(Self {
            generations,
            current: RwLock::new(Arc::new(routing)),
            refreshing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn generations(&self) -> Arc<dyn Generations> {
        self.generations.clone()
    }

    /// Opens the adapters `layout` names, reusing those of `previous` that did not change.
    async fn route(
        generations: &dyn Generations,
        layout: Layout,
        previous: Option<&Routing>,
    ) -> Result<Routing, ProjectionError> {
        let reusable = |generation: u32, projections: &[ProjectionName]| {
            let previous = previous?;
            let same = previous
                .layout
                .serving()
                .get(&generation)
                .map(Vec::as_slice)
                == Some(projections);
            same.then(|| previous.serving.get(&projections[0]).cloned())
                .flatten()
        };
        let mut serving = BTreeMap::new();
        let mut active = Vec::new();
        for (generation, projections) in layout.serving() {
            let adapter = match reusable(generation, &projections) {
                Some(adapter) => adapter,
                None => generations.open(generation, &projections, false).await?,
            };
            for projection in &projections {
                serving.insert(*projection, adapter.clone());
            }
            active.push(adapter);
        }
        let building = match &layout.building {
            Some(rebuild) => {
                let same = previous
                    .and_then(|p| p.layout.building.as_ref())
                    .is_some_and(|b| b.generation == rebuild.generation);
                match previous.and_then(|p| p.building.clone()) {
                    Some(adapter) if same => Some(adapter),
                    _ => Some(
                        generations
                            .open(rebuild.generation, &rebuild.projections, false)
                            .await?,
                    ),
                }
            }
            None => None,
        };
        Ok(Routing {
            layout,
            serving,
            active,
            building,
            fetched: Instant::now(),
        })
    }

    fn cached(&self) -> Arc<Routing> {
        crate::sync::read(&self.current).clone()
    }

    /// The routing, re-read from the layout record when older than `REFRESH`. A live projector
    /// must not act on an older view, so a failed refresh is an error for it.
    pub async fn routing(&self) -> Result<Arc<Routing>, ProjectionError> {
        let cached = self.cached();
        if cached.fetched.elapsed() < REFRESH {
            return Ok(cached);
        }
        self.reload().await
    }

    /// Re-reads the layout record now.
    pub async fn reload(&self) -> Result<Arc<Routing>, ProjectionError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let cached = self.cached();
        let layout = self.generations.load_layout().await?;
        let routing = if layout == cached.layout {
            Routing {
                fetched: Instant::now(),
                ..(*cached).clone()
            }
        } else {
            tracing::info!(
                revision = layout.revision,
                "projection layout changed; routing to its tables"
            );
            Self::route(&*self.generations, layout, Some(&cached)).await?
        };
        let routing = Arc::new(routing);
        *crate::sync::write(&self.current) = routing.clone();
        Ok(routing)
    }

    /// For readers: a stale view is fine when the layout record cannot be read right now.
    async fn reader(
        &self,
        projection: ProjectionName,
    ) -> Result<Arc<dyn Projection>, ProjectionError> {
        let routing = match self.routing().await {
            Ok(routing) => routing,
            Err(error) => {
                tracing::warn!(%error, "cannot re-read the projection layout; using the last one");
                self.cached()
            }
        };
        routing.of(projection).cloned()
    }

    /// Every projected row, each projection from the generation serving it.
    pub async fn dump(&self) -> Result<ProjectionDump, ProjectionError> {
        let routing = self.routing().await?;
        // Each generation's adapter dumps only the projections it serves (the others' lists
        // are empty), so joining them gives each projection from its own generation.
        let mut all = ProjectionDump::default();
        for adapter in &routing.active {
            let dump = adapter.dump().await?;
            all.warehouses.extend(dump.warehouses);
            all.items.extend(dump.items);
            all.allocations.extend(dump.allocations);
            all.history.extend(dump.history);
            all.movements.extend(dump.movements);
        }
        Ok(all)
    }
}

/// Counts one read-model call of the API (`inventory_read_model_queries_total{query}`): what
/// a GraphQL request costs the read side, and what the DataLoaders keep bounded.
fn counted(query: &'static str) {
    metrics::counter!(crate::metrics::READ_MODEL_QUERIES, "query" => query).increment(1);
}

#[async_trait]
impl ReadModel for Switchboard {
    async fn warehouse(&self, id: Uuid) -> Result<Option<WarehouseView>, ProjectionError> {
        counted("warehouse");
        self.reader(ProjectionName::Warehouses)
            .await?
            .warehouse(id)
            .await
    }

    async fn warehouses(
        &self,
        include_inactive: bool,
        keys: Keys<Uuid>,
    ) -> Result<Vec<WarehouseView>, ProjectionError> {
        counted("warehouses");
        self.reader(ProjectionName::Warehouses)
            .await?
            .warehouses(include_inactive, keys)
            .await
    }

    async fn warehouses_by_ids(&self, ids: &[Uuid]) -> Result<Vec<WarehouseView>, ProjectionError> {
        counted("warehouses_by_ids");
        self.reader(ProjectionName::Warehouses)
            .await?
            .warehouses_by_ids(ids)
            .await
    }

    async fn count_warehouses(&self, include_inactive: bool) -> Result<u64, ProjectionError> {
        counted("count_warehouses");
        self.reader(ProjectionName::Warehouses)
            .await?
            .count_warehouses(include_inactive)
            .await
    }

    async fn item(&self, id: Uuid) -> Result<Option<ItemView>, ProjectionError> {
        counted("item");
        self.reader(ProjectionName::CurrentInventory)
            .await?
            .item(id)
            .await
    }

    async fn item_by_sku(
        &self,
        warehouse_id: Uuid,
        sku: &str,
    ) -> Result<Option<ItemView>, ProjectionError> {
        counted("item_by_sku");
        self.reader(ProjectionName::CurrentInventory)
            .await?
            .item_by_sku(warehouse_id, sku)
            .await
    }

    async fn items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
        keys: Keys<Uuid>,
    ) -> Result<Vec<ItemView>, ProjectionError> {
        counted("items");
        self.reader(ProjectionName::CurrentInventory)
            .await?
            .items(warehouse_id, low_stock_only, keys)
            .await
    }

    async fn items_by_ids(&self, ids: &[Uuid]) -> Result<Vec<ItemView>, ProjectionError> {
        counted("items_by_ids");
        self.reader(ProjectionName::CurrentInventory)
            .await?
            .items_by_ids(ids)
            .await
    }

    async fn count_items(
        &self,
        warehouse_id: Option<Uuid>,
        low_stock_only: bool,
    ) -> Result<u64, ProjectionError> {
        counted("count_items");
        self.reader(ProjectionName::CurrentInventory)
            .await?
            .count_items(warehouse_id, low_stock_only)
            .await
    }

    async fn allocation(&self, id: Uuid) -> Result<Option<AllocationView>, ProjectionError> {
        counted("allocation");
        self.reader(ProjectionName::AllocationStatus)
            .await?
            .allocation(id)
            .await
    }

    async fn allocations(
        &self,
        filter: AllocationFilter,
        keys: Keys<Uuid>,
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        counted("allocations");
        self.reader(ProjectionName::AllocationStatus)
            .await?
            .allocations(filter, keys)
            .await
    }

    async fn allocations_by_ids(
        &self,
        ids: &[Uuid],
    ) -> Result<Vec<AllocationView>, ProjectionError> {
        counted("allocations_by_ids");
        self.reader(ProjectionName::AllocationStatus)
            .await?
            .allocations_by_ids(ids)
            .await
    }

    async fn count_allocations(&self, filter: AllocationFilter) -> Result<u64, ProjectionError> {
        counted("count_allocations");
        self.reader(ProjectionName::AllocationStatus)
            .await?
            .count_allocations(filter)
            .await
    }

    async fn history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
        keys: Keys<u64>,
    ) -> Result<Vec<HistoryEntry>, ProjectionError> {
        counted("history");
        self.reader(ProjectionName::InventoryHistory)
            .await?
            .history(item_id, from, to, keys)
            .await
    }

    async fn count_history(
        &self,
        item_id: Uuid,
        from: Option<i64>,
        to: Option<i64>,
    ) -> Result<u64, ProjectionError> {
        counted("count_history");
        self.reader(ProjectionName::InventoryHistory)
            .await?
            .count_history(item_id, from, to)
            .await
    }

    async fn movements(
        &self,
        warehouse_id: Option<Uuid>,
        item_id: Option<Uuid>,
        from: Option<String>,
        to: Option<String>,
    ) -> Result<Vec<MovementRow>, ProjectionError> {
        counted("movements");
        self.reader(ProjectionName::StockMovements)
            .await?
            .movements(warehouse_id, item_id, from, to)
            .await
    }

    async fn ping(&self) -> Result<(), ProjectionError> {
        let routing = self.routing().await?;
        for adapter in &routing.active {
            adapter.ping().await?;
        }
        Ok(())
    }
}
