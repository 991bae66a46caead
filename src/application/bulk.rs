//! Bulk adjustments (`inventoryBulkAdjust`): up to 250 rows, each an `AdjustStock` on its item,
//! decided in input order, so rows on one item see the rows before them. REJECT_EVERYTHING
//! lands every row in one atomic commit over all the items touched, or none; REJECT_FAILED_ROWS
//! lands the rows that pass and reports the rest, in as many commits as the store needs. Each
//! commit is an ordinary pipeline request, conditioned on the version of every item it read.

use serde::{Deserialize, Serialize};
use std::collections::hash_map::{Entry, HashMap};
use uuid::Uuid;

use super::commands::{decide, Commands};
use super::draft::{Draft, Need};
use super::idempotency::fingerprint;
use super::outcome::{CommandContext, CommandError, Entity, Outcome};
use super::pipeline::Request;
use crate::auth::Scope;
use crate::domain::item::{self, AdjustmentReason, InventoryItem, ItemCommand};
use crate::domain::warehouse::Warehouse;
use crate::domain::{Aggregate, DomainError};
use crate::store::StoreError;

/// Most rows in one bulk adjustment.
pub const BULK_MAX_ROWS: usize = 250;

/// What to do when some rows are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BulkPolicy {
    /// Apply no row unless every row passes, in one atomic commit.
    RejectEverything,
    /// Apply the rows that pass; report the others.
    RejectFailedRows,
}

/// One row: an adjustment of one item.
#[derive(Debug, Clone, Serialize)]
pub struct BulkRow {
    pub item_id: Uuid,
    pub delta: i64,
    pub reason: AdjustmentReason,
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BulkAdjust {
    pub rows: Vec<BulkRow>,
    pub policy: BulkPolicy,
}

/// What became of a bulk's rows (also what its idempotency records keep).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulkOutcome {
    /// One per row, in input order.
    pub rows: Vec<RowOutcome>,
    /// REJECT_EVERYTHING met refused rows, so no row was applied.
    pub refused: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowOutcome {
    /// The row's position in the input, from 0.
    pub index: usize,
    /// The item right after this row; `None` when the row was not applied.
    pub item: Option<Entity<InventoryItem>>,
    /// Why the row was refused, if it was.
    pub error: Option<RowError>,
}

/// A refused row's reason, kept as the client sees it so that a retry gets it back verbatim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowError {
    pub code: String,
    pub message: String,
    /// The row's field at fault (`itemId`, `delta`, `reference`), if one is.
    pub field: Option<String>,
}

impl From<&DomainError> for RowError {
    fn from(error: &DomainError) -> Self {
        // A row has no `quantity`: what it lacks stock for is its delta.
        let field = match error.field() {
            Some("quantity") => Some("delta"),
            other => other,
        };
        Self {
            code: error.code().to_owned(),
            message: error.to_string(),
            field: field.map(str::to_owned),
        }
    }
}

/// Rows per commit under a transaction limit of `max_items` (DynamoDB: 100 → 49). A row takes
/// at most two items: its `StockLevelChanged` and a low-stock alert, or, refused on a
/// remembered state, the check that holds its item to its version; one outbox row and the
/// idempotency record come on top.
fn rows_per_commit(max_items: usize) -> usize {
    (max_items.saturating_sub(2) / 2).max(1)
}

impl Commands {
    /// Runs a bulk adjustment. Rows are refused one by one (`RowOutcome::error`); the bulk as a
    /// whole is refused (an error, nothing applied) for a row count outside 1..=250, for a row
    /// outside the caller's warehouses, and under REJECT_EVERYTHING for a commit the store
    /// cannot take in one (DynamoDB: 100 items, so at most 98 rows and alerts together).
    pub async fn bulk_adjust(
        &self,
        ctx: &CommandContext,
        input: BulkAdjust,
    ) -> Result<Outcome, CommandError> {
        let count = input.rows.len();
        if !(1..=BULK_MAX_ROWS).contains(&count) {
            return Err(DomainError::invalid(
                "adjustments",
                format!("a bulk adjustment takes 1 to {BULK_MAX_ROWS} rows; this one has {count}"),
            )
            .into());
        }
        let max_items = self.pipeline.shared().store.max_commit_items();
        let per_commit = match (input.policy, max_items) {
            (BulkPolicy::RejectFailedRows, Some(max)) => rows_per_commit(max),
            _ => count,
        };
        let parts = count.div_ceil(per_commit);
        if parts > 1 {
            // Checked before the first commit lands, so that no part is applied before a later
            // one is found forbidden (an item's warehouse never changes). Each part checks again.
            self.all_within(ctx, &input.rows).await?;
        }
        let mut rows = Vec::with_capacity(count);
        for (part, start) in (0..count).step_by(per_commit).enumerate() {
            let end = (start + per_commit).min(count);
            let fingerprint = match parts {
                1 => fingerprint(&input)?,
                _ => fingerprint(&(&input, part))?,
            };
            let part = (parts > 1).then_some(part);
            let request = request(
                &input.rows[start..end],
                start,
                input.policy,
                fingerprint,
                part,
            );
            match self.submit(ctx, Ok(request)).await {
                Ok(Outcome::Bulk(outcome)) if outcome.refused => return Ok(Outcome::Bulk(outcome)),
                Ok(Outcome::Bulk(outcome)) => rows.extend(outcome.rows),
                Ok(_) => return Err(StoreError::corrupt("a bulk part answered otherwise").into()),
                Err(CommandError::Store(StoreError::TooLarge(why)))
                    if input.policy == BulkPolicy::RejectEverything =>
                {
                    return Err(too_large(&why, max_items).into())
                }
                Err(error) => return Err(error),
            }
        }
        Ok(Outcome::Bulk(BulkOutcome {
            rows,
            refused: false,
        }))
    }

    /// Every existing item the rows name lies within the caller's warehouses.
    async fn all_within(&self, ctx: &CommandContext, rows: &[BulkRow]) -> Result<(), CommandError> {
        if matches!(ctx.scope, Scope::All) {
            return Ok(());
        }
        let shared = self.pipeline.shared();
        let loads = distinct(rows.iter().map(|row| row.item_id))
            .into_iter()
            .map(|id| shared.latest::<InventoryItem>(id, false));
        for (item, _) in futures::future::try_join_all(loads).await? {
            if item.state.exists {
                ctx.within(item.state.warehouse_id)?;
            }
        }
        Ok(())
    }
}

fn too_large(why: &str, max_items: Option<usize>) -> DomainError {
    let most = max_items.map_or_else(String::new, |max| {
        format!(
            "; on this store its rows and the low-stock alerts they raise may number at most {}",
            max.saturating_sub(2)
        )
    });
    DomainError::invalid(
        "adjustments",
        format!(
            "REJECT_EVERYTHING applies every row in one atomic commit, and this bulk is too \
             large for one ({why}){most}. Split it, or send it with REJECT_FAILED_ROWS"
        ),
    )
}

/// These ids each once, in first-named order.
fn distinct(ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
    let mut seen = std::collections::HashSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}

/// One commit's rows, `start` the index of the first. On a queue of its own: a bulk is a
/// batch by itself (its events may fill a commit), and meets the commands on its items'
/// queues only through the commit's conditions, which make the loser decide again.
fn request(
    rows: &[BulkRow],
    start: usize,
    policy: BulkPolicy,
    fingerprint: String,
    part: Option<usize>,
) -> Request {
    let rows: Vec<(usize, BulkRow)> = (start..).zip(rows.iter().cloned()).collect();
    let needs = distinct(rows.iter().map(|(_, row)| row.item_id))
        .into_iter()
        .map(Need::of::<InventoryItem>)
        .collect();
    Request {
        queue: Uuid::now_v7(),
        mutation: "inventoryBulkAdjust",
        fingerprint,
        part,
        needs,
        decide: decide(move |draft, ctx| decide_rows(draft, ctx, &rows, policy)),
    }
}

/// Decides every row on the state the rows before it leave (on copies, so that nothing is
/// recorded before it is known whether anything may be), then records the rows to apply.
fn decide_rows(
    draft: &mut Draft,
    ctx: &CommandContext,
    rows: &[(usize, BulkRow)],
    policy: BulkPolicy,
) -> Result<Outcome, CommandError> {
    let mut states: HashMap<Uuid, InventoryItem> = HashMap::new();
    let mut decided = Vec::with_capacity(rows.len());
    for (_, row) in rows {
        let state = match states.entry(row.item_id) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                entry.insert(draft.state::<InventoryItem>(row.item_id)?.state.clone())
            }
        };
        if state.exists {
            ctx.within(state.warehouse_id)?;
        }
        let command = ItemCommand::AdjustStock {
            delta: row.delta,
            reason: row.reason,
            reference: row.reference.clone(),
        };
        let result = item::decide(row.item_id, state, &Warehouse::default(), command);
        if let Ok(events) = &result {
            events.iter().for_each(|event| state.evolve(event));
        }
        decided.push(result);
    }
    let refused = decided.iter().any(Result::is_err);
    if refused {
        draft.refused_some();
    }
    let apply = !(refused && policy == BulkPolicy::RejectEverything);
    let mut outcomes = Vec::with_capacity(rows.len());
    for ((index, row), result) in rows.iter().zip(decided) {
        let (item, error) = match result {
            Ok(events) if apply => (
                Some(draft.record::<InventoryItem>(row.item_id, events, ctx)?),
                None,
            ),
            Ok(_) => (None, None),
            Err(error) => (None, Some(RowError::from(&error))),
        };
        outcomes.push(RowOutcome {
            index: *index,
            item,
            error,
        });
    }
    Ok(Outcome::Bulk(BulkOutcome {
        rows: outcomes,
        refused: !apply,
    }))
}

#[cfg(test)]
mod tests;
