//! `POST /webhooks/clerk`: Clerk's Svix-signed webhooks. `user.deleted` erases the user.

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, ApiResult};
use crate::domain::{DomainError, UserId};

/// Signed timestamps further than this from now are refused (replay protection).
const TOLERANCE_SECS: i64 = 300;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/webhooks/clerk", web::post().to(clerk));
}

/// The Svix signing secret (`whsec_<base64>`), from `CLERK_WEBHOOK_SECRET`.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let encoded = text.trim().strip_prefix("whsec_").unwrap_or(text.trim());
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| anyhow::anyhow!("CLERK_WEBHOOK_SECRET is not a whsec_<base64> secret"))?;
        if key.is_empty() {
            anyhow::bail!("CLERK_WEBHOOK_SECRET is empty");
        }
        Ok(Self(key))
    }

    /// Checks a Svix signature: HMAC-SHA256 over `{id}.{timestamp}.{body}`, base64, compared in
    /// constant time with each `v1,<signature>` the header lists.
    pub fn verify(
        &self,
        id: &str,
        timestamp: &str,
        signatures: &str,
        body: &[u8],
        now: i64,
    ) -> bool {
        let Ok(ts) = timestamp.parse::<i64>() else {
            return false;
        };
        if (now - ts).abs() > TOLERANCE_SECS {
            return false;
        }
        let mut mac = hmac_sha256::HMAC::new(&self.0);
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let expected = mac.finalize();
        signatures.split_whitespace().any(|entry| {
            entry
                .strip_prefix("v1,")
                .and_then(|sig| STANDARD.decode(sig).ok())
                .is_some_and(|sig| bool::from(sig.as_slice().ct_eq(&expected)))
        })
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    data: serde_json::Value,
}

async fn clerk(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let Some(secret) = &state.webhook_secret else {
        return Err(DomainError::NotFound.into());
    };
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let now = chrono::Utc::now().timestamp();
    if !secret.verify(
        &header("svix-id"),
        &header("svix-timestamp"),
        &header("svix-signature"),
        &body,
        now,
    ) {
        return Err(ApiError::Unauthenticated("bad webhook signature".into()));
    }
    let event: Event = super::extract::parse_json(&body)?;
    if event.kind == "user.deleted" {
        let id = event
            .data
            .get("id")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let user = UserId::parse(id).map_err(|p| DomainError::invalid("data.id", p))?;
        let erased = state.domain.erase_user(&user).await?;
        tracing::info!(user = %user, erased, "Clerk webhook: user deleted");
    } else {
        tracing::debug!(kind = %event.kind, "Clerk webhook ignored");
    }
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(key: &[u8], id: &str, ts: &str, body: &[u8]) -> String {
        let mut mac = hmac_sha256::HMAC::new(key);
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize()))
    }

    #[test]
    fn svix_signatures() {
        let secret = WebhookSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"type":"user.deleted"}"#;
        let good = sign(&secret.0, "msg_1", "1700000000", body);
        assert!(secret.verify("msg_1", "1700000000", &good, body, 1_700_000_100));
        // Several signatures, one valid.
        assert!(secret.verify(
            "msg_1",
            "1700000000",
            &format!("v1,AAAA {good}"),
            body,
            1_700_000_000
        ));
        assert!(!secret.verify("msg_2", "1700000000", &good, body, 1_700_000_000));
        assert!(!secret.verify("msg_1", "1700000000", &good, b"{}", 1_700_000_000));
        assert!(!secret.verify("msg_1", "1700000000", &good, body, 1_700_000_301));
        assert!(!secret.verify("msg_1", "soon", &good, body, 1_700_000_000));
        assert!(!secret.verify("msg_1", "1700000000", "", body, 1_700_000_000));
        assert!(WebhookSecret::parse("whsec_!!").is_err());
    }
}
