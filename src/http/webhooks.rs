//! `POST /webhooks/clerk`: Clerk's Svix-signed webhooks. `user.deleted` erases the user.

use actix_web::post;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::AppState;
use super::error::{ApiError, ApiErrors, ApiResult};
use super::extract::read_body;
use crate::domain::{DomainError, UserId};

/// Signed timestamps further than this from now are refused (replay protection).
const TOLERANCE_SECS: u64 = 300;
/// A delivery's id is remembered while its signature could still be accepted (the timestamp
/// may be up to the tolerance ahead of or behind the clock), so that a replay does nothing.
const REPLAY_MEMORY: Duration = Duration::from_secs(2 * TOLERANCE_SECS + 60);
/// Svix message ids are short tokens (`msg_…`).
const MAX_ID_LEN: usize = 255;

pub fn routes(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    cfg.service(clerk);
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
        if !is_fresh(timestamp, now) {
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

/// A signed timestamp within the tolerance of `now` (a checked difference: any i64 may come).
fn is_fresh(timestamp: &str, now: i64) -> bool {
    timestamp
        .parse::<i64>()
        .is_ok_and(|ts| now.abs_diff(ts) <= TOLERANCE_SECS)
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

/// Checks what can be checked before the body is read (the route is configured, the signature
/// headers are there, the timestamp is fresh), then reads the body within the usual limits,
/// verifies it and handles each delivery once.
/// Clerk's Svix-signed webhook: `user.deleted` erases the user like `DELETE /v1/me`. Answers 404 when `CLERK_WEBHOOK_SECRET` is not set, 401 on a bad or missing signature
#[utoipa::path(
    tag = "operations",
    params(("svix-id" = String, Header, description = "The delivery's id"), ("svix-timestamp" = String, Header, description = "When it was signed (Unix seconds)"), ("svix-signature" = String, Header, description = "`v1,<base64 HMAC-SHA256>`, space-separated")),
    request_body = serde_json::Value,
    responses((status = 204, description = "Handled (or a replay, ignored)"), ApiErrors)
)]
#[post("/webhooks/clerk")]
async fn clerk(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
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
    let (id, timestamp, signatures) = (
        header("svix-id"),
        header("svix-timestamp"),
        header("svix-signature"),
    );
    let now = chrono::Utc::now().timestamp();
    let id_ok = (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic());
    if !id_ok || signatures.is_empty() || !is_fresh(&timestamp, now) {
        return Err(ApiError::Unauthenticated(
            "missing, malformed or stale webhook signature headers".into(),
        ));
    }
    let body = read_body(&req, payload.into_inner()).await?;
    if !secret.verify(&id, &timestamp, &signatures, &body, now) {
        return Err(ApiError::Unauthenticated("bad webhook signature".into()));
    }
    let event: Event = super::extract::parse_json(&body)?;
    let domain = &state.domain;
    let handled = domain
        .once("clerk", &id, REPLAY_MEMORY, async {
            if event.kind == "user.deleted" {
                let user_id = event
                    .data
                    .get("id")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default();
                let user =
                    UserId::parse(user_id).map_err(|p| DomainError::invalid("data.id", p))?;
                let erased = domain.erase_user(&user).await?;
                tracing::info!(user = %user, erased, "Clerk webhook: user deleted");
            } else {
                tracing::debug!(kind = %event.kind, "Clerk webhook ignored");
            }
            Ok(())
        })
        .await?;
    if !handled {
        tracing::info!(delivery = %id, "Clerk webhook delivery seen before; ignored");
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
        // now − 2^63: a plain subtraction overflows and wraps into the window.
        let far = (i64::MIN + 1_700_000_000).to_string();
        let signed = sign(&secret.0, "msg_1", &far, body);
        assert!(!secret.verify("msg_1", &far, &signed, body, 1_700_000_000));
        assert!(!secret.verify("msg_1", &i64::MIN.to_string(), &good, body, i64::MAX));
        assert!(!secret.verify("msg_1", "1700000000", "", body, 1_700_000_000));
        assert!(WebhookSecret::parse("whsec_!!").is_err());
    }
}
