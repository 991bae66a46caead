//! Idempotency keys: a command sent again with its key returns its first result instead of
//! running twice. The key is scoped by principal and mutation; the fingerprint is the command's input as the
//! application layer serialises it, so the same key with another input is refused.

use super::outcome::{CommandContext, CommandError, Outcome};
use crate::domain::{validate, DomainError};
use crate::store::{EventStore, IdempotencyRecord, StoreError};

const KEY_MAX: usize = 200;

/// A key a command claims: its record commits with the command's events.
pub(crate) struct Claim {
    key: String,
    fingerprint: String,
}

/// What an idempotency key says about a command before it runs.
pub(crate) enum Check {
    /// The key was used with this input before: its first result.
    Replayed(Box<Outcome>),
    /// Run it, claiming the key if one was given.
    Fresh(Option<Claim>),
}

impl Claim {
    /// What the key says about `mutation`'s commit `part` (a command of several commits
    /// keeps one record per commit, `<mutation>#<part>`).
    pub async fn check(
        store: &dyn EventStore,
        ctx: &CommandContext,
        mutation: &str,
        part: Option<usize>,
        fingerprint: String,
    ) -> Result<Check, CommandError> {
        let Some(key) = &ctx.idempotency_key else {
            return Ok(Check::Fresh(None));
        };
        let key = validate::required_text("idempotencyKey", key, KEY_MAX)?;
        let scope = match part {
            Some(part) => format!("{mutation}#{part}"),
            None => mutation.to_owned(),
        };
        let claim = Claim {
            // Scoped to the principal: no client can claim (or read back) another's key.
            key: format!("{}:{scope}:{key}", ctx.principal),
            fingerprint,
        };
        Ok(match claim.first_result(store).await? {
            Some(outcome) => Check::Replayed(Box::new(outcome)),
            None => Check::Fresh(Some(claim)),
        })
    }

    /// The record to commit with the command's events.
    pub fn record(&self, outcome: &Outcome) -> Result<IdempotencyRecord, StoreError> {
        let response = serde_json::to_value(outcome)
            .map_err(|e| StoreError::corrupt_because("an outcome to record", e))?;
        Ok(IdempotencyRecord {
            key: self.key.clone(),
            fingerprint: self.fingerprint.clone(),
            response,
        })
    }

    /// The first result, after the commit met the key already recorded (the same request ran
    /// through another process meanwhile).
    pub async fn replay(&self, store: &dyn EventStore) -> Result<Outcome, CommandError> {
        self.first_result(store).await?.ok_or_else(|| {
            StoreError::corrupt(format!("idempotency record {} vanished", self.key)).into()
        })
    }

    async fn first_result(&self, store: &dyn EventStore) -> Result<Option<Outcome>, CommandError> {
        let Some(record) = store.idempotency(&self.key).await? else {
            return Ok(None);
        };
        if record.fingerprint != self.fingerprint {
            return Err(DomainError::invalid(
                "idempotencyKey",
                "this idempotency key was already used with a different input",
            )
            .into());
        }
        let outcome = serde_json::from_value(record.response).map_err(|e| {
            StoreError::corrupt_because(format!("idempotency record {}", self.key), e)
        })?;
        Ok(Some(outcome))
    }
}

/// The fingerprint of a command's input.
pub(crate) fn fingerprint(input: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(input).map_err(|e| StoreError::corrupt_because("a command's input", e))
}
