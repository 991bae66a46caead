//! Settings shared by every command, each a flag with an environment-variable fallback. The
//! defaults run the embedded service (SQLite files under `./data`, in-process bus).

use clap::{Args, ValueEnum};
use std::path::PathBuf;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreKind {
    /// Embedded SQLite files under `--data-dir`.
    Sqlite,
    /// DynamoDB (or a local DynamoDB-compatible endpoint).
    Dynamodb,
}

#[derive(Args, Clone, Debug)]
pub struct StorageConfig {
    /// Where events, outbox, snapshots and projections live.
    #[arg(long, env = "INVENTORY_STORE", value_enum, default_value = "sqlite")]
    pub store: StoreKind,
    /// Directory of the embedded store (events.db, projections.db).
    #[arg(long, env = "INVENTORY_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// DynamoDB endpoint URL, for DynamoDB Local or another local endpoint; unset for AWS.
    #[arg(long, env = "INVENTORY_DYNAMODB_ENDPOINT")]
    pub dynamodb_endpoint: Option<String>,
    /// Prefix of every DynamoDB table name, so several environments can share an account.
    #[arg(long, env = "INVENTORY_TABLE_PREFIX", default_value = "")]
    pub table_prefix: String,
    /// Create missing DynamoDB tables at start-up (as `migrate` does).
    #[arg(long, env = "INVENTORY_MIGRATE", default_value_t = false)]
    pub migrate: bool,
    /// Snapshot an aggregate every this many events (0 turns snapshots off).
    #[arg(long, env = "INVENTORY_SNAPSHOT_EVERY", default_value_t = crate::application::commands::DEFAULT_SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
}
