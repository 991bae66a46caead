//! Shared DynamoDB plumbing: the client (with retry and timeout settings chosen on purpose),
//! the table names under a configurable prefix, and `migrate`, which creates every table and
//! index idempotently. The event store and projection adapters both build on it. Every client
//! carries two interceptors: `expressions` refuses a reserved word named bare, `capacity`
//! counts requests (and, when asked, the capacity units they consume). `conditional` reads a
//! conditional write's refusal as an answer.

pub mod capacity;
pub mod conditional;
pub mod expressions;

pub use capacity::{capacity_snapshot, CapacitySnapshot};
pub use conditional::ConditionalWrite;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};
use aws_sdk_dynamodb::Client;
use std::time::Duration;

pub use aws_sdk_dynamodb::types::ScalarAttributeType as AttributeType;

use crate::projection::layout::ProjectionName;

/// Builds a client from the standard AWS chain (environment, profile, instance role). With an
/// explicit endpoint (DynamoDB Local or another local emulator) and no credentials in the
/// environment, static dummy credentials and `us-east-1` are used, as such servers expect.
///
/// Retries: the SDK's standard mode, 3 attempts with exponential backoff, which covers
/// throttling and transient 5xx; a throttled request that still fails surfaces as a retryable
/// error (`SERVICE_UNAVAILABLE`) instead of hanging. Timeouts: 1 s to connect, 3 s per attempt,
/// 10 s per operation in total, so a dead endpoint fails a request in bounded time.
pub async fn client(endpoint: Option<&str>) -> Client {
    client_with(endpoint, false).await
}

/// `client`, asking every request for its consumed capacity when `report_capacity` is set
/// (the benchmark's cost table; `--dynamodb-report-capacity`).
pub async fn client_with(endpoint: Option<&str>, report_capacity: bool) -> Client {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(1))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(10))
                .build(),
        );
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
            && std::env::var_os("AWS_PROFILE").is_none()
        {
            loader = loader.credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "static-local",
            ));
        }
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            loader = loader.region(aws_config::Region::new("us-east-1"));
        }
    }
    let shared = loader.load().await;
    let config = aws_sdk_dynamodb::config::Builder::from(&shared)
        .interceptor(expressions::ExpressionCheck::default())
        .interceptor(capacity::CapacityMeter {
            report: report_capacity,
        })
        .build();
    Client::from_conf(config)
}

/// An item as the SDK gives it.
pub type Item = std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>;

/// Why `batch_get` could not read every key, or `batch_write` write every item: a request
/// failed (its error is the `source()`), or DynamoDB kept some unprocessed through every retry.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("a {operation} request failed")]
    Request {
        operation: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    #[error("{0} requests left unprocessed after retries")]
    Unprocessed(usize),
}

impl BatchError {
    fn request<E>(operation: &'static str) -> impl FnOnce(E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        move |error| Self::Request {
            operation,
            source: Box::new(error),
        }
    }
}

/// How many BatchWriteItem requests of one `batch_write` are in flight at once.
const WRITES_IN_FLIGHT: usize = 4;

/// Writes `requests` (puts and deletes) to `table`, 25 per BatchWriteItem with a few in flight
/// at once, retrying with backoff what DynamoDB leaves unprocessed (it does so when a
/// partition is throttled). Unconditional, so only for writes that are idempotent by
/// themselves: a retry or a redelivery writes the same item again.
pub async fn batch_write(
    client: &Client,
    table: &str,
    requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
) -> Result<(), BatchError> {
    use futures::stream::{StreamExt, TryStreamExt};
    let chunks: Vec<Vec<_>> = requests.chunks(25).map(<[_]>::to_vec).collect();
    futures::stream::iter(chunks)
        .map(|mut chunk| async move {
            for attempt in 0..10u32 {
                if chunk.is_empty() {
                    return Ok(());
                }
                let answer = client
                    .batch_write_item()
                    .request_items(table, chunk)
                    .send()
                    .await
                    .map_err(BatchError::request("BatchWriteItem"))?;
                chunk = answer
                    .unprocessed_items()
                    .and_then(|u| u.get(table))
                    .cloned()
                    .unwrap_or_default();
                if !chunk.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
                }
            }
            match chunk.len() {
                0 => Ok(()),
                left => Err(BatchError::Unprocessed(left)),
            }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect()
        .await
}

/// Reads the items of `keys` from `table`, strongly consistent, 100 keys a BatchGetItem,
/// retrying with backoff what DynamoDB leaves unprocessed. The items come back in no order.
pub async fn batch_get(
    client: &Client,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, BatchError> {
    let mut found = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut keys = chunk.to_vec();
        for attempt in 0..10u32 {
            if keys.is_empty() {
                break;
            }
            let request = aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .set_keys(Some(keys))
                .consistent_read(true)
                .build()
                .map_err(BatchError::request("BatchGetItem"))?;
            let answer = client
                .batch_get_item()
                .request_items(table, request)
                .send()
                .await
                .map_err(BatchError::request("BatchGetItem"))?;
            if let Some(items) = answer.responses().and_then(|r| r.get(table)) {
                found.extend(items.iter().cloned());
            }
            keys = answer
                .unprocessed_keys()
                .and_then(|u| u.get(table))
                .map(|k| k.keys().to_vec())
                .unwrap_or_default();
            if !keys.is_empty() {
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(5))).await;
            }
        }
        if !keys.is_empty() {
            return Err(BatchError::Unprocessed(keys.len()));
        }
    }
    Ok(found)
}

/// Table names, each under the same prefix so several environments can share an account.
#[derive(Debug, Clone, Default)]
pub struct Tables {
    pub prefix: String,
}

impl Tables {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }
    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }
    pub fn events(&self) -> String {
        self.name("inventory_events")
    }
    pub fn outbox(&self) -> String {
        self.name("inventory_outbox")
    }
    pub fn guards(&self) -> String {
        self.name("inventory_guards")
    }
    pub fn snapshots(&self) -> String {
        self.name("inventory_snapshots")
    }
    /// API keys: a row per key under its hash, and one claiming its name (`store::dynamodb::keys`).
    pub fn api_keys(&self) -> String {
        self.name("inventory_api_keys")
    }
    pub fn warehouses(&self) -> String {
        self.name("projection_warehouses")
    }
    pub fn items(&self) -> String {
        self.name("projection_items")
    }
    pub fn allocations(&self) -> String {
        self.name("projection_allocations")
    }
    pub fn history(&self) -> String {
        self.name("projection_history")
    }
    pub fn movements(&self) -> String {
        self.name("projection_movements")
    }
    pub fn transfers(&self) -> String {
        self.name("projection_transfers")
    }
    pub fn checkpoints(&self) -> String {
        self.name("projection_checkpoints")
    }

    /// The tables of one projection.
    pub fn projection_tables(&self, projection: ProjectionName) -> Vec<String> {
        match projection {
            ProjectionName::Warehouses => vec![self.warehouses()],
            ProjectionName::CurrentInventory => vec![self.items()],
            ProjectionName::AllocationStatus => vec![self.allocations()],
            ProjectionName::InventoryHistory => vec![self.history()],
            // Its checkpoints are rows in the generation's checkpoints table.
            ProjectionName::StockMovements => vec![self.movements()],
            ProjectionName::TransferStatus => vec![self.transfers()],
        }
    }

    /// Every table with its keys and indexes.
    pub fn specs(&self) -> Vec<TableSpec> {
        use ScalarAttributeType::{N, S};
        vec![
            // The seed's layout: partition key aggregateId, sort key sequenceNumber.
            TableSpec::new(
                self.events(),
                ("aggregateId", S),
                Some(("sequenceNumber", N)),
            ),
            // One partition holds every pending row, sorted by commit time: the outbox is small
            // (rows live until confirmed) so a single partition is not a hot spot in practice.
            TableSpec::new(self.outbox(), ("shard", N), Some(("outboxId", S))),
            TableSpec::new(self.guards(), ("guardKey", S), None),
            TableSpec::new(self.snapshots(), ("aggregateId", S), None),
            // `hash#<sha256>` rows (the edge's one GetItem) and `name#<name>` rows (uniqueness).
            TableSpec::new(self.api_keys(), ("keyId", S), None),
            TableSpec::new(self.warehouses(), ("id", S), None).global(
                "all",
                ("listKey", S),
                Some(("id", S)),
            ),
            // Keys only: an item's row is rewritten by every stock change, and an index that
            // projects its attributes would be written (and billed) each time too; one that
            // holds only keys is written when the item joins or leaves it. Lists read the
            // rows from the table by key.
            TableSpec::new(self.items(), ("id", S), None)
                .keys_only("by_warehouse", ("warehouseId", S), Some(("id", S)))
                .keys_only("by_sku", ("skuKey", S), None)
                .keys_only("all", ("listKey", S), Some(("id", S)))
                // Sparse: only items at or below their threshold carry these attributes.
                .keys_only(
                    "low_stock_by_warehouse",
                    ("lowStockWarehouse", S),
                    Some(("id", S)),
                )
                .keys_only("low_stock", ("lowStockKey", S), Some(("id", S))),
            TableSpec::new(self.allocations(), ("id", S), None)
                // Keys only: a status change then moves only the status index's entry.
                .keys_only("by_order", ("orderId", S), Some(("id", S)))
                .keys_only("by_item", ("itemId", S), Some(("id", S)))
                // Keyed by status and a shard of the id (`STATUS_SHARDS` keys per status), so no
                // one key takes every creation. Every allocation has one of four statuses, so
                // the index also serves the list of all of them (every key's page merged), and
                // no `all` index is written. Every attribute: an entry moves at each status
                // change anyway, and a list then needs no read of the table.
                .global("by_status_shard", ("statusShard", S), Some(("id", S)))
                // Sparse, keys only: just the created allocations with a deadline, by deadline
                // within each of `EXPIRY_SHARDS` keys, so the sweeper's query each tick reads
                // only what is due (no Scan, no read of every open allocation).
                .keys_only(
                    "awaiting_expiry",
                    ("expiryShard", S),
                    Some(("expiresAt", N)),
                ),
            // No index: history pages are keyed by sequence number, and a time range is a
            // filter on the item's partition (an index on time would bill every entry twice).
            TableSpec::new(self.history(), ("itemId", S), Some(("sequenceNumber", N))),
            // Keys only, for the same reason as the items' indexes: a day's record changes
            // with every movement.
            TableSpec::new(self.movements(), ("itemId", S), Some(("day", S))).keys_only(
                "by_warehouse",
                ("warehouseId", S),
                Some(("day", S)),
            ),
            // Every attribute: a transfer's record changes at most three times, and a list by
            // warehouse filtered by status then reads no table row.
            TableSpec::new(self.transfers(), ("id", S), None)
                .global("from_warehouse", ("fromWarehouseId", S), Some(("id", S)))
                .global("to_warehouse", ("toWarehouseId", S), Some(("id", S)))
                .global("from_item", ("fromItemId", S), Some(("id", S)))
                .global("to_item", ("toItemId", S), Some(("id", S)))
                .global("all", ("listKey", S), Some(("id", S))),
            TableSpec::new(self.checkpoints(), ("checkpointKey", S), None),
        ]
    }
}

pub type KeyAttribute = (&'static str, ScalarAttributeType);

#[derive(Debug, Clone)]
pub struct IndexSpec {
    pub name: &'static str,
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
    /// Whether the index holds only keys (else every attribute).
    pub keys_only: bool,
}

#[derive(Debug, Clone)]
pub struct TableSpec {
    pub name: String,
    pub partition: KeyAttribute,
    pub sort: Option<KeyAttribute>,
    pub global: Vec<IndexSpec>,
}

impl TableSpec {
    fn new(name: String, partition: KeyAttribute, sort: Option<KeyAttribute>) -> Self {
        Self {
            name,
            partition,
            sort,
            global: vec![],
        }
    }
    fn global(
        mut self,
        name: &'static str,
        partition: KeyAttribute,
        sort: Option<KeyAttribute>,
    ) -> Self {
        self.global.push(IndexSpec {
            name,
            partition,
            sort,
            keys_only: false,
        });
        self
    }
    fn keys_only(
        mut self,
        name: &'static str,
        partition: KeyAttribute,
        sort: Option<KeyAttribute>,
    ) -> Self {
        self.global.push(IndexSpec {
            name,
            partition,
            sort,
            keys_only: true,
        });
        self
    }
}

#[derive(Debug, thiserror::Error)]
#[error("migrate {table}: {message}")]
pub struct MigrateError {
    pub table: String,
    pub message: String,
}

fn key_schema(
    partition: &KeyAttribute,
    sort: &Option<KeyAttribute>,
) -> Result<Vec<KeySchemaElement>, String> {
    let mut keys = vec![KeySchemaElement::builder()
        .attribute_name(partition.0)
        .key_type(KeyType::Hash)
        .build()
        .map_err(|e| e.to_string())?];
    if let Some(sort) = sort {
        keys.push(
            KeySchemaElement::builder()
                .attribute_name(sort.0)
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| e.to_string())?,
        );
    }
    Ok(keys)
}

/// Creates every missing table (on-demand capacity) and waits until all are active. Tables
/// that exist are left alone, so running it again is harmless.
pub async fn migrate(client: &Client, tables: &Tables) -> Result<Vec<String>, MigrateError> {
    create_tables(client, tables.specs()).await
}

/// Creates the missing tables of `specs` and waits until all are active.
pub async fn create_tables(
    client: &Client,
    specs: Vec<TableSpec>,
) -> Result<Vec<String>, MigrateError> {
    let mut created = Vec::new();
    for spec in &specs {
        let fail = |message: String| MigrateError {
            table: spec.name.clone(),
            message,
        };
        match client.describe_table().table_name(&spec.name).send().await {
            Ok(described) => {
                let existing: Vec<&str> = described
                    .table()
                    .map(|t| t.global_secondary_indexes())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|index| index.index_name())
                    .collect();
                for index in spec.global.iter().filter(|i| !existing.contains(&i.name)) {
                    add_index(client, spec, index).await.map_err(fail)?;
                    created.push(format!("{}.{}", spec.name, index.name));
                }
                continue;
            }
            Err(error) => {
                let not_found = error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception());
                if !not_found {
                    return Err(fail(format!(
                        "{}",
                        aws_sdk_dynamodb::error::DisplayErrorContext(&error)
                    )));
                }
            }
        }
        let mut attributes: Vec<KeyAttribute> = vec![spec.partition.clone()];
        attributes.extend(spec.sort.clone());
        for index in &spec.global {
            attributes.push(index.partition.clone());
            attributes.extend(index.sort.clone());
        }
        attributes.sort_by(|a, b| a.0.cmp(b.0));
        attributes.dedup_by(|a, b| a.0 == b.0);
        let mut request = client
            .create_table()
            .table_name(&spec.name)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&spec.partition, &spec.sort).map_err(fail)?));
        for (name, kind) in attributes {
            request = request.attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(name)
                    .attribute_type(kind)
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        for index in &spec.global {
            request = request.global_secondary_indexes(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(
                        key_schema(&index.partition, &index.sort).map_err(fail)?,
                    ))
                    .projection(projection(index))
                    .build()
                    .map_err(|e| fail(e.to_string()))?,
            );
        }
        match request.send().await {
            Ok(_) => created.push(spec.name.clone()),
            // Another process created it meanwhile: fine.
            Err(error)
                if error
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) => {}
            Err(error) => {
                return Err(fail(format!(
                    "{}",
                    aws_sdk_dynamodb::error::DisplayErrorContext(&error)
                )))
            }
        }
    }
    for spec in &specs {
        wait_for(client, &spec.name, |table| {
            table.table_status() == Some(&TableStatus::Active)
        })
        .await;
    }
    Ok(created)
}

/// Polls DescribeTable on `table` every 100 ms, a minute at most, until `ready` holds of its
/// description: true then, false if it never did. A DescribeTable that fails counts as not
/// ready yet (a table just created may not be described at once).
async fn wait_for(client: &Client, table: &str, ready: impl Fn(&TableDescription) -> bool) -> bool {
    for _ in 0..600 {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ok()
            .and_then(|d| d.table);
        if described.as_ref().is_some_and(&ready) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

fn projection(index: &IndexSpec) -> Projection {
    Projection::builder()
        .projection_type(if index.keys_only {
            ProjectionType::KeysOnly
        } else {
            ProjectionType::All
        })
        .build()
}

fn attribute(key: &KeyAttribute) -> Result<AttributeDefinition, String> {
    AttributeDefinition::builder()
        .attribute_name(key.0)
        .attribute_type(key.1.clone())
        .build()
        .map_err(|e| e.to_string())
}

/// Adds an index that a table of an older release lacks (the allocations' index of open
/// deadlines), and waits until DynamoDB has filled it in from the existing items, a minute at
/// most: until then a query on it fails, which its readers report and retry.
async fn add_index(client: &Client, spec: &TableSpec, index: &IndexSpec) -> Result<(), String> {
    use aws_sdk_dynamodb::types::{
        CreateGlobalSecondaryIndexAction, GlobalSecondaryIndexUpdate, IndexStatus,
    };
    let action = CreateGlobalSecondaryIndexAction::builder()
        .index_name(index.name)
        .set_key_schema(Some(key_schema(&index.partition, &index.sort)?))
        .projection(projection(index))
        .build()
        .map_err(|e| e.to_string())?;
    let mut request = client
        .update_table()
        .table_name(&spec.name)
        .global_secondary_index_updates(
            GlobalSecondaryIndexUpdate::builder().create(action).build(),
        );
    for key in std::iter::once(&index.partition).chain(index.sort.as_ref()) {
        request = request.attribute_definitions(attribute(key)?);
    }
    match request.send().await {
        Ok(_) => {}
        // Another process is adding it meanwhile: wait for it as for our own.
        Err(error)
            if error.as_service_error().is_some_and(|e| {
                e.is_resource_in_use_exception() || e.is_limit_exceeded_exception()
            }) => {}
        Err(error) => return Err(aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string()),
    }
    tracing::info!(table = %spec.name, index = index.name, "adding a DynamoDB index");
    let active = wait_for(client, &spec.name, |table| {
        table
            .global_secondary_indexes()
            .iter()
            .find(|i| i.index_name() == Some(index.name))
            .and_then(|i| i.index_status())
            == Some(&IndexStatus::Active)
    })
    .await;
    if active {
        return Ok(());
    }
    tracing::warn!(table = %spec.name, index = index.name, "index still building; queries on it fail until it is active");
    Ok(())
}

/// Deletes tables; one that is already gone is fine.
pub async fn delete_tables(client: &Client, names: &[String]) -> Result<(), MigrateError> {
    for name in names {
        if let Err(error) = client.delete_table().table_name(name).send().await {
            let gone = error
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception());
            if !gone {
                return Err(MigrateError {
                    table: name.clone(),
                    message: aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string(),
                });
            }
        }
    }
    Ok(())
}
