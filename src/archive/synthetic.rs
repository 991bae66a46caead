//! A synthetic backup, written fast and straight to a file: warehouses, items and stock
//! changes that the domain accepts (each change continues from the last quantity), with the
//! header and trailer an export writes. For the benchmark of export and import at a million
//! events (`bench archive-file`) and for tests that need a large file; it never touches a
//! store, so a million events take seconds instead of a million commits.

use uuid::Uuid;

use super::file::Output;
use super::{Checksum, Header, Line, Record, Trailer, FORMAT_VERSION};
use crate::domain::item::{ItemEvent, StockChangeReason};
use crate::domain::warehouse::WarehouseEvent;
use crate::domain::AggregateType;
use crate::store::{EventEnvelope, Metadata};

/// Items per warehouse in the synthetic store.
const ITEMS_PER_WAREHOUSE: u64 = 1_000;

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Synthetic {
    pub events: u64,
    pub aggregates: u64,
    pub sha256: String,
}

/// Writes a backup of about `events` events over `items` items (at least one event each, and
/// one per warehouse of up to 1,000 items) to `out`.
pub fn write(out: &str, events: u64, items: u64) -> anyhow::Result<Synthetic> {
    let items = items.max(1);
    let warehouses = items.div_ceil(ITEMS_PER_WAREHOUSE);
    let per_item = (events.saturating_sub(warehouses) / items).max(1);
    let total = warehouses + items * per_item;
    let mut file = Output::create(out)?;
    let mut checksum = Checksum::default();
    let mut lines = 0u64;
    let mut buffer = Vec::with_capacity(1024);
    let mut emit = |line: &Line, file: &mut Output| -> anyhow::Result<()> {
        buffer.clear();
        serde_json::to_writer(&mut buffer, line)?;
        checksum.line(&buffer);
        file.write_line(&buffer)?;
        lines += 1;
        Ok(())
    };
    let header = Header {
        format_version: FORMAT_VERSION,
        source: serde_json::json!({ "store": "synthetic" }),
        events: total,
        aggregates: warehouses + items,
        exported_at: 1_700_000_000_000,
        include_keys: false,
    };
    emit(&Line::Record(Record::Header(header)), &mut file)?;
    let metadata = Metadata {
        actor: "bench".into(),
        correlation_id: "synthetic".into(),
        source: "synthetic".into(),
        ..Metadata::default()
    };
    let mut clock = 1_700_000_000_000i64;
    let mut envelope = |kind, id, seq, event: &dyn Fn() -> (String, serde_json::Value)| {
        clock += 1;
        let (event_type, event_data) = event();
        EventEnvelope {
            event_id: Uuid::now_v7(),
            aggregate_id: id,
            aggregate_type: kind,
            sequence_number: seq,
            schema_version: crate::domain::upcast::current_version(&event_type),
            event_type,
            event_data,
            metadata: metadata.clone(),
            timestamp: clock,
        }
    };
    use crate::domain::DomainEvent;
    for w in 0..warehouses {
        let warehouse = Uuid::now_v7();
        let created = envelope(AggregateType::Warehouse, warehouse, 1, &|| {
            WarehouseEvent::WarehouseCreated {
                code: format!("W{w}"),
                name: format!("Warehouse {w}"),
                address: None,
            }
            .to_parts()
        });
        emit(&Line::Event(created), &mut file)?;
        for i in 0..ITEMS_PER_WAREHOUSE.min(items - w * ITEMS_PER_WAREHOUSE) {
            let item = Uuid::now_v7();
            let created = envelope(AggregateType::InventoryItem, item, 1, &|| {
                ItemEvent::InventoryItemCreated {
                    warehouse_id: warehouse,
                    sku: format!("SKU-{i}"),
                    product_id: format!("P-{i}"),
                    initial_quantity: 100,
                    reorder_threshold: 0,
                    reorder_quantity: 10,
                }
                .to_parts()
            });
            emit(&Line::Event(created), &mut file)?;
            let mut quantity = 100i64;
            for seq in 2..=per_item {
                let delta = if seq % 2 == 0 { 5 } else { -3 };
                let previous = quantity;
                quantity += delta;
                let changed = envelope(AggregateType::InventoryItem, item, seq, &|| {
                    ItemEvent::StockLevelChanged {
                        previous_quantity: previous,
                        new_quantity: previous + delta,
                        delta,
                        reason: if delta > 0 {
                            StockChangeReason::Received
                        } else {
                            StockChangeReason::Sold
                        },
                        reference: None,
                        allocation_id: None,
                    }
                    .to_parts()
                });
                emit(&Line::Event(changed), &mut file)?;
            }
        }
    }
    let sha256 = checksum.clone().hex();
    let trailer = Trailer {
        lines,
        events: total,
        api_keys: 0,
        idempotency_records: 0,
        sha256: sha256.clone(),
    };
    buffer.clear();
    serde_json::to_writer(&mut buffer, &Line::Record(Record::Trailer(trailer)))?;
    file.write_line(&buffer)?;
    file.finish()?;
    Ok(Synthetic {
        events: total,
        aggregates: warehouses + items,
        sha256,
    })
}
