//! The wire format: an event is its envelope as JSON (the same camelCase form the store and
//! backups use) with the routing and tracing facts copied into AMQP properties and headers, so
//! that operators and other consumers can route and filter without parsing the body. Read-model
//! changes are the view as JSON, told apart by routing key (and the `type` property).

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

use crate::bus::LiveMessage;
use crate::projection::{AllocationView, ItemView};
use crate::store::EventEnvelope;

pub const JSON: &str = "application/json";
pub const ITEM_KEY: &str = "readmodel.item";
pub const ALLOCATION_KEY: &str = "readmodel.allocation";
/// AMQP delivery mode 2: the broker writes the message to disk (in a durable queue).
const PERSISTENT: u8 = 2;
/// Delivery mode 1: read-model changes are only for whoever is listening now.
const TRANSIENT: u8 = 1;
/// Set by quorum queues on a redelivered message: how many times it was returned before.
const DELIVERY_COUNT: &str = "x-delivery-count";

pub struct Outgoing {
    pub routing_key: String,
    pub properties: BasicProperties,
    pub body: Vec<u8>,
}

fn text(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

pub fn event(envelope: &EventEnvelope) -> Result<Outgoing, serde_json::Error> {
    let body = serde_json::to_vec(envelope)?;
    let mut headers = FieldTable::default();
    headers.insert(
        "aggregate-id".into(),
        text(&envelope.aggregate_id.to_string()),
    );
    headers.insert(
        "sequence-number".into(),
        // Sequence numbers start at 1 and grow by one per event: far inside i64.
        AMQPValue::LongLongInt(i64::try_from(envelope.sequence_number).unwrap_or(i64::MAX)),
    );
    headers.insert(
        "schema-version".into(),
        AMQPValue::LongLongInt(i64::from(envelope.schema_version)),
    );
    headers.insert(
        "correlation-id".into(),
        text(&envelope.metadata.correlation_id),
    );
    let properties = BasicProperties::default()
        .with_delivery_mode(PERSISTENT)
        .with_content_type(JSON.into())
        .with_message_id(envelope.event_id.to_string().into())
        .with_type(ShortString::from(envelope.event_type.as_str()))
        .with_timestamp(u64::try_from(envelope.timestamp / 1000).unwrap_or(0))
        .with_headers(headers);
    Ok(Outgoing {
        routing_key: format!("{}.{}", envelope.aggregate_type, envelope.event_type),
        properties,
        body,
    })
}

pub fn item(view: &ItemView) -> Result<Outgoing, serde_json::Error> {
    change(ITEM_KEY, "ItemView", serde_json::to_vec(view)?)
}

pub fn allocation(view: &AllocationView) -> Result<Outgoing, serde_json::Error> {
    change(ALLOCATION_KEY, "AllocationView", serde_json::to_vec(view)?)
}

fn change(routing_key: &str, kind: &str, body: Vec<u8>) -> Result<Outgoing, serde_json::Error> {
    Ok(Outgoing {
        routing_key: routing_key.to_owned(),
        properties: BasicProperties::default()
            .with_delivery_mode(TRANSIENT)
            .with_content_type(JSON.into())
            .with_type(kind.into()),
        body,
    })
}

/// A live delivery as a `LiveMessage`, by the exchange it came through (events or changes) and,
/// for changes, by routing key.
pub fn live(
    from_events: bool,
    routing_key: &str,
    body: &[u8],
) -> Result<LiveMessage, serde_json::Error> {
    if from_events {
        return serde_json::from_slice(body).map(LiveMessage::Event);
    }
    match routing_key {
        ITEM_KEY => serde_json::from_slice(body).map(LiveMessage::ItemChanged),
        ALLOCATION_KEY => serde_json::from_slice(body).map(LiveMessage::AllocationChanged),
        other => Err(serde::de::Error::custom(format!(
            "unknown read-model routing key {other:?}"
        ))),
    }
}

/// How many times this delivery was handed out before (0 on the first delivery).
pub fn previous_deliveries(properties: &BasicProperties) -> u32 {
    let Some(value) = properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(DELIVERY_COUNT))
    else {
        return 0;
    };
    let count = match value {
        AMQPValue::LongLongInt(n) => *n,
        AMQPValue::LongInt(n) => i64::from(*n),
        AMQPValue::LongUInt(n) => i64::from(*n),
        AMQPValue::ShortInt(n) => i64::from(*n),
        AMQPValue::ShortUInt(n) => i64::from(*n),
        AMQPValue::ShortShortInt(n) => i64::from(*n),
        AMQPValue::ShortShortUInt(n) => i64::from(*n),
        _ => 0,
    };
    u32::try_from(count).unwrap_or(0)
}
