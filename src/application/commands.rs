//! The commands the API offers, one method each: which aggregates to load, which decider to
//! ask, which expectations and guards the commit carries. An allocation command commits the
//! allocation and its item together, conditioned on the item's version: no oversell.

use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

use super::locks::StripedLocks;
use super::runner::{run, Change, CommandContext, CommandError, Outcome, Plan};
use super::{load_latest, now_ms};
use crate::domain::allocation::{self, Allocation, AllocationCommand};
use crate::domain::item::{self, AdjustmentReason, InventoryItem, ItemCommand};
use crate::domain::warehouse::{self, Warehouse, WarehouseCommand};
use crate::domain::{DomainError, Versioned};
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
    store: Arc<dyn EventStore>,
    locks: StripedLocks,
    source: String,
    /// Snapshot an aggregate every this many events; 0 turns snapshots off.
    snapshot_every: u64,
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
        Self {
            store,
            locks: StripedLocks::new(),
            source: source.into(),
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
        }
    }

    /// Snapshot every `every` events (0: never, and loads ignore snapshots).
    pub fn with_snapshots(mut self, every: u64) -> Self {
        self.snapshot_every = every;
        self
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
        run(
            &self.store,
            self.snapshot_every,
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
        let _serialised = self.locks.lock(id).await;
        let store = &*self.store;
        let snapshots = self.snapshot_every > 0;
        let mutation = match command {
            WarehouseCommand::DeactivateWarehouse { .. } => "warehouseDeactivate",
            _ => "warehouseUpdate",
        };
        let input = (id, format!("{command:?}"));
        run(
            &self.store,
            self.snapshot_every,
            &ctx,
            mutation,
            &input,
            || async {
                let mut change =
                    Change::new(id, load_latest::<Warehouse>(store, id, snapshots).await?);
                let events = warehouse::decide(id, &change.current.state, command.clone())?;
                change.record(events, &ctx, now_ms());
                Ok(change.into_plan(Outcome::Warehouse))
            },
        )
        .await
    }

    pub async fn create_item(
        &self,
        ctx: &CommandContext,
        input: CreateItem,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let id = Uuid::now_v7();
        let store = &*self.store;
        let snapshots = self.snapshot_every > 0;
        run(
            &self.store,
            self.snapshot_every,
            &ctx,
            "inventoryItemCreate",
            &input,
            || async {
                let warehouse =
                    load_latest::<Warehouse>(store, input.warehouse_id, snapshots).await?;
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
        mutation: &str,
        id: Uuid,
        expected_version: Option<u64>,
        command: ItemCommand,
        input: &impl Serialize,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let _serialised = self.locks.lock(id).await;
        let store = &*self.store;
        let snapshots = self.snapshot_every > 0;
        run(
            &self.store,
            self.snapshot_every,
            &ctx,
            mutation,
            input,
            || async {
                let mut change = Change::new(
                    id,
                    load_latest::<InventoryItem>(store, id, snapshots).await?,
                );
                if let Some(expected) = expected_version {
                    if change.current.state.exists && expected != change.current.version {
                        return Err(DomainError::VersionConflict {
                            expected,
                            actual: change.current.version,
                        }
                        .into());
                    }
                }
                let events = item::decide(
                    id,
                    &change.current.state,
                    &Warehouse::default(),
                    command.clone(),
                )?;
                change.record(events, &ctx, now_ms());
                Ok(change.into_plan(Outcome::Item))
            },
        )
        .await
    }

    pub async fn create_allocation(
        &self,
        ctx: &CommandContext,
        input: CreateAllocation,
    ) -> Result<Outcome, CommandError> {
        let ctx = self.context(ctx);
        let id = Uuid::now_v7();
        let _serialised = self.locks.lock(input.item_id).await;
        let store = &*self.store;
        let snapshots = self.snapshot_every > 0;
        run(
            &self.store,
            self.snapshot_every,
            &ctx,
            "allocationCreate",
            &input,
            || async {
                let item = load_latest::<InventoryItem>(store, input.item_id, snapshots).await?;
                let warehouse = if item.state.exists {
                    load_latest::<Warehouse>(store, item.state.warehouse_id, snapshots).await?
                } else {
                    Versioned::default()
                };
                let command = AllocationCommand::CreateAllocation {
                    order_id: input.order_id.clone(),
                    item_id: input.item_id,
                    quantity: input.quantity,
                };
                let mut plan = self.decide_allocation(
                    &ctx,
                    id,
                    Versioned::default(),
                    input.item_id,
                    item,
                    &warehouse.state,
                    command,
                )?;
                plan.expectations.push(Expectation {
                    aggregate_id: item_warehouse(&plan),
                    version: warehouse.version,
                });
                Ok(plan)
            },
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
        let store = &*self.store;
        let snapshots = self.snapshot_every > 0;
        // The item id never changes, so it can be read before taking the item's lock.
        let item_id = load_latest::<Allocation>(store, id, snapshots)
            .await?
            .state
            .item_id;
        let _serialised = self.locks.lock(item_id).await;
        let input = (id, format!("{command:?}"));
        run(
            &self.store,
            self.snapshot_every,
            &ctx,
            mutation,
            &input,
            || async {
                let allocation = load_latest::<Allocation>(store, id, snapshots).await?;
                let item = load_latest::<InventoryItem>(store, allocation.state.item_id, snapshots)
                    .await?;
                self.decide_allocation(
                    &ctx,
                    id,
                    allocation,
                    item_id,
                    item,
                    &Warehouse::default(),
                    command.clone(),
                )
            },
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    fn decide_allocation(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        allocation: Versioned<Allocation>,
        item_id: Uuid,
        item: Versioned<InventoryItem>,
        warehouse: &Warehouse,
        command: AllocationCommand,
    ) -> Result<Plan, CommandError> {
        let mut allocation = Change::new(id, allocation);
        let mut item = Change::new(item_id, item);
        let decision = allocation::decide(
            id,
            &allocation.current.state,
            &item.current.state,
            warehouse,
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

fn item_warehouse(plan: &Plan) -> Uuid {
    match &plan.outcome {
        Outcome::Allocation { item, .. } => item.current.state.warehouse_id,
        _ => Uuid::nil(),
    }
}
