//! Stock movement report: per item per UTC day, units received, removed, allocated, released,
//! fulfilled and the net on-hand change, accumulated with ADD. ADD is not idempotent, so each
//! item has a checkpoint (`stock_movements#<itemId>` in projection_checkpoints) advanced in the
//! same TransactWriteItems as the counters, on condition that it still holds `s - 1`: a
//! redelivery or a concurrent applier cancels the transaction instead of counting twice.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use std::collections::HashMap;

use super::attributes::{n, s, Record, RecordReader};
use super::{
    decode, lost_races, position, unavailable, Cache, Cached, DynamoProjections, Outcome, MAX_RACES,
};
use crate::domain::item::{ItemEvent, StockChangeReason};
use crate::projection::day_of;
use crate::projection::{MovementRow, ProjectionError};
use crate::store::EventEnvelope;

/// The movements checkpoint of one item: the last sequence number counted, and the item's
/// warehouse and SKU (from its creation) that every movement record carries.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    last_sequence: u64,
    owner: Option<(String, String)>,
}

/// One event's contribution to its day's counters.
struct Movement {
    received: i64,
    removed: i64,
    allocated: i64,
    released: i64,
    fulfilled: i64,
    net: i64,
}

/// The same arithmetic as the SQLite projector: on-hand changes split by sign into received
/// and removed, except a fulfilment, which counts as fulfilled.
fn movement_of(event: &ItemEvent) -> Option<Movement> {
    let zero = Movement {
        received: 0,
        removed: 0,
        allocated: 0,
        released: 0,
        fulfilled: 0,
        net: 0,
    };
    Some(match *event {
        ItemEvent::InventoryItemCreated {
            initial_quantity, ..
        } => Movement {
            received: initial_quantity,
            net: initial_quantity,
            ..zero
        },
        ItemEvent::StockLevelChanged { delta, reason, .. } => match reason {
            StockChangeReason::AllocationFulfilled => Movement {
                fulfilled: -delta,
                net: delta,
                ..zero
            },
            _ if delta > 0 => Movement {
                received: delta,
                net: delta,
                ..zero
            },
            _ => Movement {
                removed: -delta,
                net: delta,
                ..zero
            },
        },
        ItemEvent::StockAllocated { quantity, .. } => Movement {
            allocated: quantity,
            ..zero
        },
        ItemEvent::StockDeallocated { quantity, .. } => Movement {
            released: quantity,
            ..zero
        },
        _ => return None,
    })
}

pub fn from_record(record: &Record) -> Result<MovementRow, ProjectionError> {
    let r = RecordReader::new("projection_movements", record);
    Ok(MovementRow {
        item_id: r.uuid("itemId")?,
        warehouse_id: r.uuid("warehouseId")?,
        sku: r.string("sku")?,
        day: r.string("day")?,
        received: r.int("received")?,
        removed: r.int("removed")?,
        allocated: r.int("allocated")?,
        released: r.int("released")?,
        fulfilled: r.int("fulfilled")?,
        net: r.int("net")?,
    })
}

/// An update expression with its placeholders, usable alone or inside a transaction.
#[derive(Default)]
struct Expression {
    update: String,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Expression {
    fn name(mut self, placeholder: &str, attribute: &str) -> Self {
        self.names
            .insert(placeholder.to_owned(), attribute.to_owned());
        self
    }

    fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.insert(placeholder.to_owned(), value);
        self
    }

    fn into_update(self, table: String, key: Record) -> Result<Update, ProjectionError> {
        Update::builder()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(self.update)
            .set_condition_expression(self.condition)
            .set_expression_attribute_names(Some(self.names))
            .set_expression_attribute_values(Some(self.values))
            .build()
            .map_err(|e| ProjectionError::Unavailable(e.to_string()))
    }
}

fn checkpoint_key(envelope: &EventEnvelope) -> Record {
    let key = format!("stock_movements#{}", envelope.aggregate_id);
    HashMap::from([("checkpointKey".to_owned(), s(key))])
}

async fn read_checkpoint(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
) -> Result<Option<Checkpoint>, ProjectionError> {
    let output = store
        .client
        .get_item()
        .table_name(store.tables.checkpoints())
        .set_key(Some(checkpoint_key(envelope)))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable)?;
    let Some(record) = output.item else {
        return Ok(None);
    };
    let r = RecordReader::new("projection_checkpoints", &record);
    let owner = match (r.opt_string("warehouseId")?, r.opt_string("sku")?) {
        (Some(warehouse_id), Some(sku)) => Some((warehouse_id, sku)),
        _ => None,
    };
    Ok(Some(Checkpoint {
        last_sequence: r.uint("lastSequence")?,
        owner,
    }))
}

/// Advances the checkpoint from `last` to the event's sequence number (recording the owner
/// when the event creates the item).
fn advance(last: u64, envelope: &EventEnvelope, created: Option<&(String, String)>) -> Expression {
    let mut expression = Expression {
        update: "SET #last = :sequence".to_owned(),
        ..Expression::default()
    }
    .name("#last", "lastSequence")
    .value(":sequence", n(envelope.sequence_number));
    if let Some((warehouse_id, sku)) = created {
        expression
            .update
            .push_str(", #warehouseId = :warehouseId, #sku = :sku");
        expression = expression
            .name("#warehouseId", "warehouseId")
            .name("#sku", "sku")
            .value(":warehouseId", s(warehouse_id))
            .value(":sku", s(sku));
    }
    if last == 0 {
        expression.condition = Some("attribute_not_exists(#checkpointKey)".to_owned());
        expression.name("#checkpointKey", "checkpointKey")
    } else {
        expression.condition = Some("#last = :previous".to_owned());
        expression.value(":previous", n(last))
    }
}

/// Adds a movement to its day's counters (creating the record on the first of the day).
fn count(movement: &Movement, (warehouse_id, sku): &(String, String)) -> Expression {
    let mut expression = Expression {
        update: "ADD #received :received, #removed :removed, #allocated :allocated, \
                 #released :released, #fulfilled :fulfilled, #net :net \
                 SET #warehouseId = :warehouseId, #sku = :sku"
            .to_owned(),
        ..Expression::default()
    };
    for (name, value) in [
        ("received", movement.received),
        ("removed", movement.removed),
        ("allocated", movement.allocated),
        ("released", movement.released),
        ("fulfilled", movement.fulfilled),
        ("net", movement.net),
    ] {
        expression = expression
            .name(&format!("#{name}"), name)
            .value(&format!(":{name}"), n(value));
    }
    expression
        .name("#warehouseId", "warehouseId")
        .name("#sku", "sku")
        .value(":warehouseId", s(warehouse_id))
        .value(":sku", s(sku))
}

/// True when a cancelled transaction failed only on conditions or conflicts, i.e. another
/// writer got there first and the checkpoint must be read again; false for any other reason
/// (validation, throughput), which is reported as unavailable.
fn lost_race(error: &TransactWriteItemsError) -> bool {
    match error {
        TransactWriteItemsError::TransactionCanceledException(cancelled) => {
            cancelled.cancellation_reasons().iter().all(|reason| {
                matches!(
                    reason.code(),
                    None | Some("None")
                        | Some("ConditionalCheckFailed")
                        | Some("TransactionConflict")
                )
            })
        }
        _ => false,
    }
}

/// Writes the checkpoint alone; false when another writer moved it first.
async fn advance_only(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
    advance: Expression,
) -> Result<bool, ProjectionError> {
    let result = store
        .client
        .update_item()
        .table_name(store.tables.checkpoints())
        .set_key(Some(checkpoint_key(envelope)))
        .update_expression(advance.update)
        .set_condition_expression(advance.condition)
        .set_expression_attribute_names(Some(advance.names))
        .set_expression_attribute_values(Some(advance.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.is_conditional_check_failed_exception() || e.is_transaction_conflict_exception()
            }) =>
        {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

/// Writes the checkpoint and the day's counters in one transaction; false when another writer
/// moved the checkpoint first (then nothing was counted).
async fn advance_and_count(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
    advance: Expression,
    count: Expression,
) -> Result<bool, ProjectionError> {
    let row_key = HashMap::from([
        ("itemId".to_owned(), s(envelope.aggregate_id.to_string())),
        ("day".to_owned(), s(day_of(envelope.timestamp))),
    ]);
    let checkpoint = advance.into_update(store.tables.checkpoints(), checkpoint_key(envelope))?;
    let counters = count.into_update(store.tables.movements(), row_key)?;
    let result = store
        .client
        .transact_write_items()
        .transact_items(TransactWriteItem::builder().update(checkpoint).build())
        .transact_items(TransactWriteItem::builder().update(counters).build())
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(lost_race) => Ok(false),
        Err(error) => Err(unavailable(error)),
    }
}

pub async fn apply(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
    cache: &mut Cache,
) -> Result<Outcome, ProjectionError> {
    let event: ItemEvent = decode(envelope)?;
    let created = match &event {
        ItemEvent::InventoryItemCreated {
            warehouse_id, sku, ..
        } => Some((warehouse_id.to_string(), sku.clone())),
        _ => None,
    };
    let movement = movement_of(&event);
    let id = envelope.aggregate_id;
    for _ in 0..MAX_RACES {
        let (checkpoint, remembered) = match cache.movements.get(&id) {
            Some(Cached::Known(checkpoint)) => (checkpoint, false),
            Some(Cached::Remembered(checkpoint)) => (Some(checkpoint), true),
            None => (read_checkpoint(store, envelope).await?, false),
        };
        let last = checkpoint.as_ref().map_or(0, |c| c.last_sequence);
        if let Some(outcome) = position(last, envelope.sequence_number) {
            if remembered {
                // Not the next event by the hint: let a read decide.
                continue;
            }
            cache.movements.insert(id, checkpoint);
            return Ok(outcome);
        }
        let owner = created.clone().or_else(|| checkpoint.and_then(|c| c.owner));
        let advance = advance(last, envelope, created.as_ref());
        let won = match &movement {
            // Nothing to count: the checkpoint still moves on, or the next event would look
            // like a gap.
            None => advance_only(store, envelope, advance).await?,
            Some(movement) => {
                let Some(owner) = &owner else {
                    return Err(ProjectionError::Poison {
                        event_id: envelope.event_id,
                        reason: "stock movement for an item whose creation was never applied"
                            .into(),
                    });
                };
                let count = count(movement, owner);
                advance_and_count(store, envelope, advance, count).await?
            }
        };
        if won {
            cache.movements.insert(
                id,
                Some(Checkpoint {
                    last_sequence: envelope.sequence_number,
                    owner,
                }),
            );
            return Ok(Outcome::Applied);
        }
        // Another writer moved the checkpoint: read it again to tell a duplicate from a gap.
        cache.movements.remove(&id);
    }
    Err(lost_races(envelope))
}
