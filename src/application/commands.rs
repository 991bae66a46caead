//! The commands the API offers, one method each: which aggregates to load, which decider to
//! ask, which expectations and guards the commit carries. An allocation command commits the
//! allocation and its item together, conditioned on the item's version: no oversell.

use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use uuid::Uuid;

use super::batch::{Batcher, ItemBatch, Shared};
use super::cache::StateCache;
use super::locks::StripedLocks;
use super::now_ms;
use super::runner::{run, Change, CommandContext, CommandError, Outcome, Plan};
use crate::domain::allocation::{self, Allocation, AllocationCommand};
use crate::domain::item::{self, AdjustmentReason, InventoryItem, ItemCommand};
use crate::domain::warehouse::{self, Warehouse, WarehouseCommand};
use crate::domain::{Aggregate, DomainError, Versioned};
use crate::store::{EventStore, Expectation};

#[derive(Debug, Clone, Serialize)]
pub struct CreateWarehouse {
    pub name: String,
    pub code: String,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateItem {
    pub warehouse_id: Uuid,
    pub sku: String,
    pub product_id: String,
    pub initial_quantity: i64,
    pub reorder_threshold: i64,
    pub reorder_quantity: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct AdjustStock {
    pub item_id: Uuid,
    pub delta: i64,
    pub reason: AdjustmentReason,
    pub reference: Option<String>,
    pub expected_version: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateAllocation {
    pub order_id: String,
    pub item_id: Uuid,
    pub quantity: i64,
}

pub struct Commands {
    shared: Arc<Shared>,
    batcher: Arc<Batcher>,
    source: String,
}

/// Aggregates whose last committed state each process keeps, unless configured otherwise.
pub const DEFAULT_STATE_CACHE: usize = 10_000;

/// Where one command's attempts get aggregate states: the first attempt may decide on states
/// this process committed last (its commit is conditioned on their versions, so a state moved
/// on elsewhere conflicts); every later attempt loads from the store.
struct Loader<'a> {
    shared: &'a Shared,
    attempts: AtomicU32,
    /// Whether a cached state was used: a rejection decided on one is decided again, fresh.
    hit: AtomicBool,
}

impl Loader<'_> {
    fn attempt(&self) -> Attempt<'_> {
        let number = self.attempts.fetch_add(1, Ordering::SeqCst);
        Attempt {
            loader: self,
            fresh: number > 0,
        }
    }
}

struct Attempt<'a> {
    loader: &'a Loader<'a>,
    fresh: bool,
}

impl Attempt<'_> {
    async fn latest<A: Aggregate>(&self, id: Uuid) -> Result<Versioned<A>, CommandError> {
        let (state, hit) = self.loader.shared.latest::<A>(id, self.fresh).await?;
        if hit {
            self.loader.hit.store(true, Ordering::SeqCst);
        }
        Ok(state)
    }
}

/// Events between snapshots unless configured otherwise: a load then reads at most this many
/// events past the snapshot, which keeps command latency flat however long a stream grows.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

fn warehouse_code_guard(code: &str) -> String {
    format!("warehouse-code#{}", code.trim().to_ascii_uppercase())
}

fn sku_guard(warehouse_id: Uuid, sku: &str) -> String {
    format!("sku#{warehouse_id}#{}", sku.trim())
}

impl Commands {
    pub fn new(store: Arc<dyn EventStore>, source: impl Into<String>) -> Self {
        Self::with(
            Shared {
                store,
                locks: Arc::new(StripedLocks::new()),
                cache: Arc::new(StateCache::new(DEFAULT_STATE_CACHE)),
                snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            },
            source.into(),
        )
    }

    fn with(shared: Shared, source: String) -> Self {
        let shared = Arc::new(shared);
        Self {
            batcher: Batcher::new(shared.clone()),
            shared,
            source,
        }
    }

    fn rebuilt(self, change: impl FnOnce(&mut Shared)) -> Self {
        let mut shared = Shared {
            store: self.shared.store.clone(),
            locks: self.shared.locks.clone(),
            cache: self.shared.cache.clone(),
            snapshot_every: self.shared.snapshot_every,
        };
        change(&mut shared);
        Self::with(shared, self.source)
    }

    /// Keep the last committed state of at most `capacity` aggregates (0: always load).
    pub fn with_state_cache(self, capacity: usize) -> Self {
        self.rebuilt(|shared| shared.cache = Arc::new(StateCache::new(capacity)))
    }

    /// Snapshot every `every` events (0: never, and loads ignore snapshots).
    pub fn with_snapshots(self, every: u64) -> Self {
        self.rebuilt(|shared| shared.snapshot_every = every)
    }

    fn loader(&self) -> Loader<'_> {
        Loader {
            shared: &self.shared,
            attempts: AtomicU32::new(0),
            hit: AtomicBool::new(false),
        }
    }

    /// Runs a command with `loader`: a rejection decided on a cached state is decided again on
    /// the stored one (another process may have changed it); a success is remembered.
    async fn cached<F, Fut>(&self, loader: &Loader<'_>, command: F) -> Result<Outcome, CommandError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Outcome, CommandError>>,
    {
        let mut result = command().await;
        if matches!(result, Err(CommandError::Rejected(_))) && loader.hit.load(Ordering::SeqCst) {
            result = command().await;
        }
        if let Ok(outcome) = &result {
            self.shared.remember(outcome);
        }
        result
    }

    fn context(&self, ctx: &CommandContext) -> CommandContext {
        let mut ctx = ctx.clone();
        if ctx.source.is_empty() {
            ctx.source = self.source.clone();
        }
        ctx
    }

    pub async fn create_warehouse(
        &self,
        ctx: &CommandContext,
        input: CreateWarehouse,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let id = Uuid::now_v7();
        let loader = self.loader();
        self.cached(&loader, || {
            run(
                &self.shared.store,
                self.shared.snapshot_every,
                &ctx,
                "warehouseCreate",
                &input,
                || async {
                    let mut change = Change::new(id, Versioned::<Warehouse>::default());
                    let events = warehouse::decide(
                        id,
                        &change.current.state,
                        WarehouseCommand::CreateWarehouse {
                            name: input.name.clone(),
                            code: input.code.clone(),
                            address: input.address.clone(),
                        },
                    )?;
                    change.record(events, &ctx, now_ms());
                    let code = change.current.state.code.clone();
                    let mut plan = change.into_plan(Outcome::Warehouse);
                    plan.guards.push((
                        warehouse_code_guard(&code),
                        DomainError::DuplicateCode { code },
                    ));
                    Ok(plan)
                },
            )
        })
        .await
    }

    /// Updates (`name`/`address` given) or deactivates (`deactivate_reason` given) a warehouse.
    pub async fn change_warehouse(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: WarehouseCommand,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let _serialised = self.shared.locks.lock(id).await;
        let mutation = match command {
            WarehouseCommand::DeactivateWarehouse { .. } => "warehouseDeactivate",
            _ => "warehouseUpdate",
        };
        let input = (id, format!("{command:?}"));
        let loader = self.loader();
        self.cached(&loader, || {
            run(
                &self.shared.store,
                self.shared.snapshot_every,
                &ctx,
                mutation,
                &input,
                || async {
                    let attempt = loader.attempt();
                    let mut change = Change::new(id, attempt.latest::<Warehouse>(id).await?);
                    let events = warehouse::decide(id, &change.current.state, command.clone())?;
                    change.record(events, &ctx, now_ms());
                    Ok(change.into_plan(Outcome::Warehouse))
                },
            )
        })
        .await
    }

    pub async fn create_item(
        &self,
        ctx: &CommandContext,
        input: CreateItem,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let id = Uuid::now_v7();
        let loader = self.loader();
        self.cached(&loader, || {
            run(
                &self.shared.store,
                self.shared.snapshot_every,
                &ctx,
                "inventoryItemCreate",
                &input,
                || async {
                    let attempt = loader.attempt();
                    let warehouse = attempt.latest::<Warehouse>(input.warehouse_id).await?;
                    let mut change = Change::new(id, Versioned::<InventoryItem>::default());
                    let events = item::decide(
                        id,
                        &change.current.state,
                        &warehouse.state,
                        ItemCommand::CreateItem {
                            warehouse_id: input.warehouse_id,
                            sku: input.sku.clone(),
                            product_id: input.product_id.clone(),
                            initial_quantity: input.initial_quantity,
                            reorder_threshold: input.reorder_threshold,
                            reorder_quantity: input.reorder_quantity,
                        },
                    )?;
                    change.record(events, &ctx, now_ms());
                    let sku = change.current.state.sku.clone();
                    let mut plan = change.into_plan(Outcome::Item);
                    // The warehouse must still be as loaded (active) when the item lands.
                    plan.expectations.push(Expectation {
                        aggregate_id: input.warehouse_id,
                        version: warehouse.version,
                    });
                    plan.guards.push((
                        sku_guard(input.warehouse_id, &sku),
                        DomainError::DuplicateSku { sku },
                    ));
                    Ok(plan)
                },
            )
        })
        .await
    }

    pub async fn adjust_stock(
        &self,
        ctx: &CommandContext,
        input: AdjustStock,
    ) -> Result<Outcome, CommandError> {
        let command = ItemCommand::AdjustStock {
            delta: input.delta,
            reason: input.reason,
            reference: input.reference.clone(),
        };
        self.change_item(
            ctx,
            "inventoryAdjust",
            input.item_id,
            input.expected_version,
            command,
            &input,
        )
        .await
    }

    /// Runs an item command other than creation: reorder settings, deactivation, adjustment.
    pub async fn change_item(
        &self,
        ctx: &CommandContext,
        mutation: &'static str,
        id: Uuid,
        expected_version: Option<u64>,
        command: ItemCommand,
        input: &impl Serialize,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let decide = move |batch: &mut ItemBatch, ctx: &CommandContext| {
            let current = &batch.item.current;
            if let Some(expected) = expected_version {
                if current.state.exists && expected != current.version {
                    return Err(DomainError::VersionConflict {
                        expected,
                        actual: current.version,
                    }
                    .into());
                }
            }
            let events = item::decide(id, &current.state, &Warehouse::default(), command.clone())?;
            batch.item.record(events, ctx, batch.now);
            Ok(Outcome::Item(batch.item.entity()))
        };
        self.batcher
            .submit(id, ctx, (mutation, input), false, Box::new(decide))
            .await
    }

    pub async fn create_allocation(
        &self,
        ctx: &CommandContext,
        input: CreateAllocation,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let id = Uuid::now_v7();
        let command = AllocationCommand::CreateAllocation {
            order_id: input.order_id.clone(),
            item_id: input.item_id,
            quantity: input.quantity,
        };
        let decide = move |batch: &mut ItemBatch, ctx: &CommandContext| {
            let decision = {
                let inactive = Warehouse::default();
                let warehouse = batch.warehouse.as_ref().map_or(&inactive, |w| &w.state);
                allocation::decide(
                    id,
                    &Allocation::default(),
                    &batch.item.current.state,
                    warehouse,
                    command.clone(),
                )?
            };
            let mut allocation = Change::new(id, Versioned::<Allocation>::default());
            allocation.record(decision.allocation, ctx, batch.now);
            batch.item.record(decision.item, ctx, batch.now);
            batch.expectations.push(allocation.expectation());
            batch.others.extend(allocation.events.iter().cloned());
            Ok(Outcome::Allocation {
                allocation: allocation.entity(),
                item: batch.item.entity(),
            })
        };
        self.batcher
            .submit(
                input.item_id,
                ctx,
                ("allocationCreate", &input),
                true,
                Box::new(decide),
            )
            .await
    }

    /// Confirms, cancels or fulfils an existing allocation.
    pub async fn change_allocation(
        &self,
        ctx: &CommandContext,
        mutation: &str,
        id: Uuid,
        command: AllocationCommand,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        // The item id never changes, so it can be read before taking the item's lock.
        let item_id = self
            .loader()
            .attempt()
            .latest::<Allocation>(id)
            .await?
            .state
            .item_id;
        let _serialised = self.shared.locks.lock(item_id).await;
        let input = (id, format!("{command:?}"));
        let loader = self.loader();
        self.cached(&loader, || {
            run(
                &self.shared.store,
                self.shared.snapshot_every,
                &ctx,
                mutation,
                &input,
                || async {
                    let attempt = loader.attempt();
                    let allocation = attempt.latest::<Allocation>(id).await?;
                    let item = attempt
                        .latest::<InventoryItem>(allocation.state.item_id)
                        .await?;
                    self.decide_allocation(&ctx, id, allocation, item_id, item, command.clone())
                },
            )
        })
        .await
    }

    /// Decides a change to an existing allocation (creation is batched on its item, in
    /// `create_allocation`; only creation consults the warehouse).
    fn decide_allocation(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        allocation: Versioned<Allocation>,
        item_id: Uuid,
        item: Versioned<InventoryItem>,
        command: AllocationCommand,
    ) -> Result<Plan, CommandError> {
        let mut allocation = Change::new(id, allocation);
        let mut item = Change::new(item_id, item);
        let decision = allocation::decide(
            id,
            &allocation.current.state,
            &item.current.state,
            &Warehouse::default(),
            command,
        )?;
        let now = now_ms();
        allocation.record(decision.allocation, ctx, now);
        item.record(decision.item, ctx, now);
        let mut expectations = vec![allocation.expectation()];
        if !item.events.is_empty() {
            expectations.push(item.expectation());
        }
        let mut events = allocation.events.clone();
        events.append(&mut item.events.clone());
        Ok(Plan {
            expectations,
            events,
            guards: vec![],
            outcome: Outcome::Allocation {
                allocation: allocation.entity(),
                item: item.entity(),
            },
        })
    }
}
