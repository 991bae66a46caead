//! Current inventory: one record per warehouse and one per item, folded with the domain's own
//! `evolve`, so the read model cannot disagree with the aggregate about what an event means.
//! An item low on stock also carries the keys of the two sparse low-stock indexes; a PutItem
//! replaces the whole record, so those keys vanish as soon as the item is no longer low.

use super::attributes::{Record, RecordBuilder, RecordReader};
use super::VersionedRow;
use crate::projection::{ItemView, ProjectionError, WarehouseView};

/// The `listKey` of every warehouse: a list of all warehouses is a Query on the `all` index.
pub const WAREHOUSE_LIST: &str = "WAREHOUSE";
/// The `listKey` of every item.
pub const ITEM_LIST: &str = "ITEM";
/// The `lowStockKey` of every item low on stock (absent otherwise).
pub const LOW_STOCK: &str = "LOW";

/// The `skuKey` the `by_sku` index finds an item by: a SKU is unique per warehouse.
pub fn sku_key(warehouse_id: &str, sku: &str) -> String {
    format!("{warehouse_id}#{sku}")
}

impl VersionedRow for WarehouseView {
    fn to_record(&self) -> Record {
        RecordBuilder::default()
            .s("id", self.id.to_string())
            .s("listKey", WAREHOUSE_LIST)
            .s("code", &self.code)
            .s("name", &self.name)
            .opt_s("address", self.address.as_deref())
            .bool("active", self.active)
            .n("version", self.version)
            .n("createdAt", self.created_at)
            .n("updatedAt", self.updated_at)
            .build()
    }

    fn from_record(record: &Record) -> Result<Self, ProjectionError> {
        let r = RecordReader::new("projection_warehouses", record);
        Ok(Self {
            id: r.uuid("id")?,
            code: r.string("code")?,
            name: r.string("name")?,
            address: r.opt_string("address")?,
            active: r.bool("active")?,
            version: r.uint("version")?,
            created_at: r.int("createdAt")?,
            updated_at: r.int("updatedAt")?,
        })
    }
}

impl VersionedRow for ItemView {
    fn to_record(&self) -> Record {
        let warehouse_id = self.warehouse_id.to_string();
        let record = RecordBuilder::default()
            .s("id", self.id.to_string())
            .s("listKey", ITEM_LIST)
            .s("skuKey", sku_key(&warehouse_id, &self.sku))
            .s("warehouseId", &warehouse_id)
            .s("sku", &self.sku)
            .s("productId", &self.product_id)
            .n("onHand", self.on_hand)
            .n("allocated", self.allocated)
            .n("reorderThreshold", self.reorder_threshold)
            .n("reorderQuantity", self.reorder_quantity)
            .bool("active", self.active)
            .n("incoming", self.incoming)
            .n("version", self.version)
            .n("createdAt", self.created_at)
            .n("updatedAt", self.updated_at);
        // Same rule as the SQLite partial index: available at or below the threshold,
        // whether or not the item is active.
        if self.low_stock() {
            record
                .s("lowStockWarehouse", warehouse_id)
                .s("lowStockKey", LOW_STOCK)
                .build()
        } else {
            record.build()
        }
    }

    fn from_record(record: &Record) -> Result<Self, ProjectionError> {
        let r = RecordReader::new("projection_items", record);
        Ok(Self {
            id: r.uuid("id")?,
            warehouse_id: r.uuid("warehouseId")?,
            sku: r.string("sku")?,
            product_id: r.string("productId")?,
            on_hand: r.int("onHand")?,
            allocated: r.int("allocated")?,
            reorder_threshold: r.int("reorderThreshold")?,
            reorder_quantity: r.int("reorderQuantity")?,
            active: r.bool("active")?,
            // A row of an older release has none: it had none, transfers came later.
            incoming: r.opt_int("incoming")?.unwrap_or(0),
            version: r.uint("version")?,
            created_at: r.int("createdAt")?,
            updated_at: r.int("updatedAt")?,
        })
    }
}
