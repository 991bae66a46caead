//! Generations of the DynamoDB projection tables: generation 0 uses the configured prefix
//! (`<prefix>projection_items`, ...), generation N the prefix `<prefix>gN_`; each projection has
//! tables of its own in each, and only the movement report keeps checkpoint rows (in the
//! generation's checkpoints table). The layout record is the item `#layout` in generation 0's;
//! the heartbeat rows of the layout handshake (`lease`) are attributes of the item
//! `#heartbeats` beside it, one map per process, so a replay reads them all in one request.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::HashMap;
use std::sync::Arc;

use super::attributes::{n, s};
use super::{unavailable, DynamoProjections};
use crate::dynamodb::{self, ConditionalWrite, Tables};
use crate::projection::layout::{Layout, ProjectionName};
use crate::projection::lease::Heartbeat;
use crate::projection::switch::{Generations, Projection};
use crate::projection::ProjectionError;

const LAYOUT_KEY: &str = "#layout";
const HEARTBEATS_KEY: &str = "#heartbeats";
/// A process's attribute in the `#heartbeats` item: this, then its id.
const PROCESS: &str = "process_";

pub struct DynamoGenerations {
    client: Client,
    tables: Tables,
}

impl DynamoGenerations {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self { client, tables }
    }

    /// The table names of a generation.
    pub fn tables(&self, generation: u32) -> Tables {
        match generation {
            0 => self.tables.clone(),
            n => Tables::new(format!("{}g{n}_", self.tables.prefix)),
        }
    }
}

/// The tables `projection` owns in a generation: its own, and for the movement report in a
/// rebuilt generation the checkpoints table (generation 0's holds the layout and stays). A
/// generation made by an older release for several projections has one checkpoints table for
/// them all; it stays behind, empty unless the movement report was among them.
fn owned_tables(tables: &Tables, projection: ProjectionName, generation: u32) -> Vec<String> {
    let mut names = tables.projection_tables(projection);
    if projection == ProjectionName::StockMovements && generation != 0 {
        names.push(tables.checkpoints());
    }
    names
}

fn migrate_error(error: dynamodb::MigrateError) -> ProjectionError {
    ProjectionError::request("creating or deleting projection tables", error)
}

#[async_trait]
impl Generations for DynamoGenerations {
    async fn open(
        &self,
        projection: ProjectionName,
        generation: u32,
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError> {
        let tables = self.tables(generation);
        if create {
            let names = owned_tables(&tables, projection, generation);
            let specs = tables
                .specs()
                .into_iter()
                .filter(|spec| names.contains(&spec.name))
                .collect();
            dynamodb::create_tables(&self.client, specs)
                .await
                .map_err(migrate_error)?;
        }
        Ok(Arc::new(
            DynamoProjections::new(self.client.clone(), tables).only(projection),
        ))
    }

    async fn retire(
        &self,
        projection: ProjectionName,
        generation: u32,
    ) -> Result<(), ProjectionError> {
        let tables = self.tables(generation);
        let names = owned_tables(&tables, projection, generation);
        dynamodb::delete_tables(&self.client, &names)
            .await
            .map_err(migrate_error)
    }

    async fn load_layout(&self) -> Result<Layout, ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(self.tables.checkpoints())
            .key("checkpointKey", s(LAYOUT_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("reading the projection layout"))?;
        let Some(item) = output.item else {
            return Ok(Layout::default());
        };
        let body = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| ProjectionError::Unavailable("layout record has no body".into()))?;
        let revision = item
            .get("revision")
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| ProjectionError::Unavailable("layout record has no revision".into()))?;
        let mut layout = Layout::decode(body)
            .map_err(|e| ProjectionError::request("decoding the projection layout", e))?;
        layout.revision = revision;
        Ok(layout)
    }

    async fn save_layout(&self, layout: &Layout) -> Result<bool, ProjectionError> {
        let mut request = self
            .client
            .put_item()
            .table_name(self.tables.checkpoints())
            .item("checkpointKey", s(LAYOUT_KEY))
            .item("revision", n(layout.revision + 1))
            .item("body", s(layout.encode()));
        request = if layout.revision == 0 {
            request
                .condition_expression("attribute_not_exists(#key)")
                .expression_attribute_names("#key", "checkpointKey")
        } else {
            request
                .condition_expression("#revision = :expected")
                .expression_attribute_names("#revision", "revision")
                .expression_attribute_values(":expected", n(layout.revision))
        };
        request
            .send()
            .await
            .map(|_| true)
            .or_if_condition_failed(false)
            .map_err(unavailable("writing the projection layout"))
    }

    async fn beat(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
        let row = HashMap::from([
            ("label".to_owned(), s(beat.label.clone())),
            ("revision".to_owned(), n(beat.revision)),
            ("expiresAt".to_owned(), n(beat.expires_at)),
        ]);
        self.client
            .update_item()
            .table_name(self.tables.checkpoints())
            .key("checkpointKey", s(HEARTBEATS_KEY))
            .update_expression("SET #process = :row")
            .expression_attribute_names("#process", attribute_of(beat))
            .expression_attribute_values(":row", AttributeValue::M(row))
            .send()
            .await
            .map_err(unavailable("writing this process's heartbeat row"))?;
        Ok(())
    }

    async fn heartbeats(&self) -> Result<Vec<Heartbeat>, ProjectionError> {
        let output = self
            .client
            .get_item()
            .table_name(self.tables.checkpoints())
            .key("checkpointKey", s(HEARTBEATS_KEY))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable("reading the heartbeat rows"))?;
        let mut beats = Vec::new();
        for (name, value) in output.item.unwrap_or_default() {
            let Some(process) = name.strip_prefix(PROCESS) else {
                continue;
            };
            beats.push(decode(process, &value).ok_or_else(|| {
                ProjectionError::Unavailable(format!("heartbeat row {name} does not decode"))
            })?);
        }
        beats.sort_by_key(|beat| beat.process);
        Ok(beats)
    }

    async fn forget(&self, beat: &Heartbeat) -> Result<(), ProjectionError> {
        self.client
            .update_item()
            .table_name(self.tables.checkpoints())
            .key("checkpointKey", s(HEARTBEATS_KEY))
            .update_expression("REMOVE #process")
            .condition_expression(
                "#process.#revision = :revision AND #process.#expiresAt = :expiresAt",
            )
            .expression_attribute_names("#process", attribute_of(beat))
            .expression_attribute_names("#revision", "revision")
            .expression_attribute_names("#expiresAt", "expiresAt")
            .expression_attribute_values(":revision", n(beat.revision))
            .expression_attribute_values(":expiresAt", n(beat.expires_at))
            .send()
            .await
            .map(|_| ())
            // Renewed (or removed) meanwhile: the row stays as its process left it.
            .or_if_condition_failed(())
            .map_err(unavailable("removing a lapsed heartbeat row"))
    }
}

fn attribute_of(beat: &Heartbeat) -> String {
    format!("{PROCESS}{}", beat.process.simple())
}

fn decode(process: &str, value: &AttributeValue) -> Option<Heartbeat> {
    let row = value.as_m().ok()?;
    let number = |name: &str| row.get(name)?.as_n().ok()?.parse::<i64>().ok();
    Some(Heartbeat {
        process: process.parse().ok()?,
        label: row.get("label")?.as_s().ok()?.clone(),
        revision: u64::try_from(number("revision")?).ok()?,
        expires_at: number("expiresAt")?,
    })
}
