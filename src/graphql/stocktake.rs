//! Stocktake mutations: `inventorySetOnHand` (a count sets on hand; its event records the
//! difference found) and `inventoryBulkAdjust` (up to 250 adjustments, all or none, or each row
//! on its own). Both need the `operator` role, and a principal scoped to warehouses may touch
//! only items in them (checked on the state each command is decided on).

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};

use super::inventory::{change, AdjustmentReason, InventoryItemPayload};
use super::roles::RoleGuard;
use super::types::{InventoryItem, UserError};
use super::{outcome, parse_id, AppContext};
use crate::application::{BulkAdjust, BulkRow, Outcome, RowError, BULK_MAX_ROWS};
use crate::auth::Role;
use crate::domain::item::ItemCommand;
use crate::projection::ItemView;

/// Why stock was counted.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::domain::item::CountReason")]
pub enum CountReason {
    /// A routine count of some shelves; history reason `cycle_count`.
    CycleCount,
    /// The books were found wrong and are put right; history reason `correction`.
    Correction,
}

/// Set an item's on-hand stock to a counted figure.
#[derive(InputObject)]
pub struct InventorySetOnHandInput {
    /// The item.
    item_id: ID,
    /// The units counted, 0 to 1,000,000,000; never below what is allocated.
    quantity: i64,
    /// Apply only if on hand is still this (the figure the count started from), else
    /// STALE_QUANTITY and nothing changes.
    compare_quantity: Option<i64>,
    /// Why.
    reason: CountReason,
    /// Your reference (count sheet, ticket), up to 200 characters.
    reference: Option<String>,
    /// Retry key, as for `inventoryItemCreate`.
    idempotency_key: Option<String>,
}

/// What to do when some rows of a bulk adjustment are refused.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "crate::application::BulkPolicy")]
pub enum BulkErrorPolicy {
    /// Apply no row unless every row passes: one atomic commit over every item touched.
    RejectEverything,
    /// Apply the rows that pass and report the others (possibly in several commits).
    RejectFailedRows,
}

/// One row of a bulk adjustment: the same as `inventoryAdjust`'s input, less its options.
#[derive(InputObject)]
pub struct InventoryBulkAdjustRowInput {
    /// The item.
    item_id: ID,
    /// Units to add (positive) or remove (negative); never zero.
    delta: i64,
    /// Why.
    reason: AdjustmentReason,
    /// Your reference, up to 200 characters.
    reference: Option<String>,
}

/// Adjust many items at once.
#[derive(InputObject)]
pub struct InventoryBulkAdjustInput {
    /// 1 to 250 rows, applied in this order (several rows on one item see the ones before).
    adjustments: Vec<InventoryBulkAdjustRowInput>,
    /// What to do when some rows are refused (default REJECT_EVERYTHING).
    #[graphql(default_with = "BulkErrorPolicy::RejectEverything")]
    error_policy: BulkErrorPolicy,
    /// Retry key, as for `inventoryItemCreate`: a retry returns the first result, rows
    /// already applied are never applied again.
    idempotency_key: Option<String>,
}

/// What became of one row of a bulk adjustment.
#[derive(SimpleObject)]
pub struct InventoryBulkAdjustResult {
    /// The row's position in `adjustments`, from 0.
    index: i32,
    /// The item right after this row was applied; null if the row was not applied.
    inventory_item: Option<InventoryItem>,
    /// Why the row was refused (field paths `["input", "adjustments", "<index>", ...]`);
    /// empty if it was not.
    user_errors: Vec<UserError>,
}

/// The result of a bulk adjustment.
#[derive(SimpleObject)]
pub struct InventoryBulkAdjustPayload {
    /// One per row in input order; empty if the bulk was refused as a whole before its rows
    /// were decided.
    results: Vec<InventoryBulkAdjustResult>,
    /// Why the bulk as a whole changed nothing: a row count outside 1..=250, a malformed id,
    /// a reused idempotency key, a commit too large for the store; under REJECT_EVERYTHING
    /// also every refused row's error again. Empty otherwise (under REJECT_FAILED_ROWS a
    /// refused row is reported in its result only).
    user_errors: Vec<UserError>,
}

/// A refused row's error, with its field path inside the input.
fn row_error(index: usize, error: &RowError) -> UserError {
    let mut path = vec![
        "input".to_owned(),
        "adjustments".to_owned(),
        index.to_string(),
    ];
    path.extend(error.field.clone());
    UserError {
        field: Some(path),
        message: error.message.clone(),
        code: error.code.clone(),
    }
}

fn bulk_payload(result: Result<Outcome, Vec<UserError>>) -> InventoryBulkAdjustPayload {
    let bulk = match result {
        Ok(Outcome::Bulk(bulk)) => bulk,
        Ok(_) => {
            return InventoryBulkAdjustPayload {
                results: vec![],
                user_errors: vec![],
            }
        }
        Err(user_errors) => {
            return InventoryBulkAdjustPayload {
                results: vec![],
                user_errors,
            }
        }
    };
    let results: Vec<InventoryBulkAdjustResult> = bulk
        .rows
        .iter()
        .map(|row| InventoryBulkAdjustResult {
            index: i32::try_from(row.index).unwrap_or(i32::MAX),
            inventory_item: row.item.as_ref().map(|e| InventoryItem(ItemView::from(e))),
            user_errors: row.error.iter().map(|e| row_error(row.index, e)).collect(),
        })
        .collect();
    let user_errors = match bulk.refused {
        true => results
            .iter()
            .flat_map(|r| r.user_errors.iter().cloned())
            .collect(),
        false => vec![],
    };
    InventoryBulkAdjustPayload {
        results,
        user_errors,
    }
}

#[derive(Default)]
pub struct StocktakeMutation;

#[Object]
impl StocktakeMutation {
    /// Set on hand to a counted figure. The event (`StockLevelChanged`, reason `cycle_count`
    /// or `correction`) records the difference found, 0 included: a count that found the books
    /// right is in the history too. Fails with STALE_QUANTITY if `compareQuantity` is not on
    /// hand, INSUFFICIENT_STOCK if the count is below what is allocated. Lowering available to
    /// or below the threshold raises a low-stock alert. Needs the `operator` role.
    #[graphql(guard = "RoleGuard(Role::Operator)")]
    async fn inventory_set_on_hand(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: InventorySetOnHandInput,
    ) -> async_graphql::Result<InventoryItemPayload> {
        let command = ItemCommand::SetOnHand {
            quantity: input.quantity,
            compare_quantity: input.compare_quantity,
            reason: input.reason.into(),
            reference: input.reference,
        };
        change(ctx, &input.item_id, input.idempotency_key, command).await
    }

    /// Adjust up to 250 items at once, each row as `inventoryAdjust` would, in order.
    /// REJECT_EVERYTHING applies all rows in one atomic commit or none; on DynamoDB that commit
    /// holds at most 98 rows and low-stock alerts together (a transaction's 100 items, less its
    /// outbox row and idempotency record), and a bulk that needs more is refused with
    /// INVALID_INPUT, nothing applied. REJECT_FAILED_ROWS applies the rows that pass (on
    /// DynamoDB in commits of 49 rows) and reports the others. Every commit is conditioned on
    /// each item's version, so no concurrent change is lost. Needs the `operator` role.
    #[graphql(
        guard = "RoleGuard(Role::Operator)",
        complexity = "crate::graphql::limits::list(input.adjustments.len().clamp(1, BULK_MAX_ROWS), child_complexity)"
    )]
    async fn inventory_bulk_adjust(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to do; see the input type.")] input: InventoryBulkAdjustInput,
    ) -> async_graphql::Result<InventoryBulkAdjustPayload> {
        let mut rows = Vec::with_capacity(input.adjustments.len());
        let mut malformed = Vec::new();
        for (index, row) in input.adjustments.into_iter().enumerate() {
            match parse_id("itemId", &row.item_id) {
                Ok(item_id) => rows.push(BulkRow {
                    item_id,
                    delta: row.delta,
                    reason: row.reason.into(),
                    reference: row.reference,
                }),
                Err(error) => malformed.push(row_error(index, &RowError::from(&error))),
            }
        }
        // A malformed id is the client's bug, not a row the stock refused: the bulk is refused
        // whole, whatever the policy.
        if !malformed.is_empty() {
            return Ok(bulk_payload(Err(malformed)));
        }
        let app = ctx.data::<AppContext>()?;
        let command_ctx = AppContext::command_context(ctx, input.idempotency_key);
        let command = BulkAdjust {
            rows,
            policy: input.error_policy.into(),
        };
        let result = app.commands.bulk_adjust(&command_ctx, command).await;
        Ok(bulk_payload(outcome(result)?))
    }
}
