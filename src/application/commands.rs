//! The commands the API offers, one method each: the queue it waits on, the aggregates to
//! load, and a decide step that asks the pure decider and records its events. Everything else
//! (batching, expectations, idempotency, retries) is the pipeline's. An allocation command
//! commits the allocation and its item together, conditioned on the item's version: no oversell.

use serde::Serialize;
use std::sync::Arc;
use uuid::Uuid;

use super::cache::StateCache;
use super::draft::{Draft, Need};
use super::idempotency::fingerprint;
use super::outcome::{CommandContext, CommandError, Outcome};
use super::pipeline::{Pipeline, Request, Shared};
use crate::domain::allocation::{self, Allocation, AllocationCommand};
use crate::domain::item::{self, AdjustmentReason, InventoryItem, ItemCommand};
use crate::domain::transfer::{self, Sides, Transfer, TransferCommand};
use crate::domain::warehouse::{self, Warehouse, WarehouseCommand};
use crate::domain::DomainError;
use crate::store::EventStore;

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
    /// The deadline, ms since the epoch. Left out of the fingerprint when unset, so an
    /// idempotency key recorded before deadlines existed still matches its retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CreateTransfer {
    pub from_item_id: Uuid,
    pub to_warehouse_id: Uuid,
    pub quantity: i64,
    pub reference: Option<String>,
}

/// Who expires allocations: the actor in the metadata of every cancel the sweeper makes, and
/// the principal its idempotency keys belong to.
pub const EXPIRY_ACTOR: &str = "system:expiry";

pub struct Commands {
    pub(super) pipeline: Arc<Pipeline>,
    source: String,
}

/// Aggregates whose last committed state each process keeps, unless configured otherwise.
pub const DEFAULT_STATE_CACHE: usize = 10_000;

/// Events between snapshots unless configured otherwise: a load then reads at most this many
/// events past the snapshot, which keeps command latency flat however long a stream grows.
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 100;

fn warehouse_code_guard(code: &str) -> String {
    format!("warehouse-code#{}", code.trim().to_ascii_uppercase())
}

fn sku_guard(warehouse_id: Uuid, sku: &str) -> String {
    format!("sku#{warehouse_id}#{}", sku.trim())
}

/// The uniqueness key an event's commit claimed, if any: what `import` restores beside the
/// imported events, so a restored store refuses a second warehouse code or SKU as the
/// original did. Kept beside the guards' formats so the two cannot drift.
pub fn guard_claimed_by(event: &crate::store::EventEnvelope) -> Option<String> {
    use crate::domain::AggregateType;
    match event.aggregate_type {
        AggregateType::Warehouse => match event.decode::<warehouse::WarehouseEvent>() {
            Ok(warehouse::WarehouseEvent::WarehouseCreated { code, .. }) => {
                Some(warehouse_code_guard(&code))
            }
            _ => None,
        },
        AggregateType::InventoryItem => match event.decode::<item::ItemEvent>() {
            Ok(item::ItemEvent::InventoryItemCreated {
                warehouse_id, sku, ..
            }) => Some(sku_guard(warehouse_id, &sku)),
            _ => None,
        },
        // A transfer that creates its destination item claims the SKU by that item's
        // creation event, found above.
        AggregateType::Allocation | AggregateType::Transfer => None,
    }
}

/// The decide step of a request, boxed.
pub(super) fn decide(
    f: impl FnMut(&mut Draft, &CommandContext) -> Result<Outcome, CommandError> + Send + Sync + 'static,
) -> super::pipeline::Decide {
    Box::new(f)
}

impl Commands {
    pub fn new(store: Arc<dyn EventStore>, source: impl Into<String>) -> Self {
        Self::with(
            Shared {
                store,
                cache: Arc::new(StateCache::new(DEFAULT_STATE_CACHE)),
                snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            },
            source.into(),
        )
    }

    fn with(shared: Shared, source: String) -> Self {
        Self {
            pipeline: Pipeline::new(Arc::new(shared)),
            source,
        }
    }

    fn rebuilt(self, change: impl FnOnce(&mut Shared)) -> Self {
        let current = self.pipeline.shared();
        let mut shared = Shared {
            store: current.store.clone(),
            cache: current.cache.clone(),
            snapshot_every: current.snapshot_every,
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

    pub(super) async fn submit(
        &self,
        ctx: &CommandContext,
        request: Result<Request, CommandError>,
    ) -> Result<Outcome, CommandError> {
        let mut ctx = ctx.clone();
        if ctx.source.is_empty() {
            ctx.source = self.source.clone();
        }
        self.pipeline.submit(ctx, request?).await
    }

    pub async fn create_warehouse(
        &self,
        ctx: &CommandContext,
        input: CreateWarehouse,
    ) -> Result<Outcome, CommandError> {
        ctx.unscoped()?;
        let id = Uuid::now_v7();
        let fingerprint = fingerprint(&input)?;
        let command = WarehouseCommand::CreateWarehouse {
            name: input.name,
            code: input.code,
            address: input.address,
        };
        let request = Request {
            queue: id,
            mutation: "warehouseCreate",
            fingerprint,
            part: None,
            needs: vec![],
            decide: decide(move |draft, ctx| {
                draft.create::<Warehouse>(id);
                let state = &draft.state::<Warehouse>(id)?.state;
                let events = warehouse::decide(id, state, command.clone())?;
                let warehouse = draft.record::<Warehouse>(id, events, ctx)?;
                let code = warehouse.current.state.code.clone();
                draft.guard(
                    warehouse_code_guard(&code),
                    id,
                    DomainError::DuplicateCode { code },
                );
                Ok(Outcome::Warehouse(warehouse))
            }),
        };
        self.submit(ctx, Ok(request)).await
    }

    /// Updates (`name`/`address` given) or deactivates (`deactivate_reason` given) a warehouse.
    pub async fn change_warehouse(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: WarehouseCommand,
    ) -> Result<Outcome, CommandError> {
        ctx.within(id)?;
        let mutation = match command {
            WarehouseCommand::DeactivateWarehouse { .. } => "warehouseDeactivate",
            WarehouseCommand::CreateWarehouse { .. } => "warehouseCreate",
            WarehouseCommand::UpdateWarehouse { .. } => "warehouseUpdate",
        };
        let request = fingerprint(&(id, &command)).map(|fingerprint| Request {
            queue: id,
            mutation,
            fingerprint,
            part: None,
            needs: vec![Need::of::<Warehouse>(id)],
            decide: decide(move |draft, ctx| {
                let state = &draft.state::<Warehouse>(id)?.state;
                let events = warehouse::decide(id, state, command.clone())?;
                Ok(Outcome::Warehouse(draft.record(id, events, ctx)?))
            }),
        });
        self.submit(ctx, request.map_err(Into::into)).await
    }

    pub async fn create_item(
        &self,
        ctx: &CommandContext,
        input: CreateItem,
    ) -> Result<Outcome, CommandError> {
        ctx.within(input.warehouse_id)?;
        let id = Uuid::now_v7();
        let fingerprint = fingerprint(&input)?;
        let warehouse_id = input.warehouse_id;
        let command = ItemCommand::CreateItem {
            warehouse_id,
            sku: input.sku,
            product_id: input.product_id,
            initial_quantity: input.initial_quantity,
            reorder_threshold: input.reorder_threshold,
            reorder_quantity: input.reorder_quantity,
        };
        let request = Request {
            queue: id,
            mutation: "inventoryItemCreate",
            fingerprint,
            part: None,
            needs: vec![Need::of::<Warehouse>(warehouse_id)],
            decide: decide(move |draft, ctx| {
                draft.create::<InventoryItem>(id);
                let events = item::decide(
                    id,
                    &draft.state::<InventoryItem>(id)?.state,
                    &draft.state::<Warehouse>(warehouse_id)?.state,
                    command.clone(),
                )?;
                // The warehouse must still be as loaded (active) when the item lands.
                draft.consult::<Warehouse>(warehouse_id)?;
                let item = draft.record::<InventoryItem>(id, events, ctx)?;
                let sku = item.current.state.sku.clone();
                draft.guard(
                    sku_guard(warehouse_id, &sku),
                    id,
                    DomainError::DuplicateSku { sku },
                );
                Ok(Outcome::Item(item))
            }),
        };
        self.submit(ctx, Ok(request)).await
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
        let request = fingerprint(&input).map(|fingerprint| {
            item_request(input.item_id, input.expected_version, command, fingerprint)
        });
        self.submit(ctx, request.map_err(Into::into)).await
    }

    /// Runs an item command other than creation: reorder settings, deactivation, adjustment;
    /// `expected_version`, if given, must be the item's version.
    pub async fn change_item(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        expected_version: Option<u64>,
        command: ItemCommand,
    ) -> Result<Outcome, CommandError> {
        let request = fingerprint(&(id, expected_version, &command))
            .map(|fingerprint| item_request(id, expected_version, command, fingerprint));
        self.submit(ctx, request.map_err(Into::into)).await
    }

    pub async fn create_allocation(
        &self,
        ctx: &CommandContext,
        input: CreateAllocation,
    ) -> Result<Outcome, CommandError> {
        let id = Uuid::now_v7();
        let fingerprint = fingerprint(&input)?;
        let item_id = input.item_id;
        let command = AllocationCommand::CreateAllocation {
            order_id: input.order_id,
            item_id,
            quantity: input.quantity,
            expires_at: input.expires_at,
        };
        let the_warehouse = |item: &InventoryItem| item.exists.then_some(item.warehouse_id);
        let request = Request {
            queue: item_id,
            mutation: "allocationCreate",
            fingerprint,
            part: None,
            needs: vec![
                Need::of::<InventoryItem>(item_id),
                Need::via::<InventoryItem, Warehouse>(item_id, the_warehouse),
            ],
            decide: decide(move |draft, ctx| {
                draft.create::<Allocation>(id);
                let item = &draft.state::<InventoryItem>(item_id)?.state;
                if item.exists {
                    ctx.within(item.warehouse_id)?;
                }
                let inactive = Warehouse::default();
                let warehouse_id = item.warehouse_id;
                let warehouse = draft
                    .loaded::<Warehouse>(warehouse_id)
                    .map_or(&inactive, |w| &w.state);
                let decision = allocation::decide(
                    id,
                    &Allocation::default(),
                    item,
                    warehouse,
                    command.clone(),
                    draft.now,
                )?;
                if draft.loaded::<Warehouse>(warehouse_id).is_some() {
                    // The warehouse must still be as decided on (active) when the batch lands.
                    draft.consult::<Warehouse>(warehouse_id)?;
                }
                let item = draft.record::<InventoryItem>(item_id, decision.item, ctx)?;
                let allocation = draft.record::<Allocation>(id, decision.allocation, ctx)?;
                Ok(Outcome::Allocation { allocation, item })
            }),
        };
        self.submit(ctx, Ok(request)).await
    }

    /// Confirms, cancels or fulfils an existing allocation.
    pub async fn change_allocation(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: AllocationCommand,
    ) -> Result<Outcome, CommandError> {
        let mutation = match command {
            AllocationCommand::CreateAllocation { .. } => "allocationCreate",
            AllocationCommand::ConfirmAllocation => "allocationConfirm",
            AllocationCommand::CancelAllocation { .. } => "allocationCancel",
            AllocationCommand::FulfillAllocation => "allocationFulfill",
            // Not a GraphQL mutation: the sweeper's, named so for its keys and metrics.
            AllocationCommand::ExpireAllocation => "allocationExpire",
        };
        // Its item's queue, so that it never races the item's other commands here. The item
        // id never changes, so it can be read before queueing.
        let shared = self.pipeline.shared();
        let (allocation, remembered) = shared.latest::<Allocation>(id, false).await?;
        let item_id = allocation.state.item_id;
        if allocation.state.exists && !remembered {
            // The batch decides on this state rather than loading the stream a second time.
            shared.cache.put(id, allocation);
        }
        let request = fingerprint(&(id, &command)).map(|fingerprint| Request {
            queue: item_id,
            mutation,
            fingerprint,
            part: None,
            needs: vec![
                Need::of::<Allocation>(id),
                Need::of::<InventoryItem>(item_id),
            ],
            decide: decide(move |draft, ctx| {
                let item = &draft.state::<InventoryItem>(item_id)?.state;
                if item.exists {
                    ctx.within(item.warehouse_id)?;
                }
                let decision = allocation::decide(
                    id,
                    &draft.state::<Allocation>(id)?.state,
                    &draft.state::<InventoryItem>(item_id)?.state,
                    &Warehouse::default(),
                    command.clone(),
                    draft.now,
                )?;
                let allocation = draft.record::<Allocation>(id, decision.allocation, ctx)?;
                let item = draft.record::<InventoryItem>(item_id, decision.item, ctx)?;
                Ok(Outcome::Allocation { allocation, item })
            }),
        });
        self.submit(ctx, request.map_err(Into::into)).await
    }

    /// Creates a transfer: reserves the stock at the source and, when the destination
    /// warehouse has no item of the source's SKU yet, creates it, in one commit conditioned on
    /// the source's version (no oversell) and on the SKU's guard (one item per SKU there). The
    /// destination is found by that guard, read consistently; an item created by another
    /// commit in between is found on the next attempt.
    pub async fn create_transfer(
        &self,
        ctx: &CommandContext,
        input: CreateTransfer,
    ) -> Result<Outcome, CommandError> {
        let id = Uuid::now_v7();
        let fingerprint = fingerprint(&input)?;
        let shared = self.pipeline.shared();
        let from = input.from_item_id;
        let to_warehouse = input.to_warehouse_id;
        let (source, remembered) = shared.latest::<InventoryItem>(from, false).await?;
        let sku = source.state.sku.clone();
        if source.state.exists && !remembered {
            shared.cache.put(from, source);
        }
        let guard = sku_guard(to_warehouse, &sku);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let found = shared.store.guard_owner(&guard).await?;
            let request =
                transfer_create_request(id, &input, fingerprint.clone(), guard.clone(), found);
            match self.submit(ctx, Ok(request)).await {
                // The destination item was created by another commit since the guard was read.
                Err(CommandError::Rejected(DomainError::DuplicateSku { .. }))
                    if found.is_none() && attempt < 3 => {}
                result => return result,
            }
        }
    }

    /// Ships, receives or cancels a transfer: one commit over the transfer and the items the
    /// step changes, on the queue of the item it changes first (the source's, or the
    /// destination's for a receipt).
    pub async fn change_transfer(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: TransferCommand,
    ) -> Result<Outcome, CommandError> {
        let mutation = match command {
            TransferCommand::CreateTransfer { .. } => "transferCreate",
            TransferCommand::ShipTransfer => "transferShip",
            TransferCommand::ReceiveTransfer { .. } => "transferReceive",
            TransferCommand::CancelTransfer { .. } => "transferCancel",
        };
        let shared = self.pipeline.shared();
        let (transfer, remembered) = shared.latest::<Transfer>(id, false).await?;
        let (from, to) = (transfer.state.from_item_id, transfer.state.to_item_id);
        if transfer.state.exists && !remembered {
            shared.cache.put(id, transfer);
        }
        let receiving = matches!(command, TransferCommand::ReceiveTransfer { .. });
        let request = fingerprint(&(id, &command)).map(|fingerprint| Request {
            queue: if receiving { to } else { from },
            mutation,
            fingerprint,
            part: None,
            needs: vec![
                Need::of::<Transfer>(id),
                Need::of::<InventoryItem>(from),
                Need::of::<InventoryItem>(to),
            ],
            decide: decide(move |draft, ctx| {
                let transfer = draft.state::<Transfer>(id)?.state.clone();
                if transfer.exists {
                    // A receipt is the destination's business; the other steps the source's.
                    ctx.within(if receiving {
                        transfer.to_warehouse_id
                    } else {
                        transfer.from_warehouse_id
                    })?;
                }
                let source = draft.state::<InventoryItem>(from)?.state.clone();
                let destination = draft.state::<InventoryItem>(to)?.state.clone();
                let inactive = Warehouse::default();
                let decision = transfer::decide(
                    id,
                    &transfer,
                    Sides {
                        source: &source,
                        destination: &destination,
                        to_warehouse: &inactive,
                        from_warehouse: &inactive,
                    },
                    command.clone(),
                )?;
                let transfer = draft.record::<Transfer>(id, decision.transfer, ctx)?;
                let source = draft.record::<InventoryItem>(from, decision.source, ctx)?;
                let destination = draft.record::<InventoryItem>(to, decision.destination, ctx)?;
                Ok(Outcome::Transfer {
                    transfer,
                    source,
                    destination,
                })
            }),
        });
        self.submit(ctx, request.map_err(Into::into)).await
    }

    /// Cancels an allocation whose deadline has passed (reason `expired`), as the service
    /// itself: the cancel path every command takes, decided on the stored allocation, so only
    /// a still-created, due one is cancelled (anything else is INVALID_STATE_TRANSITION), and
    /// conditioned on its version, so of several instances expiring it at once exactly one
    /// commits. The key `expire:<id>` gives a retried expiry the first one's result.
    pub async fn expire_allocation(&self, id: Uuid) -> Result<Outcome, CommandError> {
        let ctx = CommandContext {
            actor: EXPIRY_ACTOR.to_owned(),
            correlation_id: format!("expire:{id}"),
            idempotency_key: Some(format!("expire:{id}")),
            source: String::new(),
            principal: EXPIRY_ACTOR.to_owned(),
            scope: crate::auth::Scope::All,
        };
        self.change_allocation(&ctx, id, AllocationCommand::ExpireAllocation)
            .await
    }
}

/// `transferCreate` as the pipeline runs it, with the destination item the SKU's guard named
/// (`found`) or, when none, a new one that the commit creates and claims the guard for.
fn transfer_create_request(
    id: Uuid,
    input: &CreateTransfer,
    fingerprint: String,
    guard: String,
    found: Option<Uuid>,
) -> Request {
    let from = input.from_item_id;
    let to_warehouse = input.to_warehouse_id;
    let new_item = Uuid::now_v7();
    let the_warehouse = |item: &InventoryItem| item.exists.then_some(item.warehouse_id);
    let mut needs = vec![
        Need::of::<InventoryItem>(from),
        Need::via::<InventoryItem, Warehouse>(from, the_warehouse),
        Need::of::<Warehouse>(to_warehouse),
    ];
    if let Some(to) = found {
        needs.push(Need::of::<InventoryItem>(to));
    }
    let (quantity, reference) = (input.quantity, input.reference.clone());
    Request {
        queue: from,
        mutation: "transferCreate",
        fingerprint,
        part: None,
        needs,
        decide: decide(move |draft, ctx| {
            // An earlier transfer of this batch may be creating the destination already.
            let (to, creates) = match found.or_else(|| draft.claimed(&guard)) {
                Some(to) => (to, false),
                None => (new_item, true),
            };
            draft.create::<Transfer>(id);
            if creates {
                draft.create::<InventoryItem>(to);
            }
            let source = draft.state::<InventoryItem>(from)?.state.clone();
            if source.exists {
                ctx.within(source.warehouse_id)?;
            }
            let inactive = Warehouse::default();
            let from_warehouse = draft
                .loaded::<Warehouse>(source.warehouse_id)
                .map_or(inactive.clone(), |w| w.state.clone());
            let to_warehouse_state = draft.state::<Warehouse>(to_warehouse)?.state.clone();
            let destination = draft.state::<InventoryItem>(to)?.state.clone();
            let decision = transfer::decide(
                id,
                &Transfer::default(),
                Sides {
                    source: &source,
                    destination: &destination,
                    to_warehouse: &to_warehouse_state,
                    from_warehouse: &from_warehouse,
                },
                TransferCommand::CreateTransfer {
                    from_item_id: from,
                    to_warehouse_id: to_warehouse,
                    to_item_id: to,
                    quantity,
                    reference: reference.clone(),
                },
            )?;
            // Both warehouses must still be as decided on (active) when the batch lands.
            draft.consult::<Warehouse>(source.warehouse_id)?;
            draft.consult::<Warehouse>(to_warehouse)?;
            let source = draft.record::<InventoryItem>(from, decision.source, ctx)?;
            let destination = draft.record::<InventoryItem>(to, decision.destination, ctx)?;
            if creates {
                draft.guard(
                    guard.clone(),
                    to,
                    DomainError::DuplicateSku {
                        sku: destination.current.state.sku.clone(),
                    },
                );
            }
            let transfer = draft.record::<Transfer>(id, decision.transfer, ctx)?;
            Ok(Outcome::Transfer {
                transfer,
                source,
                destination,
            })
        }),
    }
}

/// A command on an existing item, on the item's queue.
fn item_request(
    id: Uuid,
    expected_version: Option<u64>,
    command: ItemCommand,
    fingerprint: String,
) -> Request {
    let mutation = match command {
        ItemCommand::CreateItem { .. } => "inventoryItemCreate",
        ItemCommand::AdjustStock { .. } => "inventoryAdjust",
        ItemCommand::UpdateReorderSettings { .. } => "inventoryItemUpdateReorderSettings",
        ItemCommand::DeactivateItem { .. } => "inventoryItemDeactivate",
        ItemCommand::SetOnHand { .. } => "inventorySetOnHand",
    };
    Request {
        queue: id,
        mutation,
        fingerprint,
        part: None,
        needs: vec![Need::of::<InventoryItem>(id)],
        decide: decide(move |draft, ctx| {
            let current = draft.state::<InventoryItem>(id)?;
            if current.state.exists {
                ctx.within(current.state.warehouse_id)?;
            }
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
            Ok(Outcome::Item(draft.record(id, events, ctx)?))
        }),
    }
}
