//! What every domain event has in common: a past-tense type name, a schema version and a JSON
//! shape. Each aggregate's event enum lives beside its decider; this file only names the
//! aggregate types and the conversion to and from the envelope's `eventType` + `eventData`.

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AggregateType {
    Warehouse,
    InventoryItem,
    Allocation,
    Transfer,
}

impl AggregateType {
    pub const ALL: [AggregateType; 4] = [
        Self::Warehouse,
        Self::InventoryItem,
        Self::Allocation,
        Self::Transfer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Warehouse => "Warehouse",
            Self::InventoryItem => "InventoryItem",
            Self::Allocation => "Allocation",
            Self::Transfer => "Transfer",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == text)
    }
}

impl fmt::Display for AggregateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Implemented by each aggregate's event enum, which is serialized adjacently tagged as
/// `{"eventType": "...", "eventData": {...}}` so the two halves map onto envelope fields.
pub trait DomainEvent:
    Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq + Send + Sync + 'static
{
    fn event_type(&self) -> &'static str;

    /// The schema version written with new events of this type (see `upcast`).
    fn schema_version(&self) -> u32 {
        super::upcast::current_version(self.event_type())
    }

    /// Splits the event into the envelope's `eventType` and `eventData`.
    fn to_parts(&self) -> (String, serde_json::Value) {
        let data = match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut map)) => {
                map.remove("eventData").unwrap_or(serde_json::Value::Null)
            }
            // Every variant is a struct, so serialization always yields an object.
            _ => serde_json::Value::Null,
        };
        (self.event_type().to_owned(), data)
    }

    /// Rebuilds an event from the envelope's `eventType` and `eventData`.
    fn from_parts(event_type: &str, data: &serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "eventType": event_type, "eventData": data }))
    }
}
