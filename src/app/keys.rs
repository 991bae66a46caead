//! The `api-key` commands: create, list and revoke keys in the configured store's database,
//! the same one every instance serving that store reads its keys from. Opens only the key
//! store (no projections, no bus); the command line prints what these return. A secret exists
//! only in `create_key`'s answer: what is stored and listed is its hash, and the listing leaves
//! even that out.

use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

use super::dynamodb_client;
use crate::auth::keys::{ApiKey, Keys};
use crate::auth::Role;
use crate::config::{StorageConfig, StoreKind};
use crate::store::dynamodb::DynamoEventStore;
use crate::store::sqlite::SqliteEventStore;

/// The key store of the configured storage: the SQLite store of `--data-dir`, or the DynamoDB
/// tables under `--table-prefix` (created first with `--migrate`). A server gets the same
/// store from `Storage::keys` / `Service::keys`, sharing its writer or client.
pub async fn open_keys(config: &StorageConfig) -> anyhow::Result<Keys> {
    Ok(match config.store {
        StoreKind::Sqlite => Arc::new(SqliteEventStore::open(&config.data_dir)?),
        StoreKind::Dynamodb => {
            let (client, tables) = dynamodb_client(config).await?;
            Arc::new(DynamoEventStore::new(client, tables))
        }
    })
}

/// What `api-key create` asks for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: Role,
    /// Empty: every warehouse.
    pub warehouses: Vec<Uuid>,
    /// May name another actor in `X-Actor` (a trusted gateway acting for its users).
    pub acts_for_others: bool,
}

/// Creates a key; returns it and its secret (the only time the secret is seen).
pub async fn create_key(config: &StorageConfig, new: NewKey) -> anyhow::Result<(ApiKey, String)> {
    let (key, secret) = ApiKey::issue(
        &new.name,
        new.role,
        new.warehouses,
        new.acts_for_others,
        now(),
    )?;
    let keys = open_keys(config).await?;
    keys.create_key(&key).await?;
    Ok((key, secret))
}

/// Every key, revoked ones included, by name.
pub async fn list_keys(config: &StorageConfig) -> anyhow::Result<Vec<ApiKey>> {
    Ok(open_keys(config).await?.keys().await?)
}

/// What `revoke_key` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// Revoked now; the key as it is stored after.
    Revoked(ApiKey),
    /// It had been revoked before (its first revocation time stays).
    AlreadyRevoked(ApiKey),
    /// No key has this name.
    NoSuchKey,
}

/// Revokes the key named `name`: every instance refuses it within `KeyDirectory::FRESH`.
pub async fn revoke_key(config: &StorageConfig, name: &str) -> anyhow::Result<Revocation> {
    let keys = open_keys(config).await?;
    let revoked = keys.revoke_key(name, now()).await?;
    let stored = keys.keys().await?.into_iter().find(|key| key.name == name);
    Ok(match (revoked, stored) {
        (_, None) => Revocation::NoSuchKey,
        (true, Some(key)) => Revocation::Revoked(key),
        (false, Some(key)) => Revocation::AlreadyRevoked(key),
    })
}

/// A key as `api-key list` prints it: never the secret's hash (it is what a stolen listing
/// would be matched against).
pub fn key_listing(key: &ApiKey) -> serde_json::Value {
    json!({
        "name": key.name,
        "role": key.role,
        "warehouses": key.warehouses,
        "actsForOthers": key.acts_for_others,
        "createdAt": time(key.created_at),
        "revokedAt": key.revoked_at.map(time),
    })
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
