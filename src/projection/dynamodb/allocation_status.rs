//! Allocation status: one record per allocation, folded with the domain's `evolve` and found
//! by order, item or status through GSIs keyed (attribute, id), so each list pages by id.
//! The record's `version` is its checkpoint, as for every single-row projection. A created
//! allocation with a deadline also carries `expiryShard`, which puts it in the sparse index of
//! open deadlines (keyed by shard and `expiresAt`); leaving `CREATED` takes it out.

use super::attributes::{Record, RecordBuilder, RecordReader};
use super::VersionedRow;
use crate::domain::allocation::AllocationStatus;
use crate::projection::{AllocationView, ProjectionError};

/// How many keys of the status index each status spreads over. One index key takes about 1,000
/// write units a second, and every allocation is created `CREATED`: unspread, that one key
/// would cap allocations near 1,000 a second service-wide. A list by status reads every shard
/// of it (in parallel) and merges them by id. Changing it changes the index keys: the
/// allocation projection must then be rebuilt (a replay into a new generation).
pub const STATUS_SHARDS: u128 = 8;

/// The status index key of an allocation: its status and a shard from its id (a UUID whose low
/// bits are random, so the shards fill evenly).
pub fn status_shard(status: AllocationStatus, id: uuid::Uuid) -> String {
    format!("{}#{}", status.as_str(), id.as_u128() % STATUS_SHARDS)
}

/// Every status index key of `status`.
pub fn status_shards(status: AllocationStatus) -> impl Iterator<Item = String> {
    (0..STATUS_SHARDS).map(move |shard| format!("{}#{shard}", status.as_str()))
}

/// How many keys the index of open deadlines spreads over, for the reason the status index
/// is spread (one key takes about 1,000 writes a second). Fewer than the status index's: only
/// allocations with a deadline are written to it, and the sweeper queries every key each tick.
/// Changing it changes the index keys: the allocation projection must then be rebuilt.
pub const EXPIRY_SHARDS: u128 = 4;

/// The key of an allocation in the index of open deadlines.
pub fn expiry_shard(id: uuid::Uuid) -> String {
    format!("due#{}", id.as_u128() % EXPIRY_SHARDS)
}

/// Every key of the index of open deadlines.
pub fn expiry_shards() -> impl Iterator<Item = String> {
    (0..EXPIRY_SHARDS).map(|shard| format!("due#{shard}"))
}

impl VersionedRow for AllocationView {
    fn to_record(&self) -> Record {
        RecordBuilder::default()
            .s("id", self.id.to_string())
            .s("orderId", &self.order_id)
            .s("itemId", self.item_id.to_string())
            .s("warehouseId", self.warehouse_id.to_string())
            .n("quantity", self.quantity)
            .s("status", self.status.as_str())
            .s("statusShard", status_shard(self.status, self.id))
            .opt_s("cancelReason", self.cancel_reason.as_deref())
            .opt_n("expiresAt", self.expires_at)
            // Absent (so out of the sparse index) unless the allocation awaits its deadline.
            .opt_s(
                "expiryShard",
                self.awaits_expiry()
                    .then(|| expiry_shard(self.id))
                    .as_deref(),
            )
            .n("version", self.version)
            .n("createdAt", self.created_at)
            .n("updatedAt", self.updated_at)
            .build()
    }

    fn from_record(record: &Record) -> Result<Self, ProjectionError> {
        let r = RecordReader::new("projection_allocations", record);
        let status = r.string("status")?;
        Ok(Self {
            id: r.uuid("id")?,
            order_id: r.string("orderId")?,
            item_id: r.uuid("itemId")?,
            warehouse_id: r.uuid("warehouseId")?,
            quantity: r.int("quantity")?,
            status: AllocationStatus::parse(&status).ok_or_else(|| {
                ProjectionError::Unavailable(format!(
                    "malformed projection_allocations row: unknown status {status}"
                ))
            })?,
            cancel_reason: r.opt_string("cancelReason")?,
            expires_at: r.opt_int("expiresAt")?,
            version: r.uint("version")?,
            created_at: r.int("createdAt")?,
            updated_at: r.int("updatedAt")?,
        })
    }
}
