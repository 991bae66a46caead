//! JWT bearer tokens from an identity provider.

use super::Principal;

/// Checks tokens against the configured issuer, audience and keys.
pub struct Verifier {}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(String);

impl Verifier {
    pub async fn principal(&self, token: &str) -> Result<Principal, TokenError> {
        let _ = token;
        Err(TokenError("tokens are not accepted".into()))
    }
}
