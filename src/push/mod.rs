//! Web Push to browsers' push services: the VAPID key (RFC 8292), the encrypted push (RFC 8291
//! aes128gcm, by `web-push-native`), and the network policy that keeps user-supplied endpoints
//! from reaching anything but public push services (SSRF).

mod guard;
mod vapid;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use web_push_native::{Auth, WebPushBuilder, p256};

use crate::config::PushConfig;
use crate::domain::push::{PushGateway, PushMessage, PushOutcome, StoredSubscription};
pub use guard::{EndpointPolicy, is_public};
pub use vapid::VapidKey;

/// Sends pushes with the server's VAPID key, through a client that connects only where the
/// [`EndpointPolicy`] allows, never follows a redirect and gives up after `push.timeout_ms`.
pub struct WebPush {
    key: VapidKey,
    subject: String,
    policy: EndpointPolicy,
    client: reqwest::Client,
}

impl WebPush {
    /// `dev`: the auth dev mode, where `http` endpoints on loopback are accepted as well.
    pub fn new(
        config: &PushConfig,
        data_dir: &Path,
        secret: Option<&str>,
        dev: bool,
    ) -> anyhow::Result<Self> {
        let key = VapidKey::load(secret, data_dir)?;
        let policy = EndpointPolicy { loopback_http: dev };
        let timeout = Duration::from_millis(config.timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            // A proxy would resolve the name itself, out of the guard's sight.
            .no_proxy()
            .dns_resolver(Arc::new(policy.resolver()))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("pixie/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            key,
            subject: config.subject.clone(),
            policy,
            client,
        })
    }

    fn request(
        &self,
        subscription: &StoredSubscription,
        message: &PushMessage,
    ) -> Result<reqwest::Request, String> {
        let endpoint: http::Uri = subscription
            .endpoint
            .parse()
            .map_err(|e| format!("endpoint: {e}"))?;
        let ua_public = p256::PublicKey::from_sec1_bytes(&subscription.p256dh)
            .map_err(|_| "p256dh is not a P-256 point".to_owned())?;
        let auth = Auth::from_exact_iter(subscription.auth.iter().copied())
            .ok_or_else(|| "auth is not 16 bytes".to_owned())?;
        let mut request = WebPushBuilder::new(endpoint.clone(), ua_public, auth)
            // The builder writes this as the TTL header.
            .with_valid_duration(message.ttl)
            .build(message.payload.clone())
            .map_err(|e| format!("encrypting: {e}"))?;
        let authorization = self
            .key
            .authorization(&endpoint, &self.subject)
            .map_err(|e| format!("signing: {e}"))?;
        let headers = request.headers_mut();
        let value = |text: &str| {
            http::HeaderValue::from_str(text).map_err(|_| format!("header value {text:?}"))
        };
        headers.insert(http::header::AUTHORIZATION, value(&authorization)?);
        headers.insert("urgency", value(message.urgency)?);
        headers.insert("topic", value(&message.topic)?);
        reqwest::Request::try_from(request).map_err(|e| format!("request: {e}"))
    }
}

/// What a push service's status means (RFC 8030 §5, and what the big push services document).
fn outcome(response: &reqwest::Response) -> PushOutcome {
    let status = response.status().as_u16();
    match status {
        200..=299 => PushOutcome::Delivered { status },
        404 | 410 => PushOutcome::Gone { status },
        429 | 500..=599 => PushOutcome::Retry {
            status: Some(status),
            after: response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs),
        },
        _ => PushOutcome::Rejected {
            status: Some(status),
            reason: format!("the push service answered {status}"),
        },
    }
}

#[async_trait]
impl PushGateway for WebPush {
    fn public_key(&self) -> String {
        self.key.public_key().to_owned()
    }

    async fn check(&self, subscription: &StoredSubscription) -> Result<(), (&'static str, String)> {
        if p256::PublicKey::from_sec1_bytes(&subscription.p256dh).is_err() {
            return Err(("keys.p256dh", "is not a P-256 public key".to_owned()));
        }
        self.policy
            .check(&subscription.endpoint)
            .await
            .map_err(|problem| ("endpoint", problem))
    }

    async fn send(&self, subscription: &StoredSubscription, message: &PushMessage) -> PushOutcome {
        // Checked again now; a name may resolve elsewhere than when it was stored, which the
        // client's resolver checks on the addresses it connects to.
        if let Err(reason) = self.policy.check_before_send(&subscription.endpoint).await {
            return PushOutcome::Rejected {
                status: None,
                reason,
            };
        }
        let request = match self.request(subscription, message) {
            Ok(request) => request,
            Err(reason) => {
                return PushOutcome::Rejected {
                    status: None,
                    reason,
                };
            }
        };
        match self.client.execute(request).await {
            Ok(response) => outcome(&response),
            Err(e) if guard::refused(&e) => PushOutcome::Rejected {
                status: None,
                reason: "the endpoint resolves to an address pushes may not go to".to_owned(),
            },
            Err(e) => {
                // Without the URL: a push endpoint is a capability of the user's browser.
                tracing::debug!(error = %e.without_url(), "push request failed");
                PushOutcome::Retry {
                    status: None,
                    after: None,
                }
            }
        }
    }
}

/// Base64url without padding, as Web Push keys are written.
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
