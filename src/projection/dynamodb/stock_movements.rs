//! Stock movement report: per item per UTC day, units received, removed, allocated, released,
//! fulfilled and the net on-hand change, accumulated with ADD. ADD is not idempotent, so each
//! day's record carries `lastSequence`, the item's last event counted, and is written on
//! condition that it still holds `s - 1`: a redelivery or a concurrent applier fails the
//! condition instead of counting twice. Within a day that is one UpdateItem per batch of the
//! item's events (their counters summed). The
//! item's checkpoint row (`stock_movements#<itemId>` in projection_checkpoints) only points at
//! the day record holding the latest event; it moves, in one transaction with the new day's
//! record and a check of the old one, once per item per day.

use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, TransactWriteItem, Update};
use std::collections::HashMap;

use super::attributes::{n, s, Record, RecordReader};
use super::hints::Cached;
use super::phases::Progress;
use super::{lost_races, unavailable, DynamoProjections, MAX_RACES};
use crate::dynamodb::ConditionalWrite;
use crate::projection::batch::{plan, Stream};
use crate::projection::movements::{created, movement_runs, never_created, Movement, Owner};
use crate::projection::{MovementRow, ProjectionError};
use uuid::Uuid;

/// Where the movements projector stands on one item: the last sequence number counted, the
/// day record that holds it, and the item's warehouse and SKU (from its creation) that every
/// movement record carries.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    last_sequence: u64,
    day: String,
    owner: Owner,
}

impl Checkpoint {
    pub(super) fn last_sequence(&self) -> u64 {
        self.last_sequence
    }
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
            .map_err(unavailable("building a movement update"))
    }
}

fn checkpoint_key(id: Uuid) -> Record {
    let key = format!("stock_movements#{id}");
    HashMap::from([("checkpointKey".to_owned(), s(key))])
}

fn row_key(id: Uuid, day: &str) -> Record {
    HashMap::from([
        ("itemId".to_owned(), s(id.to_string())),
        ("day".to_owned(), s(day)),
    ])
}

/// Reads the checkpoint row, then the day record it points at (two reads, only when this
/// process does not know the item yet).
pub(super) async fn read_checkpoint(
    store: &DynamoProjections,
    id: Uuid,
) -> Result<Option<Checkpoint>, ProjectionError> {
    let output = store
        .client
        .get_item()
        .table_name(store.tables.checkpoints())
        .set_key(Some(checkpoint_key(id)))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable("reading a movement checkpoint"))?;
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
        .set_key(Some(row_key(id, &day)))
        .consistent_read(true)
        .send()
        .await
        .map_err(unavailable("reading a movement day record"))?;
    let record = output.item.ok_or_else(|| {
        ProjectionError::Unavailable(format!(
            "the movements checkpoint of item {id} points at day {day}, which has no record"
        ))
    })?;
    let last_sequence = RecordReader::new("projection_movements", &record).uint("lastSequence")?;
    Ok(Some(Checkpoint {
        last_sequence,
        day,
        owner,
    }))
}

/// The day record's update: counts the movement, records the owner and moves `lastSequence`
/// to `sequence`; `condition` is what the record must hold before.
fn count(
    movement: &Movement,
    sequence: u64,
    (warehouse_id, sku): &Owner,
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
    .value(":sequence", n(sequence))
    .value(":warehouseId", s(warehouse_id))
    .value(":sku", s(sku));
    let counters = [
        ("received", movement.received),
        ("removed", movement.removed),
        ("allocated", movement.allocated),
        ("released", movement.released),
        ("fulfilled", movement.fulfilled),
        ("net", movement.net),
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

/// Same day as the last event counted: one conditional UpdateItem on that day's record, for
/// every event of the batch on that day. False when another writer moved the record first
/// (nothing was counted).
async fn count_same_day(
    store: &DynamoProjections,
    id: Uuid,
    day: &str,
    update: Expression,
) -> Result<bool, ProjectionError> {
    let result = store
        .client
        .update_item()
        .table_name(store.tables.movements())
        .set_key(Some(row_key(id, day)))
        .update_expression(update.update)
        .set_condition_expression(update.condition)
        .set_expression_attribute_names(Some(update.names))
        .set_expression_attribute_values(Some(update.values))
        .send()
        .await;
    result
        .map(|_| true)
        .or_if_condition_failed(false)
        .map_err(unavailable("counting movements into a day record"))
}

/// The item's first events, or the first of a new day: one transaction that checks the old
/// day's record still ends where the checkpoint says, counts into the new day's record and
/// moves the checkpoint to it. False when another writer got there first (nothing was counted).
async fn count_new_day(
    store: &DynamoProjections,
    id: Uuid,
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
                .set_key(Some(row_key(id, &previous.day)))
                .condition_expression("#last = :previous")
                .expression_attribute_names("#last", "lastSequence")
                .expression_attribute_values(":previous", n(previous.last_sequence))
                .build()
                .map_err(unavailable("building a movement check"))?;
            request =
                request.transact_items(TransactWriteItem::builder().condition_check(check).build());
            pointer.condition = Some("#day = :previousDay".to_owned());
            pointer.value(":previousDay", s(&previous.day))
        }
    };
    let result = request
        .transact_items(
            TransactWriteItem::builder()
                .update(pointer.into_update(store.tables.checkpoints(), checkpoint_key(id))?)
                .build(),
        )
        .transact_items(
            TransactWriteItem::builder()
                .update(update.into_update(store.tables.movements(), row_key(id, day))?)
                .build(),
        )
        .send()
        .await;
    match result {
        Ok(_) => Ok(true),
        Err(error) if error.as_service_error().is_some_and(lost_race) => Ok(false),
        Err(error) => Err(unavailable("counting movements into a new day record")(
            error,
        )),
    }
}

/// One item's events: reads its checkpoint unless known or hinted, skips duplicates, stops at
/// a gap and counts the rest, run by run, each run conditioned on the one before.
pub(super) async fn apply_stream(
    store: &DynamoProjections,
    id: Uuid,
    stream: Stream<'_>,
    mut start: Option<Cached<Checkpoint>>,
) -> Result<(Uuid, Option<Checkpoint>, Progress), ProjectionError> {
    let first = stream.first().map_or(0, |(_, e)| e.sequence_number);
    let mut changed = false;
    // Cleared once a hint proved wrong: from then on only a read decides.
    let mut hints = true;
    'race: for _ in 0..MAX_RACES {
        let (mut checkpoint, hinted) = match start.take() {
            Some(Cached::Known(checkpoint)) => (checkpoint, false),
            Some(Cached::Remembered(checkpoint)) if hints => (Some(checkpoint), true),
            // The item's first event: nothing to read yet (a hint, as in `apply_stream` of
            // the single-row projectors).
            None if first == 1 && hints => (None, true),
            _ => (read_checkpoint(store, id).await?, false),
        };
        let last = checkpoint.as_ref().map_or(0, |c| c.last_sequence);
        let plan = plan(last, &stream);
        if hinted && plan.needs_read() {
            hints = false;
            continue;
        }
        let created = created(plan.next.iter().map(|(_, e)| *e));
        let day = checkpoint.as_ref().map(|c| c.day.as_str());
        for run in movement_runs(day, plan.next.iter().map(|(_, e)| *e))? {
            let Some(owner) = created
                .clone()
                .or_else(|| checkpoint.as_ref().map(|c| c.owner.clone()))
            else {
                let event_id = plan
                    .next
                    .first()
                    .map(|(_, e)| e.event_id)
                    .unwrap_or_default();
                return Err(never_created(event_id));
            };
            let movement = run.movement.unwrap_or_default();
            let won = match (&checkpoint, run.new_day) {
                (Some(previous), false) => {
                    let update = count(&movement, run.last, &owner, "#last = :previous")
                        .value(":previous", n(previous.last_sequence));
                    count_same_day(store, id, &previous.day, update).await?
                }
                // A record of this day may exist already if the clocks of the deciding
                // processes disagree; it never holds these events (they are past the
                // checkpoint, which the transaction checks).
                (previous, _) => {
                    let update = count(
                        &movement,
                        run.last,
                        &owner,
                        "attribute_not_exists(#last) OR #last < :first",
                    )
                    .value(":first", n(run.first));
                    count_new_day(store, id, previous.as_ref(), &run.day, update).await?
                }
            };
            if !won {
                // Another writer moved the record or the checkpoint: read again to tell
                // duplicates from a gap (the runs that landed are then duplicates).
                hints = false;
                continue 'race;
            }
            changed = true;
            checkpoint = Some(Checkpoint {
                last_sequence: run.last,
                day: run.day,
                owner,
            });
        }
        return Ok((
            id,
            checkpoint,
            Progress {
                changed,
                gap: plan.gap,
            },
        ));
    }
    Err(lost_races(id))
}
