//! Clerk session tokens, verified with clerk-rs (`validate_jwt_with_key`: RS256, `exp`/`nbf`).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clerk_rs::ClerkConfiguration;
use clerk_rs::clerk::Clerk;
use clerk_rs::validators::authorizer::{ClerkError, validate_jwt_with_key};
use clerk_rs::validators::jwks::{
    JwksKey, JwksProvider, JwksProviderError, MemoryCacheJwksProvider,
    MemoryCacheJwksProviderOptions, RefreshOnUnknown,
};
use jsonwebtoken::decode_header;
use rsa::RsaPublicKey;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use rsa::traits::PublicKeyParts;

use super::{AuthError, Identity, TokenVerifier};
use crate::config::ClerkConfig;
use crate::domain::UserId;

/// How long a token check may wait for Clerk's JWKS before the request fails as unavailable.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// How far past `exp` clerk-rs still accepts a token (jsonwebtoken's default leeway); a
/// socket signed in with the token lives exactly as long.
const EXPIRY_LEEWAY_SECS: i64 = 60;

/// Keys are either Clerk's JWKS (cached) or one PEM key given in the configuration.
enum Keys {
    Jwks(Arc<MemoryCacheJwksProvider>),
    Pem(Arc<PemKey>),
}

pub struct ClerkVerifier {
    keys: Keys,
    authorized_parties: Vec<String>,
}

impl ClerkVerifier {
    pub fn from_config(config: &ClerkConfig, secret_key: Option<String>) -> anyhow::Result<Self> {
        let keys = match (&config.jwt_key, secret_key) {
            (Some(pem), _) => Keys::Pem(Arc::new(
                PemKey::parse(pem).context("auth.clerk.jwt_key is not an RSA public key in PEM")?,
            )),
            (None, Some(secret)) => {
                let base = config.api_url.trim_end_matches('/');
                let clerk = Clerk::new(
                    ClerkConfiguration::new(secret).with_base_path(format!("{base}/v1")),
                );
                let options = MemoryCacheJwksProviderOptions {
                    expire_after: Some(Duration::from_secs(config.jwks_cache_secs)),
                    refresh_on_unknown: RefreshOnUnknown::Ratelimit(Duration::from_secs(
                        config.jwks_min_refresh_secs,
                    )),
                };
                Keys::Jwks(Arc::new(MemoryCacheJwksProvider::new_with_options(
                    clerk, options,
                )))
            }
            (None, None) => {
                return Err(anyhow!(
                    "auth.mode = \"clerk\" needs auth.clerk.jwt_key or the CLERK_SECRET_KEY environment variable"
                ));
            }
        };
        Ok(Self {
            keys,
            authorized_parties: config.authorized_parties.clone(),
        })
    }
}

#[async_trait]
impl TokenVerifier for ClerkVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        refuse_critical_extensions(token)?;
        // The key is looked up here rather than inside `validate_jwt`, which reports a JWKS
        // outage as an invalid token: an outage must be a 503, not a 401.
        let kid = decode_header(token)
            .map_err(|_| AuthError::Invalid("the token is not a JWT".into()))?
            .kid
            .ok_or_else(|| AuthError::Invalid("the token names no key (kid)".into()))?;
        let key = match &self.keys {
            Keys::Pem(key) => key.get_key(&kid).await,
            Keys::Jwks(jwks) => tokio::time::timeout(JWKS_TIMEOUT, jwks.get_key(&kid))
                .await
                .map_err(|_| {
                    AuthError::Unavailable("Clerk's JWKS did not answer in time".into())
                })?,
        }
        .map_err(|e| match e {
            JwksProviderError::UnknownKey => {
                AuthError::Invalid("the token's key is unknown".into())
            }
            JwksProviderError::JwksApi => {
                tracing::warn!("cannot fetch Clerk's JWKS");
                AuthError::Unavailable("session tokens cannot be verified right now".into())
            }
        })?;
        let claims = validate_jwt_with_key(token, &key).map_err(|e| match e {
            ClerkError::Unauthorized(reason) => AuthError::Invalid(reason),
            ClerkError::InternalServerError(reason) => {
                tracing::warn!(%reason, "cannot verify Clerk tokens");
                AuthError::Unavailable("session tokens cannot be verified right now".into())
            }
        })?;
        if !self.authorized_parties.is_empty() {
            let azp = claims.azp.as_deref().unwrap_or_default();
            if !self.authorized_parties.iter().any(|p| p == azp) {
                return Err(AuthError::Invalid(
                    "the token's azp is not an authorized party".into(),
                ));
            }
        }
        let user = UserId::parse(&claims.sub)
            .map_err(|problem| AuthError::Invalid(format!("the token's sub {problem}")))?;
        let at = |secs: i64| chrono::DateTime::from_timestamp(secs, 0);
        Ok(Identity {
            user,
            issued_at: at(i64::from(claims.iat)),
            expires_at: at(i64::from(claims.exp) + EXPIRY_LEEWAY_SECS),
        })
    }
}

/// RFC 7515 §4.1.11: a token whose header lists critical extensions (`crit`) must be refused
/// by a verifier that does not understand them, and this one understands none.
fn refuse_critical_extensions(token: &str) -> Result<(), AuthError> {
    let not_jwt = || AuthError::Invalid("the token is not a JWT".into());
    let header = token.split('.').next().ok_or_else(not_jwt)?;
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| not_jwt())?;
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes).map_err(|_| not_jwt())?;
    if fields.contains_key("crit") {
        return Err(AuthError::Invalid(
            "the token's header names critical extensions (crit), which are not supported".into(),
        ));
    }
    Ok(())
}

/// A PEM public key served as the key of whatever `kid` a token names: networkless checks.
struct PemKey {
    n: String,
    e: String,
}

impl PemKey {
    fn parse(pem: &str) -> anyhow::Result<Self> {
        // Keys passed through environment variables often carry literal `\n`s.
        let pem = pem.replace("\\n", "\n");
        let key = RsaPublicKey::from_public_key_pem(pem.trim())
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem.trim()))
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Self {
            n: URL_SAFE_NO_PAD.encode(key.n().to_bytes_be()),
            e: URL_SAFE_NO_PAD.encode(key.e().to_bytes_be()),
        })
    }
}

#[async_trait]
impl JwksProvider for PemKey {
    type Error = JwksProviderError;

    async fn get_key(&self, kid: &str) -> Result<JwksKey, JwksProviderError> {
        Ok(JwksKey {
            use_key: "sig".into(),
            kty: "RSA".into(),
            kid: kid.to_owned(),
            alg: "RS256".into(),
            n: self.n.clone(),
            e: self.e.clone(),
        })
    }
}
