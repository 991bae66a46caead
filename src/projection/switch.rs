//! Routes readers and live projectors, projection by projection, to the generation of tables
//! that serves it (see `layout`). Each process re-reads the durable layout at most `REFRESH`
//! after it last did, so a switch made by another process (a `replay` command, another API
//! server) reaches it within that time. A process running live projectors `join`s: it holds a
//! lease on the layout (see `lease`), acknowledges each change it routes by, and writes
//! projections only while its lease holds — so a replay knows, rather than assumes, when every
//! projector has seen a change.

use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::fanout::Fanout;
use super::layout::{Layout, ProjectionName};
use super::lease::{self, Heartbeat, Held};
use super::{
    AllocationFilter, AllocationView, HistoryEntry, ItemView, Keys, MovementRow, ProjectionDump,
    ProjectionError, ProjectionStore, ReadModel, TransferFilter, TransferView, WarehouseView,
};
use crate::application::now_ms;

/// How stale a process's view of the layout may get.
pub const REFRESH: Duration = Duration::from_secs(1);

/// A projection adapter: applies events and answers queries.
pub trait Projection: ProjectionStore + ReadModel {}
impl<T: ProjectionStore + ReadModel> Projection for T {}

/// One storage technology's projection tables, each (projection, generation) its own, and its
/// durable layout record.
#[async_trait]
pub trait Generations: Send + Sync + 'static {
    /// The tables of `projection` in `generation`, applying and dumping only that projection;
    /// `create` makes them first if missing.
    async fn open(
        &self,
        projection: ProjectionName,
        generation: u32,
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError>;

    /// Removes the tables (or, where they share a file with other projections, the rows) of
    /// `projection` in `generation`.
    async fn retire(
        &self,
        projection: ProjectionName,
        generation: u32,
    ) -> Result<(), ProjectionError>;

    /// The tables of these (projection, generation) pairs as one write target, for live
    /// projectors and replays. By default each pair's adapter, all at once; a store whose
    /// projections share a file overrides it to apply a batch to each file in one transaction.
    async fn target(
        &self,
        parts: &[(ProjectionName, u32)],
    ) -> Result<Arc<dyn ProjectionStore>, ProjectionError> {
        let mut opened: Vec<Arc<dyn ProjectionStore>> = Vec::new();
        for (projection, generation) in parts {
            opened.push(self.open(*projection, *generation, false).await?);
        }
        Ok(Arc::new(Fanout::new(opened)))
    }

    async fn load_layout(&self) -> Result<Layout, ProjectionError>;

    /// Stores `layout` with its revision bumped by one, only if the stored revision is still
    /// `layout.revision`; `false` when another process changed it first.
    async fn save_layout(&self, layout: &Layout) -> Result<bool, ProjectionError>;

    /// Records `beat` beside the layout, replacing its process's earlier row (see `lease`).
    async fn beat(&self, beat: &Heartbeat) -> Result<(), ProjectionError>;

    /// Every heartbeat row recorded, lapsed or not.
    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, ProjectionError>;

    /// Removes the row of `beat`'s process if it is still exactly `beat` (a process that renewed
    /// it meanwhile keeps its newer row).
    async fn forget(&self, beat: &Heartbeat) -> Result<(), ProjectionError>;
}

/// One view of the layout with its adapters opened, one per projection and generation.
#[derive(Clone)]
pub struct Routing {
    pub layout: Layout,
    /// What readers of each projection see.
    serving: BTreeMap<ProjectionName, Arc<dyn Projection>>,
    /// The serving tables of every projection as one write target (see `Generations::target`).
    live: Arc<dyn ProjectionStore>,
    /// The tables a rebuild is filling, as one target.
    building: Option<Arc<dyn ProjectionStore>>,
    /// When the layout behind this view was read (before the read began, so a slow read does
    /// not make the view look fresher than it is).
    fetched: Instant,
}

impl Routing {
    /// Where a live projector applies new events: the serving tables of every projection,
    /// then those being rebuilt.
    pub fn targets(&self) -> impl Iterator<Item = &Arc<dyn ProjectionStore>> {
        std::iter::once(&self.live).chain(self.building.iter())
    }

    /// Whether `target` holds the rows readers of `projection` see.
    pub fn serves(&self, target: &Arc<dyn ProjectionStore>, _projection: ProjectionName) -> bool {
        Arc::ptr_eq(target, &self.live)
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
    /// This process's lease on the layout, once it has joined (runs live projectors).
    member: std::sync::OnceLock<Member>,
}

/// A process that runs live projectors, as the layout handshake knows it.
struct Member {
    process: Uuid,
    label: String,
    /// The lease last renewed; `None` before the first renewal. Renewals take turns.
    held: tokio::sync::Mutex<Option<Held>>,
}

/// This process's part in the layout handshake, from `Switchboard::join` until `leave`.
pub struct Membership {
    board: Arc<Switchboard>,
    renewing: tokio::task::JoinHandle<()>,
}

impl Membership {
    /// Stops renewing and removes this process's heartbeat row, so that a replay need not wait
    /// for it to lapse.
    pub async fn leave(self) {
        self.renewing.abort();
        let Some(member) = self.board.member.get() else {
            return;
        };
        let held = member.held.lock().await.take();
        if let Some(held) = held {
            if let Err(error) = self.board.generations.forget(&held.beat).await {
                tracing::warn!(%error, "could not remove this process's heartbeat row; it lapses by itself");
            }
        }
    }
}

impl Switchboard {
    pub async fn open(generations: Arc<dyn Generations>) -> Result<Self, ProjectionError> {
        let fetched = Instant::now();
        let layout = generations.load_layout().await?;
        let routing = Self::route(&*generations, layout, fetched).await?;
        Ok(Self {
            generations,
            current: RwLock::new(Arc::new(routing)),
            refreshing: tokio::sync::Mutex::new(()),
            member: std::sync::OnceLock::new(),
        })
    }

    /// Takes part in the layout handshake from now on: renews this process's lease every
    /// `REFRESH` (re-reading the layout, and acknowledging a change at once) until `leave`.
    /// Called once, by the process that runs live projectors on this board.
    pub fn join(self: &Arc<Self>) -> Membership {
        let member = Member {
            process: Uuid::now_v7(),
            label: lease::label(),
            held: tokio::sync::Mutex::new(None),
        };
        if self.member.set(member).is_err() {
            tracing::warn!("this process joined the layout handshake twice");
        }
        let board = self.clone();
        let renewing = tokio::spawn(async move {
            loop {
                // A view another caller read less than half a `REFRESH` ago will do: on a busy
                // server the projectors' `routing` reads the layout every `REFRESH`, and the
                // renewal then reads nothing of its own.
                if let Err(error) = board.renew(REFRESH / 2).await {
                    tracing::warn!(%error, "could not renew this process's layout lease; projection writes wait for it");
                }
                tokio::time::sleep(REFRESH).await;
            }
        });
        Membership {
            board: self.clone(),
            renewing,
        }
    }

    /// Re-reads the layout (unless a read that began less than `age` ago is cached) and, when
    /// this process routes by a new revision or its lease runs short, writes its heartbeat row.
    /// Returns the routing it now holds. A cached view is used only while the lease holds (a
    /// replay then waits for this row rather than fencing it, and a row names the revision
    /// this process routes by, never a later one: at worst the replay waits for the next
    /// renewal); a process without a lease, or whose lease lapsed, always reads afresh.
    async fn renew(&self, age: Duration) -> Result<Arc<Routing>, ProjectionError> {
        let Some(member) = self.member.get() else {
            return self.fresh_within(age).await;
        };
        let mut held = member.held.lock().await;
        // Both stamped before anything is read or written: the lease runs from here.
        let started = Instant::now();
        let wall = now_ms();
        let trusted = held.as_ref().is_some_and(Held::trusted);
        if held.is_some() && !trusted {
            metrics::counter!(crate::metrics::LAYOUT_FENCED).increment(1);
            tracing::warn!(
                process = %member.label,
                "this process's layout lease lapsed (paused, or cut off from the store): \
                 fenced until it has re-read the layout and renewed its lease"
            );
        }
        let age = if trusted { age } else { Duration::ZERO };
        let routing = self.fresh_within(age).await?;
        let revision = routing.layout.revision;
        if held.as_ref().is_none_or(|held| held.due(revision)) {
            let beat = Heartbeat {
                process: member.process,
                label: member.label.clone(),
                revision,
                expires_at: wall + lease::LEASE.as_millis() as i64,
            };
            self.generations.beat(&beat).await?;
            *held = Some(Held::new(beat, started));
        }
        Ok(routing)
    }

    /// The routing a live projector writes by. A process that joined the handshake writes only
    /// while its lease holds: once it has lapsed, the layout is re-read and the lease renewed
    /// first (or this fails, and the write waits). The events written must have been received
    /// before this call (see `lease` for why that makes a stale routing harmless).
    pub async fn write_routing(&self) -> Result<Arc<Routing>, ProjectionError> {
        let Some(member) = self.member.get() else {
            return self.routing().await;
        };
        let trusted = member.held.lock().await.as_ref().is_some_and(Held::trusted);
        if trusted {
            self.routing().await
        } else {
            self.renew(Duration::ZERO).await
        }
    }

    /// After this process changed the layout: routes by it at once and, if this process is a
    /// member of the handshake, acknowledges it.
    pub async fn changed(&self) -> Result<Arc<Routing>, ProjectionError> {
        self.renew(Duration::ZERO).await
    }

    pub fn generations(&self) -> Arc<dyn Generations> {
        self.generations.clone()
    }

    /// Opens the adapters `layout` names: each projection's serving generation, and the
    /// projections of the rebuild in progress in theirs. Opening is cheap (no table is
    /// created), so a changed layout opens them all afresh.
    async fn route(
        generations: &dyn Generations,
        layout: Layout,
        fetched: Instant,
    ) -> Result<Routing, ProjectionError> {
        let mut serving = BTreeMap::new();
        for projection in ProjectionName::ALL {
            let generation = layout.generation_of(projection);
            let adapter = generations.open(projection, generation, false).await?;
            serving.insert(projection, adapter);
        }
        let live: Vec<_> = ProjectionName::ALL
            .into_iter()
            .map(|projection| (projection, layout.generation_of(projection)))
            .collect();
        let live = generations.target(&live).await?;
        let building = match &layout.building {
            Some(rebuild) => {
                let parts: Vec<_> = rebuild
                    .projections
                    .iter()
                    .map(|projection| (*projection, rebuild.generation))
                    .collect();
                Some(generations.target(&parts).await?)
            }
            None => None,
        };
        Ok(Routing {
            layout,
            serving,
            live,
            building,
            fetched,
        })
    }

    fn cached(&self) -> Arc<Routing> {
        crate::sync::read(&self.current).clone()
    }

    /// The routing, re-read from the layout record when older than `REFRESH`. A live projector
    /// must not act on an older view, so a failed refresh is an error for it.
    pub async fn routing(&self) -> Result<Arc<Routing>, ProjectionError> {
        self.fresh_within(REFRESH).await
    }

    /// The routing, re-read from the layout record unless a read that began less than `age`
    /// ago is cached. Reads take turns, and a caller that waited for another's read takes its
    /// result when it is fresh enough: callers that find the view stale at once share one read.
    async fn fresh_within(&self, age: Duration) -> Result<Arc<Routing>, ProjectionError> {
        let cached = self.cached();
        if cached.fetched.elapsed() < age {
            return Ok(cached);
        }
        let _one_at_a_time = self.refreshing.lock().await;
        let cached = self.cached();
        if cached.fetched.elapsed() < age {
            return Ok(cached);
        }
        // Stamped before the read: the record may change while the read is under way, and a
        // view is only as fresh as the moment its read began.
        let fetched = Instant::now();
        let layout = self.generations.load_layout().await?;
        let routing = if layout == cached.layout {
            Routing {
                fetched,
                ..(*cached).clone()
            }
        } else {
            tracing::info!(
                revision = layout.revision,
                "projection layout changed; routing to its tables"
            );
            Self::route(&*self.generations, layout, fetched).await?
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
        self.routing().await?.live.dump().await
    }
}

/// Counts one read-model call of the API (`inventory_read_model_queries_total{query}`): what
/// a GraphQL request costs the read side, and what the DataLoaders keep bounded.
fn counted(query: &'static str) {
    metrics::counter!(crate::metrics::READ_MODEL_QUERIES, "query" => query).increment(1);
}

/// The read model of the API, each query answered by the tables serving its projection.
macro_rules! route_reads {
    ($($projection:ident: $query:ident($($arg:ident: $type:ty),*) -> $output:ty;)*) => {
        #[async_trait]
        impl ReadModel for Switchboard {
            $(
                async fn $query(&self, $($arg: $type),*) -> Result<$output, ProjectionError> {
                    counted(stringify!($query));
                    self.reader(ProjectionName::$projection)
                        .await?
                        .$query($($arg),*)
                        .await
                }
            )*

            async fn ping(&self) -> Result<(), ProjectionError> {
                let routing = self.routing().await?;
                for adapter in routing.serving.values() {
                    adapter.ping().await?;
                }
                Ok(())
            }
        }
    };
}

route_reads! {
    Warehouses: warehouse(id: Uuid) -> Option<WarehouseView>;
    Warehouses: warehouses(include_inactive: bool, keys: Keys<Uuid>) -> Vec<WarehouseView>;
    Warehouses: warehouses_by_ids(ids: &[Uuid]) -> Vec<WarehouseView>;
    Warehouses: count_warehouses(include_inactive: bool) -> u64;
    CurrentInventory: item(id: Uuid) -> Option<ItemView>;
    CurrentInventory: item_by_sku(warehouse_id: Uuid, sku: &str) -> Option<ItemView>;
    CurrentInventory: items(
        warehouse_id: Option<Uuid>, low_stock_only: bool, keys: Keys<Uuid>
    ) -> Vec<ItemView>;
    CurrentInventory: items_by_ids(ids: &[Uuid]) -> Vec<ItemView>;
    CurrentInventory: count_items(warehouse_id: Option<Uuid>, low_stock_only: bool) -> u64;
    AllocationStatus: allocation(id: Uuid) -> Option<AllocationView>;
    AllocationStatus: allocations(filter: AllocationFilter, keys: Keys<Uuid>)
        -> Vec<AllocationView>;
    AllocationStatus: allocations_by_ids(ids: &[Uuid]) -> Vec<AllocationView>;
    AllocationStatus: count_allocations(filter: AllocationFilter) -> u64;
    AllocationStatus: due_allocations(now: i64, limit: usize) -> Vec<Uuid>;
    InventoryHistory: history(
        item_id: Uuid, from: Option<i64>, to: Option<i64>, keys: Keys<u64>
    ) -> Vec<HistoryEntry>;
    InventoryHistory: count_history(item_id: Uuid, from: Option<i64>, to: Option<i64>) -> u64;
    StockMovements: movements(
        warehouse_id: Option<Uuid>, item_id: Option<Uuid>, from: Option<String>,
        to: Option<String>
    ) -> Vec<MovementRow>;
    TransferStatus: transfer(id: Uuid) -> Option<TransferView>;
    TransferStatus: transfers(filter: TransferFilter, keys: Keys<Uuid>) -> Vec<TransferView>;
    TransferStatus: count_transfers(filter: TransferFilter) -> u64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::projection::sqlite::SqliteGenerations;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Embedded generations whose layout record takes `delay` to read.
    struct Slow {
        inner: SqliteGenerations,
        loads: AtomicUsize,
        delay: Duration,
    }

    impl Slow {
        fn new(dir: &std::path::Path, delay: Duration) -> Arc<Self> {
            Arc::new(Self {
                inner: SqliteGenerations::open(dir).expect("open"),
                loads: AtomicUsize::new(0),
                delay,
            })
        }

        fn loads(&self) -> usize {
            self.loads.load(Ordering::SeqCst)
        }
    }

    #[async_trait]
    impl Generations for Slow {
        async fn open(
            &self,
            projection: ProjectionName,
            generation: u32,
            create: bool,
        ) -> Result<Arc<dyn Projection>, ProjectionError> {
            self.inner.open(projection, generation, create).await
        }

        async fn retire(
            &self,
            projection: ProjectionName,
            generation: u32,
        ) -> Result<(), ProjectionError> {
            self.inner.retire(projection, generation).await
        }

        async fn load_layout(&self) -> Result<Layout, ProjectionError> {
            self.loads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            self.inner.load_layout().await
        }

        async fn save_layout(&self, layout: &Layout) -> Result<bool, ProjectionError> {
            self.inner.save_layout(layout).await
        }

        async fn beat(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
            self.inner.beat(beat).await
        }

        async fn heartbeats(&self) -> Result<Vec<Heartbeat>, ProjectionError> {
            self.inner.heartbeats().await
        }

        async fn forget(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
            self.inner.forget(beat).await
        }
    }

    #[tokio::test]
    async fn a_layout_read_slower_than_the_refresh_period_is_not_taken_as_fresh() {
        let dir = tempfile::tempdir().expect("temp dir");
        let slow = Slow::new(dir.path(), REFRESH + Duration::from_millis(100));
        let board = Switchboard::open(slow.clone()).await.expect("switchboard");
        assert_eq!(slow.loads(), 1);
        // The record may have changed while it was being read: a live projector must read it
        // again rather than act on it.
        board.routing().await.expect("routing");
        assert_eq!(slow.loads(), 2);
    }

    #[tokio::test]
    async fn callers_that_find_the_view_stale_together_share_one_read_but_a_lapsed_lease_reads_its_own(
    ) {
        let dir = tempfile::tempdir().expect("temp dir");
        let slow = Slow::new(dir.path(), Duration::from_millis(300));
        let board = Switchboard::open(slow.clone()).await.expect("switchboard");
        member_of(&board);
        // No lease yet: the first renewal reads for itself and writes the row.
        board.renew(REFRESH / 2).await.expect("renew");
        assert_eq!(slow.loads(), 2);
        tokio::time::sleep(REFRESH).await;

        // Three projectors and the renewal find the view stale at once: one read serves all,
        // and the renewal (its lease holds) takes it too.
        let (a, b, c, renewed) = tokio::join!(
            board.routing(),
            board.routing(),
            board.routing(),
            board.renew(REFRESH / 2)
        );
        for routing in [a, b, c, renewed] {
            routing.expect("routing");
        }
        assert_eq!(slow.loads(), 3, "one read for four callers");

        // A lapsed lease never renews on a view it did not read itself, however fresh.
        lapse(&board).await;
        board.renew(REFRESH / 2).await.expect("renew");
        assert_eq!(slow.loads(), 4);
    }

    /// A member of the handshake, as `join` makes it but without the renewal task, so that the
    /// test decides when it renews.
    fn member_of(board: &Switchboard) {
        let member = Member {
            process: Uuid::now_v7(),
            label: "paused".into(),
            held: tokio::sync::Mutex::new(None),
        };
        assert!(board.member.set(member).is_ok());
    }

    /// Lets the member's lease lapse, as when its process is paused past it.
    async fn lapse(board: &Switchboard) {
        let member = board.member.get().expect("member");
        if let Some(held) = member.held.lock().await.as_mut() {
            held.trusted_until = Instant::now() - Duration::from_millis(1);
        }
    }

    #[tokio::test]
    async fn a_process_whose_lease_lapsed_rereads_the_layout_before_it_writes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let other = SqliteGenerations::open(dir.path()).expect("open");
        let board = Switchboard::open(Arc::new(SqliteGenerations::open(dir.path()).expect("open")))
            .await
            .expect("switchboard");
        member_of(&board);
        let before = board
            .write_routing()
            .await
            .expect("routing")
            .layout
            .revision;
        let beats = other.heartbeats().await.expect("heartbeats");
        assert_eq!(beats.len(), 1, "the first write renews the lease");
        assert_eq!(beats[0].revision, before);

        // Another process changes the layout; this one's lease lapses (as when it is paused).
        let mut layout = other.load_layout().await.expect("layout");
        layout.last = Some(crate::projection::layout::Rebuild::new(
            1,
            vec![ProjectionName::Warehouses],
            None,
            0,
        ));
        assert!(other.save_layout(&layout).await.expect("save"));
        lapse(&board).await;

        // A reader may still use its view of less than `REFRESH` ago...
        assert_eq!(
            board.routing().await.expect("routing").layout.revision,
            before
        );
        // ...a write may not: the layout is read again and the change acknowledged first.
        let routing = board.write_routing().await.expect("routing");
        assert_eq!(routing.layout.revision, before + 1);
        let beats = other.heartbeats().await.expect("heartbeats");
        assert_eq!(beats[0].revision, before + 1);
        let acked = lease::acknowledged(&other, before + 1, Duration::from_secs(1)).await;
        assert!(matches!(acked, Ok(fenced) if fenced.is_empty()));
    }
}
