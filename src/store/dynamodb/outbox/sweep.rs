//! The sweep: one page of a shard's outbox rows older than the grace period, with the events
//! each names read back from the events table.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;

use super::super::{event_from_item, n, s, text, unavailable, Item};
use super::SWEEP_PAGE;
use crate::dynamodb::Tables;
use crate::store::{EventEnvelope, StoreError};

/// One page of a shard's outbox rows older than `before` (every row when `None`), oldest
/// first, each with the events it names read from the events table, and whether the page
/// was full.
pub(super) async fn sweep(
    client: &Client,
    tables: &Tables,
    shard: u32,
    before: Option<String>,
) -> Result<(Vec<(String, Vec<EventEnvelope>)>, bool), StoreError> {
    let mut query = client
        .query()
        .table_name(tables.outbox())
        .expression_attribute_names("#shard", "shard")
        .expression_attribute_values(":shard", n(shard))
        .consistent_read(true)
        .limit(SWEEP_PAGE);
    query = match before {
        Some(before) => query
            .key_condition_expression("#shard = :shard AND #id < :before")
            .expression_attribute_names("#id", "outboxId")
            .expression_attribute_values(":before", s(before)),
        None => query.key_condition_expression("#shard = :shard"),
    };
    let page = query.send().await.map_err(unavailable)?;
    let full = page.last_evaluated_key().is_some_and(|key| !key.is_empty());
    let mut rows = Vec::new();
    for item in page.items() {
        let id = text(item, "outboxId")?;
        let names = text(item, "events")?;
        let keys = names
            .split(',')
            .map(|name| {
                let (aggregate, sequence) = name.split_once(':').ok_or_else(|| {
                    StoreError::corrupt(format!("outbox row {id}: bad event name {name}"))
                })?;
                Ok((aggregate.to_owned(), sequence.to_owned()))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.push((id, keys));
    }
    // Every named event, read back in one BatchGetItem per 100.
    let wanted: Vec<(String, String)> = rows.iter().flat_map(|(_, keys)| keys.clone()).collect();
    let keys: Vec<Item> = wanted
        .iter()
        .map(|(aggregate, sequence)| {
            HashMap::from([
                ("aggregateId".to_owned(), s(aggregate.clone())),
                (
                    "sequenceNumber".to_owned(),
                    AttributeValue::N(sequence.clone()),
                ),
            ])
        })
        .collect();
    let mut found: HashMap<(String, String), EventEnvelope> = HashMap::new();
    for item in crate::dynamodb::batch_get(client, &tables.events(), keys)
        .await
        .map_err(|e| StoreError::unavailable_because("outbox", e))?
    {
        let event = event_from_item(&item)?;
        found.insert(
            (
                event.aggregate_id.to_string(),
                event.sequence_number.to_string(),
            ),
            event,
        );
    }
    let rows = rows
        .into_iter()
        .map(|(id, keys)| {
            let events = keys
                .into_iter()
                .map(|key| {
                    found.remove(&key).ok_or_else(|| {
                        StoreError::corrupt(format!(
                            "outbox row {id} names event {}:{}, which is not stored",
                            key.0, key.1
                        ))
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            Ok((id, events))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok((rows, full))
}
