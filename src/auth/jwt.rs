//! JWT bearer tokens from an identity provider, checked with `jsonwebtoken` (the maintained
//! crate most Rust services use, on the aws-lc-rs crypto the AWS SDK already builds): the
//! signature against a key of the provider's JWKS (a file, or a URL read at start-up and again
//! when a token names a key it does not hold, at most every `REFRESH_AFTER`), the issuer, the
//! audience and the expiry. Only public-key algorithms are accepted, so a provider's public key
//! can never be used as an HMAC secret. The principal is the token's subject, its role and
//! warehouses come from configurable claims.

use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::{Kind, Principal, Role, Scope};

/// The soonest a JWKS URL is read again for a key it did not have.
const REFRESH_AFTER: Duration = Duration::from_secs(30);

/// `--jwt-*`: where tokens come from and what their claims mean.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct TokenConfig {
    /// The identity provider's JWKS, as a file path or an http(s) URL. Unset: tokens are not
    /// accepted (API keys still are).
    #[arg(long = "jwt-jwks", env = "INVENTORY_JWT_JWKS")]
    pub jwks: Option<String>,
    /// The `iss` every token must carry.
    #[arg(long = "jwt-issuer", env = "INVENTORY_JWT_ISSUER", requires = "jwks")]
    pub issuer: Option<String>,
    /// An `aud` every token must carry.
    #[arg(
        long = "jwt-audience",
        env = "INVENTORY_JWT_AUDIENCE",
        requires = "jwks"
    )]
    pub audience: Option<String>,
    /// The claim naming the role: viewer, operator or admin (a string, or a list of which
    /// the highest known role counts).
    #[arg(
        long = "jwt-role-claim",
        env = "INVENTORY_JWT_ROLE_CLAIM",
        default_value = "role"
    )]
    pub role_claim: String,
    /// The claim listing the warehouse ids the principal is limited to (absent or empty:
    /// every warehouse).
    #[arg(
        long = "jwt-warehouses-claim",
        env = "INVENTORY_JWT_WAREHOUSES_CLAIM",
        default_value = "warehouses"
    )]
    pub warehouses_claim: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TokenError(String);

fn refused(why: impl Into<String>) -> TokenError {
    TokenError(why.into())
}

enum Source {
    File(PathBuf),
    Url(String),
}

struct KeySet {
    keys: JwkSet,
    read_at: Instant,
}

/// Checks tokens against the configured issuer, audience and keys.
pub struct Verifier {
    source: Source,
    issuer: String,
    audience: String,
    role_claim: String,
    warehouses_claim: String,
    keys: RwLock<KeySet>,
    http: reqwest::Client,
}

impl Verifier {
    /// The verifier `config` asks for (`None` without `--jwt-jwks`), with its keys read once.
    /// Issuer and audience are required: a token meant for another service must not pass.
    pub async fn from_config(config: &TokenConfig) -> anyhow::Result<Option<Self>> {
        let Some(jwks) = config.jwks.as_deref() else {
            return Ok(None);
        };
        let (Some(issuer), Some(audience)) = (&config.issuer, &config.audience) else {
            anyhow::bail!("--jwt-jwks needs --jwt-issuer and --jwt-audience");
        };
        let source = if jwks.starts_with("https://") || jwks.starts_with("http://") {
            Source::Url(jwks.to_owned())
        } else {
            Source::File(PathBuf::from(jwks))
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        let keys = read(&source, &http).await?;
        Ok(Some(Self {
            source,
            issuer: issuer.clone(),
            audience: audience.clone(),
            role_claim: config.role_claim.clone(),
            warehouses_claim: config.warehouses_claim.clone(),
            keys: RwLock::new(KeySet {
                keys,
                read_at: Instant::now(),
            }),
            http,
        }))
    }

    /// The principal a valid token names.
    pub async fn principal(&self, token: &str) -> Result<Principal, TokenError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| refused("the bearer credential is neither an API key nor a JWT"))?;
        if !asymmetric(header.alg) {
            return Err(refused(format!(
                "tokens signed with {:?} are not accepted",
                header.alg
            )));
        }
        let key = match self.key(header.kid.as_deref(), header.alg) {
            Some(key) => key,
            None => {
                self.refresh().await;
                self.key(header.kid.as_deref(), header.alg)
                    .ok_or_else(|| refused("the token's signing key is not the provider's"))?
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 30;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| refused(format!("the token is not valid: {e}")))?;
        self.principal_of(&data.claims)
    }

    fn principal_of(&self, claims: &Map<String, Value>) -> Result<Principal, TokenError> {
        let subject = claims
            .get("sub")
            .and_then(Value::as_str)
            .ok_or_else(|| refused("the token has no subject"))?;
        let role = match claims.get(&self.role_claim) {
            Some(Value::String(role)) => Role::parse(role),
            Some(Value::Array(roles)) => roles
                .iter()
                .filter_map(Value::as_str)
                .filter_map(Role::parse)
                .max(),
            _ => None,
        }
        .ok_or_else(|| {
            refused(format!(
                "the token's `{}` claim names no role (viewer, operator or admin)",
                self.role_claim
            ))
        })?;
        let warehouses = match claims.get(&self.warehouses_claim) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(ids)) => ids
                .iter()
                .map(|id| id.as_str().and_then(|id| Uuid::parse_str(id).ok()))
                .collect::<Option<Vec<Uuid>>>()
                .ok_or_else(|| {
                    refused(format!(
                        "the token's `{}` claim must list warehouse ids",
                        self.warehouses_claim
                    ))
                })?,
            Some(_) => {
                return Err(refused(format!(
                    "the token's `{}` claim must be a list",
                    self.warehouses_claim
                )))
            }
        };
        Ok(Principal {
            name: subject_name(subject),
            role: Some(role),
            scope: Scope::of(warehouses),
            kind: Kind::Token,
            acts_for_others: false,
        })
    }

    /// The key a token names (by `kid`, or the only key when it names none), usable with
    /// its algorithm.
    fn key(&self, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
        let set = crate::sync::read(&self.keys);
        let jwk = match kid {
            Some(kid) => set.keys.find(kid)?,
            None if set.keys.keys.len() == 1 => set.keys.keys.first()?,
            None => return None,
        };
        if matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)) {
            return None;
        }
        if let Some(declared) = jwk.common.key_algorithm {
            if format!("{declared:?}") != format!("{alg:?}") {
                return None;
            }
        }
        DecodingKey::from_jwk(jwk).ok()
    }

    /// Reads the keys again (a URL at most every `REFRESH_AFTER`; a file each time), keeping
    /// the old ones when that fails.
    async fn refresh(&self) {
        let due = crate::sync::read(&self.keys).read_at.elapsed() >= REFRESH_AFTER;
        if matches!(self.source, Source::Url(_)) && !due {
            return;
        }
        match read(&self.source, &self.http).await {
            Ok(keys) => {
                *crate::sync::write(&self.keys) = KeySet {
                    keys,
                    read_at: Instant::now(),
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not read the JWKS again; keeping the keys held")
            }
        }
    }
}

async fn read(source: &Source, http: &reqwest::Client) -> anyhow::Result<JwkSet> {
    let text = match source {
        Source::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| anyhow::anyhow!("reading the JWKS {}: {e}", path.display()))?,
        Source::Url(url) => {
            http.get(url)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| anyhow::anyhow!("fetching the JWKS {url}: {e}"))?
                .text()
                .await?
        }
    };
    serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("the JWKS is not a JWK set: {e}"))
}

fn asymmetric(alg: Algorithm) -> bool {
    !matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

/// A subject as an actor name: the audit trail's characters only, at most 64.
fn subject_name(subject: &str) -> String {
    subject
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
    use base64::Engine;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    struct Provider {
        key: EncodingKey,
        jwks: tempfile::NamedTempFile,
    }

    /// An identity provider with one fresh Ed25519 key, `k1`, published in a JWKS file.
    fn provider() -> Provider {
        let pair = Ed25519KeyPair::generate().expect("a key");
        let der = pair.to_pkcs8().expect("its PKCS#8 form");
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}]});
        let file = tempfile::NamedTempFile::new().expect("a file");
        std::fs::write(file.path(), jwks.to_string()).expect("written");
        Provider {
            key: EncodingKey::from_ed_der(der.as_ref()),
            jwks: file,
        }
    }

    async fn verifier(provider: &Provider) -> Verifier {
        let config = TokenConfig {
            jwks: Some(provider.jwks.path().display().to_string()),
            issuer: Some("https://id.example".into()),
            audience: Some("inventory".into()),
            role_claim: "role".into(),
            warehouses_claim: "warehouses".into(),
        };
        Verifier::from_config(&config)
            .await
            .expect("configured")
            .expect("a verifier")
    }

    fn token(provider: &Provider, claims: Value) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(&header, &claims, &provider.key).expect("signed")
    }

    fn claims(extra: Value) -> Value {
        let mut claims = json!({
            "iss": "https://id.example", "aud": "inventory", "sub": "alice@corp",
            "exp": chrono::Utc::now().timestamp() + 600, "role": "operator",
        });
        if let (Some(claims), Some(extra)) = (claims.as_object_mut(), extra.as_object()) {
            claims.extend(extra.clone());
        }
        claims
    }

    #[tokio::test]
    async fn a_valid_token_names_its_subject_role_and_warehouses() {
        let provider = provider();
        let verifier = verifier(&provider).await;
        let north = Uuid::now_v7();
        let principal = verifier
            .principal(&token(
                &provider,
                claims(json!({"warehouses": [north.to_string()]})),
            ))
            .await
            .expect("accepted");
        assert_eq!(principal.name, "alice@corp");
        assert_eq!(principal.role, Some(Role::Operator));
        assert_eq!(principal.kind, Kind::Token);
        assert!(principal.sees(north));
        assert!(!principal.sees(Uuid::now_v7()));
    }

    #[tokio::test]
    async fn tokens_for_another_audience_issuer_or_key_or_expired_are_refused() {
        let provider = provider();
        let verifier = verifier(&provider).await;
        let refused = |claims: Value| {
            let token = token(&provider, claims);
            let verifier = &verifier;
            async move { verifier.principal(&token).await.is_err() }
        };
        assert!(refused(claims(json!({"aud": "billing"}))).await);
        assert!(refused(claims(json!({"iss": "https://evil.example"}))).await);
        assert!(
            refused(claims(
                json!({"exp": chrono::Utc::now().timestamp() - 3600})
            ))
            .await
        );
        assert!(refused(claims(json!({"role": "superuser"}))).await);
        assert!(refused(claims(json!({"warehouses": ["not-an-id"]}))).await);
        // Signed by a key the provider does not publish.
        let stranger = super::tests::provider();
        let forged = token(&stranger, claims(json!({})));
        assert!(verifier.principal(&forged).await.is_err());
        // HMAC with a guessable secret is never accepted.
        let hs = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims(json!({})),
            &EncodingKey::from_secret(b"secret").expect("a key"),
        )
        .expect("signed");
        assert!(verifier.principal(&hs).await.is_err());
    }
}
