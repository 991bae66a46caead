//! API keys: a name, a role, optional warehouses, and a secret the client sends as
//! `Authorization: Bearer <secret>`. Only the secret's SHA-256 is stored, in the event store's
//! database (SQLite or DynamoDB), so every instance on one store shares the keys; a lookup is
//! remembered for at most `KeyDirectory::FRESH`, so a key revoked anywhere is refused
//! everywhere within that.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;
use uuid::Uuid;

use super::{Kind, Principal, Role, Scope, ANONYMOUS};
use crate::store::StoreError;

/// Every secret starts with this, so a key is told apart from a token (and found by secret
/// scanners).
pub const SECRET_PREFIX: &str = "inv_";

/// Hex digits after the prefix: two v4 UUIDs (122 random bits each).
const SECRET_DIGITS: usize = 64;

/// Longest key name; names become the actor of every event the key causes.
pub const MAX_NAME_LEN: usize = 64;

/// One key as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub name: String,
    pub role: Role,
    /// Empty: every warehouse.
    pub warehouses: Vec<Uuid>,
    pub acts_for_others: bool,
    /// Hex SHA-256 of the secret.
    pub hash: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// A new key and its secret, which exists only in the answer: the key keeps its hash.
    /// The name is checked (`check_name`); warehouses are kept sorted, each once.
    pub fn issue(
        name: &str,
        role: Role,
        mut warehouses: Vec<Uuid>,
        acts_for_others: bool,
        now: i64,
    ) -> Result<(Self, String), KeyError> {
        check_name(name)?;
        warehouses.sort_unstable();
        warehouses.dedup();
        let secret = new_secret();
        let key = Self {
            name: name.to_owned(),
            role,
            warehouses,
            acts_for_others,
            hash: hash(&secret),
            created_at: now,
            revoked_at: None,
        };
        Ok((key, secret))
    }

    pub fn principal(&self) -> Principal {
        Principal {
            name: self.name.clone(),
            role: Some(self.role),
            scope: Scope::of(self.warehouses.iter().copied()),
            kind: Kind::ApiKey,
            acts_for_others: self.acts_for_others,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("a key named {0:?} exists already (revoked keys keep their name)")]
    NameTaken(String),
    #[error(
        "{0:?} is not a key name: use 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 . _ : @ - \
         (it becomes the actor of the events the key causes; `anonymous` is reserved)"
    )]
    BadName(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A name is 1..=64 characters of `[A-Za-z0-9._:@-]`, and not `anonymous`: it is written as
/// the actor into event metadata and logs, so nothing there can be forged by a name (no
/// spaces, quotes or control characters) and no key passes for the unauthenticated caller.
pub fn check_name(name: &str) -> Result<(), KeyError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    if name.is_empty()
        || name.len() > MAX_NAME_LEN
        || !name.chars().all(allowed)
        || name == ANONYMOUS
    {
        return Err(KeyError::BadName(name.to_owned()));
    }
    Ok(())
}

/// A new secret: `inv_` and 64 lowercase hex digits from two v4 UUIDs (244 random bits from
/// the operating system's generator), far beyond guessing.
pub fn new_secret() -> String {
    format!(
        "{SECRET_PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    )
}

/// What is stored of a secret: its SHA-256 in lowercase hex. A fast hash is enough: the
/// secret is random and long, so there is nothing for a slow hash to protect against.
pub fn hash(secret: &str) -> String {
    format!("{:x}", Sha256::digest(secret.as_bytes()))
}

/// Whether `text` has the shape `new_secret` gives; anything else cannot be a key, so it is
/// refused without asking the store.
pub fn is_secret_shaped(text: &str) -> bool {
    text.strip_prefix(SECRET_PREFIX).is_some_and(|digits| {
        digits.len() == SECRET_DIGITS
            && digits
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Where keys are kept: the event store's database.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a new key; a name in use (even revoked) is `NameTaken`, except by this very key
    /// (the same hash): storing it again, as a retry after a lost reply does, is a success.
    async fn create_key(&self, key: &ApiKey) -> Result<(), KeyError>;
    /// Every key, revoked ones included, by name.
    async fn keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks a key revoked at `at`; false when there is no such key (or it was revoked).
    async fn revoke_key(&self, name: &str, at: i64) -> Result<bool, StoreError>;
    /// The key whose secret hashes to `hash`, revoked or not.
    async fn key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
}

/// Keys as the edge looks them up.
pub type Keys = Arc<dyn KeyStore>;

/// The keys as the edge sees them: a secret's principal, each answer (known, unknown or
/// revoked alike) remembered for at most `FRESH`. So a key revoked on any instance is refused
/// on every instance within `FRESH`, and a client repeating a bad key costs the store one read
/// per `FRESH`, however many requests it sends; concurrent lookups of one secret share one
/// read. A store failure is not remembered: the next request asks again.
pub struct KeyDirectory {
    keys: Keys,
    fresh: Duration,
    capacity: usize,
    seen: Mutex<HashMap<String, Lookup>>,
}

/// One remembered lookup: when it was asked (an answer read after that is at most as old as
/// the ask), and the answer, shared by every request that came while it was read.
struct Lookup {
    asked: Instant,
    answer: Arc<OnceCell<Option<Principal>>>,
}

impl KeyDirectory {
    /// The longest an answer is trusted: how long a revoked key may still pass elsewhere.
    pub const FRESH: Duration = Duration::from_secs(1);
    /// The most secrets remembered; when full, everything is forgotten at once (a flood of
    /// made-up secrets then costs at most one read each, and no more memory than this).
    pub const CAPACITY: usize = 10_000;

    pub fn new(keys: Keys) -> Self {
        Self {
            keys,
            fresh: Self::FRESH,
            capacity: Self::CAPACITY,
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// The store behind the directory (to create, list and revoke keys).
    pub fn store(&self) -> &Keys {
        &self.keys
    }

    /// The principal of an unrevoked key with this secret; `None` for anything else.
    pub async fn principal(&self, secret: &str) -> Result<Option<Principal>, StoreError> {
        if !is_secret_shaped(secret) {
            return Ok(None);
        }
        let hash = hash(secret);
        let answer = self.lookup(&hash);
        let principal = answer
            .get_or_try_init(|| async {
                let key = self.keys.key_by_hash(&hash).await?;
                Ok::<_, StoreError>(
                    key.filter(|key| key.revoked_at.is_none() && key.hash == hash)
                        .map(|key| key.principal()),
                )
            })
            .await?;
        Ok(principal.clone())
    }

    /// The remembered lookup of `hash` if still fresh, else a new one in its place.
    fn lookup(&self, hash: &str) -> Arc<OnceCell<Option<Principal>>> {
        let mut seen = crate::sync::lock(&self.seen);
        let now = Instant::now();
        if let Some(lookup) = seen.get(hash) {
            if now.duration_since(lookup.asked) < self.fresh {
                return lookup.answer.clone();
            }
        }
        if seen.len() >= self.capacity {
            seen.clear();
        }
        let answer = Arc::new(OnceCell::new());
        seen.insert(
            hash.to_owned(),
            Lookup {
                asked: now,
                answer: answer.clone(),
            },
        );
        answer
    }
}

#[cfg(test)]
mod tests;
