//! Generations of the DynamoDB projection tables: generation 0 uses the configured prefix
//! (`<prefix>projection_items`, ...), generation N the prefix `<prefix>gN_`. Each generation
//! has its own checkpoints table; the layout record is the item `#layout` in generation 0's.

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use std::sync::Arc;

use super::attributes::{n, s};
use super::{unavailable, DynamoProjections};
use crate::dynamodb::{self, Tables};
use crate::projection::layout::{Layout, ProjectionName};
use crate::projection::switch::{Generations, Projection};
use crate::projection::ProjectionError;

const LAYOUT_KEY: &str = "#layout";

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

fn migrate_error(error: dynamodb::MigrateError) -> ProjectionError {
    ProjectionError::Unavailable(error.to_string())
}

#[async_trait]
impl Generations for DynamoGenerations {
    async fn open(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        create: bool,
    ) -> Result<Arc<dyn Projection>, ProjectionError> {
        let tables = self.tables(generation);
        if create {
            let mut names: Vec<String> = projections
                .iter()
                .flat_map(|p| tables.projection_tables(*p))
                .collect();
            names.push(tables.checkpoints());
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
            DynamoProjections::new(self.client.clone(), tables).serving(projections),
        ))
    }

    async fn retire(
        &self,
        generation: u32,
        projections: &[ProjectionName],
        whole: bool,
    ) -> Result<(), ProjectionError> {
        let tables = self.tables(generation);
        let mut names: Vec<String> = projections
            .iter()
            .flat_map(|p| tables.projection_tables(*p))
            .collect();
        // Generation 0's checkpoints table holds the layout record: it stays.
        if whole && generation != 0 {
            names.push(tables.checkpoints());
        }
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
            .map_err(unavailable)?;
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
        let mut layout = Layout::decode(body).map_err(ProjectionError::Unavailable)?;
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
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(unavailable(error)),
        }
    }
}
