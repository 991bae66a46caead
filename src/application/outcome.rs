//! What a command takes besides its input (who asks, how to trace it) and what it gives back:
//! the outcome a client sees (also what an idempotency record keeps) or the error, whose kind
//! says whether to fix the input, retry or wait.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::domain::allocation::Allocation;
use crate::domain::item::InventoryItem;
use crate::domain::warehouse::Warehouse;
use crate::domain::{DomainError, Versioned};
use crate::store::StoreError;

/// Who asks, and how to trace it: becomes every event's metadata.
#[derive(Debug, Clone, Default)]
pub struct CommandContext {
    pub actor: String,
    pub correlation_id: String,
    pub idempotency_key: Option<String>,
    pub source: String,
}

/// An aggregate's id and state right after a command's commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity<A> {
    pub id: Uuid,
    pub current: Versioned<A>,
}

/// What a successful command returns; also what an idempotency record keeps, so a retried
/// request returns exactly the first result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Warehouse(Entity<Warehouse>),
    Item(Entity<InventoryItem>),
    Allocation {
        allocation: Entity<Allocation>,
        item: Entity<InventoryItem>,
    },
}

#[derive(Debug, Clone, Error)]
pub enum CommandError {
    /// A business rule said no; nothing was written.
    #[error(transparent)]
    Rejected(#[from] DomainError),
    /// The store failed; nothing is known to be written (a retry with the same idempotency key
    /// is safe).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Lost the race for the same aggregate too many times in a row.
    #[error("the aggregate is too busy: gave up after {0} conflicting attempts")]
    Contention(u32),
}
