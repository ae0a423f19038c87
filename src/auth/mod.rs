//! Who is calling: turns a bearer token into the signed-in user's id.
//!
//! `dev` mode accepts `dev:<user-id>` (loopback only, refused elsewhere at start); `clerk` mode
//! verifies Clerk session JWTs with clerk-rs, against Clerk's JWKS or a configured PEM key.

mod clerk;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::{AuthConfig, AuthMode};
use crate::domain::UserId;

pub use clerk::ClerkVerifier;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed, expired or otherwise unacceptable token.
    #[error("{0}")]
    Invalid(String),
    /// The keys to check the token with cannot be had right now.
    #[error("{0}")]
    Unavailable(String),
}

/// Who a valid token speaks for, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: UserId,
    /// When the token was issued (`iat`); `None` for tokens that carry no time (dev tokens).
    pub issued_at: Option<DateTime<Utc>>,
    /// The last instant the token is accepted (`exp` plus the leeway); `None` when it does
    /// not expire.
    pub expires_at: Option<DateTime<Utc>>,
}

impl Identity {
    fn timeless(user: UserId) -> Self {
        Self {
            user,
            issued_at: None,
            expires_at: None,
        }
    }
}

#[async_trait]
pub trait TokenVerifier: Send + Sync {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError>;
}

/// `dev:<user-id>` tokens, for local use.
pub struct DevVerifier;

#[async_trait]
impl TokenVerifier for DevVerifier {
    async fn verify(&self, token: &str) -> Result<Identity, AuthError> {
        let id = token
            .strip_prefix("dev:")
            .ok_or_else(|| AuthError::Invalid("expected a dev:<user-id> token".into()))?;
        let valid = (1..=64).contains(&id.len())
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(AuthError::Invalid(
                "the user id of a dev token must match [A-Za-z0-9_-]{1,64}".into(),
            ));
        }
        UserId::parse(id)
            .map(Identity::timeless)
            .map_err(AuthError::Invalid)
    }
}

/// Builds the verifier the configuration asks for. `clerk_secret_key` comes from the
/// environment (`CLERK_SECRET_KEY`), never from the config file.
pub fn verifier(
    config: &AuthConfig,
    clerk_secret_key: Option<String>,
) -> anyhow::Result<Arc<dyn TokenVerifier>> {
    match config.mode {
        AuthMode::Dev => Ok(Arc::new(DevVerifier)),
        AuthMode::Clerk => Ok(Arc::new(ClerkVerifier::from_config(
            &config.clerk,
            clerk_secret_key,
        )?)),
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &[u8]) -> Result<&str, AuthError> {
    let value = std::str::from_utf8(header)
        .map_err(|_| AuthError::Invalid("the Authorization header is not valid text".into()))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| AuthError::Invalid("expected Authorization: Bearer <token>".into()))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthError::Invalid(
            "expected Authorization: Bearer <token>".into(),
        ));
    }
    let token = token.trim();
    if token.is_empty() {
        return Err(AuthError::Invalid("the bearer token is empty".into()));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dev_tokens() {
        let v = DevVerifier;
        assert_eq!(
            v.verify("dev:alice_1-x").await.unwrap().user.as_str(),
            "alice_1-x"
        );
        for bad in [
            "alice",
            "dev:",
            "dev:a b",
            "dev:é",
            &format!("dev:{}", "a".repeat(65)),
        ] {
            assert!(v.verify(bad).await.is_err(), "{bad}");
        }
    }

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(b"Bearer abc").unwrap(), "abc");
        assert_eq!(bearer_token(b"bearer  abc ").unwrap(), "abc");
        assert!(bearer_token(b"Basic abc").is_err());
        assert!(bearer_token(b"Bearer ").is_err());
        assert!(bearer_token(b"abc").is_err());
        assert!(bearer_token("Bearer é".as_bytes()).is_ok());
        assert!(bearer_token(&[0x42, 0xff, 0x20, 0x41]).is_err());
    }
}
