//! Stock movement report: per item per UTC day, units received, removed, allocated, released,
//! fulfilled and the net on-hand change, accumulated with ADD. ADD is not idempotent, so each
//! day's record carries `lastSequence`, the item's last event counted, and is written on
//! condition that it still holds `s - 1`: a redelivery or a concurrent applier fails the
//! condition instead of counting twice. Within a day that is one UpdateItem per event. The
//! item's checkpoint row (`stock_movements#<itemId>` in projection_checkpoints) only points at
//! the day record holding the latest event; it moves, in one transaction with the new day's
//! record and a check of the old one, once per item per day.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use std::collections::HashMap;

use super::attributes::{n, s, Record, RecordReader};
use super::{
    decode, lost_races, position, unavailable, Cached, DynamoProjections, Outcome, Rows, MAX_RACES,
};
use crate::domain::item::{ItemEvent, StockChangeReason};
use crate::projection::day_of;
use crate::projection::{MovementRow, ProjectionError};
use crate::store::EventEnvelope;

/// Where the movements projector stands on one item: the last sequence number counted, the
/// day record that holds it, and the item's warehouse and SKU (from its creation) that every
/// movement record carries.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    last_sequence: u64,
    day: String,
    owner: (String, String),
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

fn row_key(envelope: &EventEnvelope, day: &str) -> Record {
    HashMap::from([
        ("itemId".to_owned(), s(envelope.aggregate_id.to_string())),
        ("day".to_owned(), s(day)),
    ])
}

/// Reads the checkpoint row, then the day record it points at (two reads, only when this
/// process does not know the item yet).
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
    let owner = (r.string("warehouseId")?, r.string("sku")?);
    let day = r.string("day")?;
    let output = store
        .client
        .get_item()
        .table_name(store.tables.movements())
        .set_key(Some(row_key(envelope, &day)))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable)?;
    let record = output.item.ok_or_else(|| ProjectionError::Poison {
        event_id: envelope.event_id,
        reason: format!("the movements checkpoint points at day {day}, which has no record"),
    })?;
    let last_sequence = RecordReader::new("projection_movements", &record).uint("lastSequence")?;
    Ok(Some(Checkpoint {
        last_sequence,
        day,
        owner,
    }))
}

/// The day record's update: counts the movement (if any), records the owner and moves
/// `lastSequence` to the event; `condition` is what the record must hold before.
fn count(
    movement: Option<&Movement>,
    envelope: &EventEnvelope,
    (warehouse_id, sku): &(String, String),
    condition: &str,
) -> Expression {
    let mut expression = Expression {
        update: "SET #last = :sequence, #warehouseId = :warehouseId, #sku = :sku".to_owned(),
        condition: Some(condition.to_owned()),
        ..Expression::default()
    }
    .name("#last", "lastSequence")
    .name("#warehouseId", "warehouseId")
    .name("#sku", "sku")
    .value(":sequence", n(envelope.sequence_number))
    .value(":warehouseId", s(warehouse_id))
    .value(":sku", s(sku));
    let counters = [
        ("received", movement.map_or(0, |m| m.received)),
        ("removed", movement.map_or(0, |m| m.removed)),
        ("allocated", movement.map_or(0, |m| m.allocated)),
        ("released", movement.map_or(0, |m| m.released)),
        ("fulfilled", movement.map_or(0, |m| m.fulfilled)),
        ("net", movement.map_or(0, |m| m.net)),
    ];
    // ADD of 0 still creates the counter, so a new day's record has all six.
    let adds: Vec<String> = counters
        .iter()
        .map(|(name, _)| format!("#{name} :{name}"))
        .collect();
    expression
        .update
        .push_str(&format!(" ADD {}", adds.join(", ")));
    for (name, value) in counters {
        expression = expression
            .name(&format!("#{name}"), name)
            .value(&format!(":{name}"), n(value));
    }
    expression
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

/// Same day as the last event counted: one conditional UpdateItem on that day's record. False
/// when another writer moved the record first (nothing was counted).
async fn count_same_day(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
    day: &str,
    update: Expression,
) -> Result<bool, ProjectionError> {
    let result = store
        .client
        .update_item()
        .table_name(store.tables.movements())
        .set_key(Some(row_key(envelope, day)))
        .update_expression(update.update)
        .set_condition_expression(update.condition)
        .set_expression_attribute_names(Some(update.names))
        .set_expression_attribute_values(Some(update.values))
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(unavailable(error)),
    }
}

/// The item's first event, or the first of a new day: one transaction that checks the old
/// day's record still ends at `s - 1`, counts into the new day's record and moves the
/// checkpoint to it. False when another writer got there first (nothing was counted).
async fn count_new_day(
    store: &DynamoProjections,
    envelope: &EventEnvelope,
    previous: Option<&Checkpoint>,
    day: &str,
    update: Expression,
) -> Result<bool, ProjectionError> {
    let owner = &update.values;
    let mut pointer = Expression {
        update: "SET #day = :day, #warehouseId = :warehouseId, #sku = :sku".to_owned(),
        ..Expression::default()
    }
    .name("#day", "day")
    .name("#warehouseId", "warehouseId")
    .name("#sku", "sku")
    .value(":day", s(day));
    for placeholder in [":warehouseId", ":sku"] {
        if let Some(value) = owner.get(placeholder) {
            pointer = pointer.value(placeholder, value.clone());
        }
    }
    let mut request = store.client.transact_write_items();
    pointer = match previous {
        None => {
            pointer.condition = Some("attribute_not_exists(#key)".to_owned());
            pointer.name("#key", "checkpointKey")
        }
        Some(previous) => {
            let check = ConditionCheck::builder()
                .table_name(store.tables.movements())
                .set_key(Some(row_key(envelope, &previous.day)))
                .condition_expression("#last = :previous")
                .expression_attribute_names("#last", "lastSequence")
                .expression_attribute_values(":previous", n(previous.last_sequence))
                .build()
                .map_err(|e| ProjectionError::Unavailable(e.to_string()))?;
            request =
                request.transact_items(TransactWriteItem::builder().condition_check(check).build());
            pointer.condition = Some("#day = :previousDay".to_owned());
            pointer.value(":previousDay", s(&previous.day))
        }
    };
    let result = request
        .transact_items(
            TransactWriteItem::builder()
                .update(pointer.into_update(store.tables.checkpoints(), checkpoint_key(envelope))?)
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .update(update.into_update(store.tables.movements(), row_key(envelope, day))?)
                .build(),
        )
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
    cache: &mut Rows<Checkpoint>,
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
    // Cleared once a hint proved wrong: from then on only a read decides.
    let mut hints = true;
    for _ in 0..MAX_RACES {
        let day = day_of(envelope.timestamp);
        let (checkpoint, remembered) = match cache.get(&id) {
            Some(Cached::Known(checkpoint)) => (checkpoint, false),
            Some(Cached::Remembered(checkpoint)) => (Some(checkpoint), true),
            // The item's first event: nothing to read yet (a hint, as in `apply_row`).
            None if envelope.sequence_number == 1 && hints => (None, true),
            None => (read_checkpoint(store, envelope).await?, false),
        };
        let last = checkpoint.as_ref().map_or(0, |c| c.last_sequence);
        if let Some(outcome) = position(last, envelope.sequence_number) {
            if remembered {
                // Not the next event by the hint: let a read decide.
                hints = false;
                continue;
            }
            cache.insert(id, checkpoint);
            return Ok(outcome);
        }
        let Some(owner) = created
            .clone()
            .or_else(|| checkpoint.as_ref().map(|c| c.owner.clone()))
        else {
            return Err(ProjectionError::Poison {
                event_id: envelope.event_id,
                reason: "stock movement for an item whose creation was never applied".into(),
            });
        };
        let won = match &checkpoint {
            // The same day, or nothing to count (the checkpoint still moves on, or the next
            // event would look like a gap; it stays in the record it points at, so a day with
            // no movement gets no record, as in SQLite).
            Some(previous) if previous.day == day || movement.is_none() => {
                let update = count(movement.as_ref(), envelope, &owner, "#last = :previous")
                    .value(":previous", n(last));
                count_same_day(store, envelope, &previous.day, update).await?
            }
            // A record of this day may exist already if the clocks of the deciding
            // processes disagree; it never holds this event (the event's day is this day).
            previous => {
                let update = count(
                    movement.as_ref(),
                    envelope,
                    &owner,
                    "attribute_not_exists(#last) OR #last < :sequence",
                );
                count_new_day(store, envelope, previous.as_ref(), &day, update).await?
            }
        };
        if won {
            let day = match (&checkpoint, &movement) {
                (Some(previous), None) => previous.day.clone(),
                _ => day,
            };
            cache.insert(
                id,
                Some(Checkpoint {
                    last_sequence: envelope.sequence_number,
                    day,
                    owner,
                }),
            );
            return Ok(Outcome::Applied);
        }
        // Another writer moved the record or the checkpoint: read again to tell a duplicate
        // from a gap.
        cache.remove(&id);
        hints = false;
    }
    Err(lost_races(envelope))
}
