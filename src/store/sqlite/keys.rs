//! API keys in the event store's SQLite file (table `api_keys`: the name is the primary key,
//! the hash has a unique index for the edge's lookups). Writes go through the store's one
//! writer thread like every commit, so they are on disk when answered; reads use the read pool.

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{unavailable, SqliteEventStore, WriteJob};
use crate::auth::keys::{ApiKey, KeyError, KeyStore};
use crate::auth::Role;
use crate::store::StoreError;

pub(super) enum KeyWrite {
    Create(ApiKey),
    Revoke { name: String, at: i64 },
}

/// Applies one key write in the writer's transaction: whether the key is now stored (create)
/// or was revoked by this write (revoke).
pub(super) fn apply(conn: &Connection, write: &KeyWrite) -> Result<bool, StoreError> {
    match write {
        KeyWrite::Create(key) => {
            let warehouses = serde_json::to_string(&key.warehouses)
                .map_err(|e| StoreError::corrupt_because("stored JSON", e))?;
            // A taken name changes nothing (and says so); a taken hash (a repeated secret,
            // which 244 random bits make impossible) still fails on the unique index.
            let inserted = conn
                .prepare_cached(
                    "INSERT INTO api_keys
                         (name, hash, role, warehouses, acts_for_others, created_at, revoked_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                     ON CONFLICT (name) DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        key.name,
                        key.hash,
                        key.role.as_str(),
                        warehouses,
                        key.acts_for_others,
                        key.created_at,
                        key.revoked_at,
                    ])
                })
                .map_err(unavailable)?;
            if inserted == 1 {
                return Ok(true);
            }
            // Taken; by this very key (stored again) is a success.
            let stored: Option<String> = conn
                .prepare_cached("SELECT hash FROM api_keys WHERE name = ?1")
                .and_then(|mut s| s.query_row([&key.name], |r| r.get(0)).optional())
                .map_err(unavailable)?;
            Ok(stored.as_deref() == Some(key.hash.as_str()))
        }
        KeyWrite::Revoke { name, at } => conn
            .prepare_cached(
                "UPDATE api_keys SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
            )
            .and_then(|mut s| s.execute(params![name, at]))
            .map(|updated| updated == 1)
            .map_err(unavailable),
    }
}

const COLUMNS: &str = "name, hash, role, warehouses, acts_for_others, created_at, revoked_at";

/// A row as stored, decoded into a key outside SQLite's callback (so a bad value is reported as
/// corrupt data, not as a query failure).
struct Row {
    name: String,
    hash: String,
    role: String,
    warehouses: String,
    acts_for_others: bool,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            name: row.get(0)?,
            hash: row.get(1)?,
            role: row.get(2)?,
            warehouses: row.get(3)?,
            acts_for_others: row.get(4)?,
            created_at: row.get(5)?,
            revoked_at: row.get(6)?,
        })
    }

    fn key(self) -> Result<ApiKey, StoreError> {
        let role = Role::parse(&self.role).ok_or_else(|| {
            StoreError::corrupt(format!(
                "API key {:?}: unknown role {}",
                self.name, self.role
            ))
        })?;
        let warehouses: Vec<Uuid> = serde_json::from_str(&self.warehouses).map_err(|e| {
            StoreError::corrupt_because(format!("API key {:?}: warehouses", self.name), e)
        })?;
        Ok(ApiKey {
            name: self.name,
            role,
            warehouses,
            acts_for_others: self.acts_for_others,
            hash: self.hash,
            created_at: self.created_at,
            revoked_at: self.revoked_at,
        })
    }
}

#[async_trait]
impl KeyStore for SqliteEventStore {
    async fn create_key(&self, key: &ApiKey) -> Result<(), KeyError> {
        let write = KeyWrite::Create(key.clone());
        match self.submit(|reply| WriteJob::Key(write, reply)).await? {
            true => Ok(()),
            false => Err(KeyError::NameTaken(key.name.clone())),
        }
    }

    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows = self
            .read(|conn| {
                let mut statement =
                    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys ORDER BY name"))?;
                let rows = statement.query_map([], Row::read)?;
                rows.collect::<rusqlite::Result<Vec<_>>>()
            })
            .await?;
        rows.into_iter().map(Row::key).collect()
    }

    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError> {
        let write = KeyWrite::Revoke {
            name: name.to_owned(),
            at,
        };
        self.submit(|reply| WriteJob::Key(write, reply)).await
    }

    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        let hash = hash.to_owned();
        let row = self
            .read(move |conn| {
                conn.prepare_cached(&format!("SELECT {COLUMNS} FROM api_keys WHERE hash = ?1"))?
                    .query_row([hash], Row::read)
                    .optional()
            })
            .await?;
        row.map(Row::key).transpose()
    }
}
