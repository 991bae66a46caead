//! The upcaster chain: stored events are never rewritten; an event stored in an older schema
//! version is turned into the current shape when it is read, one version step at a time.
//!
//! The one real example: `StockLevelChanged` v1 carried `quantity` (on hand after the change),
//! `change` (the delta) and an upper-case `reasonCode`, with no previous quantity, reference or
//! allocation. v2 (current) carries `previousQuantity`, `newQuantity`, `delta`, a snake-case
//! `reason`, `reference` and `allocationId`.

use serde_json::{json, Value};

/// The schema version new events of this type are written with.
pub fn current_version(event_type: &str) -> u32 {
    match event_type {
        "StockLevelChanged" => 2,
        _ => 1,
    }
}

/// Brings `data` from `version` up to the current version of `event_type`. Unknown or
/// malformed old shapes are returned unchanged, so decoding reports them as errors.
pub fn upcast(event_type: &str, mut version: u32, mut data: Value) -> Value {
    while version < current_version(event_type) {
        data = match (event_type, version) {
            ("StockLevelChanged", 1) => stock_level_changed_v1_to_v2(data),
            _ => return data,
        };
        version += 1;
    }
    data
}

fn stock_level_changed_v1_to_v2(data: Value) -> Value {
    let (Some(quantity), Some(change)) = (data["quantity"].as_i64(), data["change"].as_i64())
    else {
        return data;
    };
    let reason = data["reasonCode"]
        .as_str()
        .unwrap_or("other")
        .to_ascii_lowercase();
    json!({
        "previousQuantity": quantity - change,
        "newQuantity": quantity,
        "delta": change,
        "reason": reason,
        "reference": null,
        "allocationId": null,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::item::{ItemEvent, StockChangeReason};
    use crate::domain::DomainEvent;

    #[test]
    fn a_v1_stock_change_reads_as_the_current_shape() {
        let v1 = json!({ "quantity": 12, "change": -3, "reasonCode": "DAMAGED" });
        let event = ItemEvent::from_parts("StockLevelChanged", &upcast("StockLevelChanged", 1, v1))
            .unwrap();
        assert_eq!(
            event,
            ItemEvent::StockLevelChanged {
                previous_quantity: 15,
                new_quantity: 12,
                delta: -3,
                reason: StockChangeReason::Damaged,
                reference: None,
                allocation_id: None,
            }
        );
    }

    #[test]
    fn current_versions_pass_through_untouched() {
        let data = json!({ "anything": 1 });
        assert_eq!(upcast("StockLevelChanged", 2, data.clone()), data);
        assert_eq!(upcast("WarehouseCreated", 1, data.clone()), data);
    }
}
