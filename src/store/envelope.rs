//! The event envelope: the unit stored, published and projected. Its JSON form (camelCase
//! fields) is what the bus carries and what `events` queries and backups show.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{AggregateType, DomainEvent};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub actor: String,
    pub correlation_id: String,
    pub causation_id: Option<String>,
    pub idempotency_key: Option<String>,
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventEnvelope {
    pub event_id: Uuid,
    pub aggregate_id: Uuid,
    pub aggregate_type: AggregateType,
    pub sequence_number: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub event_data: serde_json::Value,
    pub metadata: Metadata,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
}

impl EventEnvelope {
    /// Wraps a domain event for appending at `sequence_number`.
    pub fn new<E: DomainEvent>(
        event_id: Uuid,
        aggregate_type: AggregateType,
        aggregate_id: Uuid,
        sequence_number: u64,
        event: &E,
        metadata: Metadata,
        timestamp: i64,
    ) -> Self {
        let (event_type, event_data) = event.to_parts();
        Self {
            event_id,
            aggregate_id,
            aggregate_type,
            sequence_number,
            event_type,
            schema_version: event.schema_version(),
            event_data,
            metadata,
            timestamp,
        }
    }

    /// Decodes the domain event inside, upcasting an older schema version to the current one.
    pub fn decode<E: DomainEvent>(&self) -> Result<E, serde_json::Error> {
        if self.schema_version == crate::domain::upcast::current_version(&self.event_type) {
            return E::from_parts(&self.event_type, &self.event_data);
        }
        let data = crate::domain::upcast::upcast(
            &self.event_type,
            self.schema_version,
            self.event_data.clone(),
        );
        E::from_parts(&self.event_type, &data)
    }

    /// Whether the domain knows this event: its type is one of its aggregate type's events
    /// (the domain's own enums decide, so a new event type is known as soon as it exists), its
    /// schema version is one the upcasters reach the current shape from, and its data has
    /// that shape. Used to refuse a backup the service could not read back.
    pub fn check_known(&self) -> Result<(), String> {
        use crate::domain::{
            allocation::AllocationEvent, item::ItemEvent, transfer::TransferEvent,
            warehouse::WarehouseEvent,
        };
        let current = crate::domain::upcast::current_version(&self.event_type);
        if self.schema_version == 0 || self.schema_version > current {
            return Err(format!(
                "schema version {} of {} is not known (versions 1 to {current} are)",
                self.schema_version, self.event_type
            ));
        }
        let decoded = match self.aggregate_type {
            AggregateType::Warehouse => self.decode::<WarehouseEvent>().map(drop),
            AggregateType::InventoryItem => self.decode::<ItemEvent>().map(drop),
            AggregateType::Allocation => self.decode::<AllocationEvent>().map(drop),
            AggregateType::Transfer => self.decode::<TransferEvent>().map(drop),
        };
        decoded.map_err(|e| {
            format!(
                "{} version {} is not a known event of a {} ({e})",
                self.event_type, self.schema_version, self.aggregate_type
            )
        })
    }
}
