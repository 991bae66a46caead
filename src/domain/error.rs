//! Business-rule failures. Each has a stable `code` that clients switch on and, where one input
//! field is to blame, the name of that field. These are never retried: the same command against
//! the same state fails the same way.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("{entity} {id} was not found")]
    NotFound {
        entity: &'static str,
        id: String,
        field: &'static str,
    },
    #[error("{message}")]
    InvalidInput {
        field: &'static str,
        message: String,
    },
    #[error("insufficient stock: {requested} requested, {available} available")]
    InsufficientStock { requested: i64, available: i64 },
    #[error("SKU {sku} already exists in this warehouse")]
    DuplicateSku { sku: String },
    #[error("warehouse code {code} is already in use")]
    DuplicateCode { code: String },
    #[error("{entity} is inactive")]
    Inactive {
        entity: &'static str,
        field: &'static str,
    },
    #[error("cannot {action} an allocation that is {from}")]
    InvalidStateTransition {
        from: &'static str,
        action: &'static str,
    },
    #[error("expected version {expected} but the current version is {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    /// A count's `compareQuantity` is not what is on hand: stock moved since it was counted.
    #[error("on hand is {actual}, not the {expected} this count was compared with: count again, or leave out compareQuantity")]
    StaleQuantity { expected: i64, actual: i64 },
    /// A count below what open allocations hold: on hand may never fall under allocated.
    #[error("a count of {counted} is below the {allocated} units allocated: cancel or fulfil allocations first")]
    CountBelowAllocated { counted: i64, allocated: i64 },
}

impl DomainError {
    /// The stable machine-readable code carried in `userErrors.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "NOT_FOUND",
            Self::InvalidInput { .. } => "INVALID_INPUT",
            Self::InsufficientStock { .. } | Self::CountBelowAllocated { .. } => {
                "INSUFFICIENT_STOCK"
            }
            Self::DuplicateSku { .. } => "DUPLICATE_SKU",
            Self::DuplicateCode { .. } => "DUPLICATE_CODE",
            Self::Inactive { .. } => "INACTIVE",
            Self::InvalidStateTransition { .. } => "INVALID_STATE_TRANSITION",
            Self::VersionConflict { .. } => "VERSION_CONFLICT",
            Self::StaleQuantity { .. } => "STALE_QUANTITY",
        }
    }

    /// The input field to blame, if one is.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            Self::NotFound { field, .. }
            | Self::InvalidInput { field, .. }
            | Self::Inactive { field, .. } => Some(field),
            Self::InsufficientStock { .. } | Self::CountBelowAllocated { .. } => Some("quantity"),
            Self::DuplicateSku { .. } => Some("sku"),
            Self::DuplicateCode { .. } => Some("code"),
            Self::VersionConflict { .. } => Some("expectedVersion"),
            Self::StaleQuantity { .. } => Some("compareQuantity"),
            Self::InvalidStateTransition { .. } => None,
        }
    }

    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field,
            message: message.into(),
        }
    }
}
