//! Transfer status: one record per transfer, folded with the domain's `evolve`, found through
//! GSIs keyed (attribute, id) by the warehouse it leaves, the warehouse it enters, either item,
//! and one list key for all of them, so each list pages by id. The indexes project every
//! attribute: a transfer changes status at most three times, and a list filtered by status
//! then reads no table row. The record's `version` is its checkpoint.

use super::attributes::{Record, RecordBuilder, RecordReader};
use super::VersionedRow;
use crate::domain::transfer::TransferStatus;
use crate::projection::{ProjectionError, TransferView};

/// The list key every transfer carries (the `all` index's one key: transfers are few next to
/// stock changes, so one key is no hot spot).
pub const TRANSFER_LIST: &str = "transfers";

impl VersionedRow for TransferView {
    fn to_record(&self) -> Record {
        RecordBuilder::default()
            .s("id", self.id.to_string())
            .s("listKey", TRANSFER_LIST)
            .s("fromItemId", self.from_item_id.to_string())
            .s("toItemId", self.to_item_id.to_string())
            .s("fromWarehouseId", self.from_warehouse_id.to_string())
            .s("toWarehouseId", self.to_warehouse_id.to_string())
            .s("sku", &self.sku)
            .n("quantity", self.quantity)
            .opt_n("quantityReceived", self.quantity_received)
            .s("status", self.status.as_str())
            .opt_s("reference", self.reference.as_deref())
            .opt_s("cancelReason", self.cancel_reason.as_deref())
            .n("version", self.version)
            .n("createdAt", self.created_at)
            .n("updatedAt", self.updated_at)
            .build()
    }

    fn from_record(record: &Record) -> Result<Self, ProjectionError> {
        let r = RecordReader::new("projection_transfers", record);
        let status = r.string("status")?;
        Ok(Self {
            id: r.uuid("id")?,
            from_item_id: r.uuid("fromItemId")?,
            to_item_id: r.uuid("toItemId")?,
            from_warehouse_id: r.uuid("fromWarehouseId")?,
            to_warehouse_id: r.uuid("toWarehouseId")?,
            sku: r.string("sku")?,
            quantity: r.int("quantity")?,
            quantity_received: r.opt_int("quantityReceived")?,
            status: TransferStatus::parse(&status).ok_or_else(|| {
                ProjectionError::Unavailable(format!(
                    "malformed projection_transfers row: unknown status {status}"
                ))
            })?,
            reference: r.opt_string("reference")?,
            cancel_reason: r.opt_string("cancelReason")?,
            version: r.uint("version")?,
            created_at: r.int("createdAt")?,
            updated_at: r.int("updatedAt")?,
        })
    }
}
