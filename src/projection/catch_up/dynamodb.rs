//! Coverage on DynamoDB: a finished catch-up records, beside the layout in generation 0's
//! checkpoints table, the identity (`TableId`) of every table it filled. A start-up whose
//! serving tables have the same identities skips the scan: DynamoDB keeps every acknowledged
//! write, so only a table deleted and created again (or restored) can be missing rows.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use std::collections::BTreeSet;

use super::Coverage;
use crate::dynamodb::Tables;
use crate::projection::dynamodb::DynamoGenerations;
use crate::projection::layout::{Layout, ProjectionName};
use crate::projection::ProjectionError;

/// The record's key in generation 0's checkpoints table (beside `#layout`).
const RECORD_KEY: &str = "#caughtUp";

pub struct TableIdentities {
    client: Client,
    generations: DynamoGenerations,
    base: Tables,
}

impl TableIdentities {
    pub fn new(client: Client, tables: Tables) -> Self {
        Self {
            generations: DynamoGenerations::new(client.clone(), tables.clone()),
            client,
            base: tables,
        }
    }

    /// `name=identity` of every table serving under `layout`, sorted; `None` when some table
    /// does not tell its identity (then nothing can be skipped).
    async fn identities(&self, layout: &Layout) -> Result<Option<String>, ProjectionError> {
        // Generation 0's checkpoints table holds the record itself and the layout.
        let mut names = BTreeSet::from([self.base.checkpoints()]);
        for projection in ProjectionName::ALL {
            let generation = layout.generation_of(projection);
            let tables = self.generations.tables(generation);
            names.extend(tables.projection_tables(projection));
            if projection == ProjectionName::StockMovements {
                // Its checkpoint rows live in the generation's checkpoints table.
                names.insert(tables.checkpoints());
            }
        }
        let mut token = Vec::with_capacity(names.len());
        for name in names {
            let described = self
                .client
                .describe_table()
                .table_name(&name)
                .send()
                .await
                .map_err(|e| ProjectionError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            let table = described.table();
            let identity = table
                .and_then(|t| t.table_id().map(str::to_owned))
                .or_else(|| {
                    table.and_then(|t| t.creation_date_time()).map(|at| {
                        at.to_millis()
                            .map_or_else(|_| at.secs().to_string(), |ms| ms.to_string())
                    })
                });
            let Some(identity) = identity else {
                return Ok(None);
            };
            token.push(format!("{name}={identity}"));
        }
        Ok(Some(token.join(",")))
    }
}

#[async_trait]
impl Coverage for TableIdentities {
    async fn needed(&self, layout: &Layout) -> Result<Option<String>, ProjectionError> {
        let Some(current) = self.identities(layout).await? else {
            return Ok(Some(String::new()));
        };
        let recorded = self
            .client
            .get_item()
            .table_name(self.base.checkpoints())
            .key("checkpointKey", AttributeValue::S(RECORD_KEY.into()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| ProjectionError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        let same = recorded
            .item()
            .and_then(|item| item.get("tables"))
            .and_then(|v| v.as_s().ok())
            .is_some_and(|tables| *tables == current);
        Ok((!same).then_some(current))
    }

    async fn covered(&self, token: &str) -> Result<(), ProjectionError> {
        if token.is_empty() {
            return Ok(());
        }
        self.client
            .put_item()
            .table_name(self.base.checkpoints())
            .item("checkpointKey", AttributeValue::S(RECORD_KEY.into()))
            .item("tables", AttributeValue::S(token.to_owned()))
            .send()
            .await
            .map_err(|e| ProjectionError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
