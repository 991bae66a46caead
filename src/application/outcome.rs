//! What a command takes besides its input (who asks, how to trace it) and what it gives back:
//! the outcome a client sees (also what an idempotency record keeps) or the error, whose kind
//! says whether to fix the input, retry or wait.

use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::auth::{Denied, Scope};
use crate::domain::allocation::Allocation;
use crate::domain::item::InventoryItem;
use crate::domain::transfer::Transfer;
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
    /// The principal whose idempotency keys these are (a key is its own, never another's).
    pub principal: String,
    /// The warehouses the command may change: checked on the state it is decided on.
    pub scope: Scope,
}

impl CommandContext {
    /// `Ok` when the command may change what lies in `warehouse_id`.
    pub fn within(&self, warehouse_id: Uuid) -> Result<(), CommandError> {
        if self.scope.allows(warehouse_id) {
            Ok(())
        } else {
            Err(CommandError::Denied(Denied::Forbidden(format!(
                "{} may not change warehouse {warehouse_id}: it is outside its warehouses",
                self.principal
            ))))
        }
    }

    /// `Ok` for a principal not limited to some warehouses (creating a warehouse).
    pub fn unscoped(&self) -> Result<(), CommandError> {
        match self.scope {
            Scope::All => Ok(()),
            Scope::Warehouses(_) => Err(CommandError::Denied(Denied::Forbidden(format!(
                "{} is limited to some warehouses, so it may not create one",
                self.principal
            )))),
        }
    }
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
    /// A transfer step, with both its items as the step left them.
    Transfer {
        transfer: Entity<Transfer>,
        source: Entity<InventoryItem>,
        destination: Entity<InventoryItem>,
    },
    /// A bulk adjustment: what became of each row.
    Bulk(super::bulk::BulkOutcome),
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
    /// The principal may not change what the command touches; nothing was written.
    #[error(transparent)]
    Denied(Denied),
    /// Lost the race for the same aggregate too many times in a row.
    #[error("the aggregate is too busy: gave up after {0} conflicting attempts")]
    Contention(u32),
}
