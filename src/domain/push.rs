//! Web Push (RFC 8030): the push subscriptions of a user's browsers, and the worker that pushes
//! each fired reminder to every one of them.
//!
//! Firing a reminder writes one delivery record per subscription of its user, in the firing
//! transaction (see `ReminderRepository::fire_due`), so a crash between firing and pushing
//! loses nothing. The worker claims due records with a lease (`SKIP LOCKED`, so instances
//! share them), sends, and records what the push service answered: sent; gone (404/410: the
//! subscription is removed); retried with backoff (429, 5xx, no answer); or failed. A worker
//! that dies mid-send leaves its records to be claimed again when the lease ends; the push
//! carries the reminder's id as its `Topic`, so a push service still holding the first copy
//! replaces it, and the page shows one notification per reminder (tagged with its id).
//!
//! It runs apart from the socket delivery, which `fire_due_reminders` publishes first: a slow or
//! failing push service never holds up `reminder:due`, nor the other way round.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::error::{DomainError, DomainResult, FieldErrors};
use super::reminder::Reminder;
use super::service::Domain;
use super::values::UserId;

/// Subscriptions one user may hold (each browser profile that enabled push holds one).
pub const MAX_SUBSCRIPTIONS_PER_USER: i64 = 20;
pub const ENDPOINT_MAX: usize = 2048;

/// A push subscription as the user sees it (its keys stay on the server).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PushSubscription {
    pub id: Uuid,
    pub endpoint: String,
    pub created_at: DateTime<Utc>,
}

/// What `PushManager.subscribe` gives a page (`subscription.toJSON()`, less `expirationTime`).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(as = PushSubscriptionCreate)]
pub struct NewPushSubscription {
    /// The push service's URL for this browser.
    pub endpoint: String,
    pub keys: PushKeys,
    /// Sent by `toJSON()`; not used.
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub expiration_time: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushKeys {
    /// The browser's P-256 public key, uncompressed (65 bytes), base64url.
    pub p256dh: String,
    /// The browser's auth secret (16 bytes), base64url.
    pub auth: String,
}

/// A subscription with what it takes to push to it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub id: Uuid,
    pub endpoint: String,
    /// Decoded: 65 bytes.
    pub p256dh: Vec<u8>,
    /// Decoded: 16 bytes.
    pub auth: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

impl StoredSubscription {
    pub fn public(&self) -> PushSubscription {
        PushSubscription {
            id: self.id,
            endpoint: self.endpoint.clone(),
            created_at: self.created_at,
        }
    }
}

fn decode_key(errors: &mut FieldErrors, field: &str, text: &str, len: usize) -> Vec<u8> {
    // Browsers send unpadded base64url; some libraries pad it.
    let decoded =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim_end_matches('='));
    match decoded {
        Ok(bytes) if bytes.len() == len => bytes,
        Ok(bytes) => {
            errors.add(
                field,
                format!("must be {len} bytes (base64url), not {}", bytes.len()),
            );
            Vec::new()
        }
        Err(_) => {
            errors.add(field, "must be base64url");
            Vec::new()
        }
    }
}

impl NewPushSubscription {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<StoredSubscription> {
        let mut errors = FieldErrors::new();
        let endpoint = self.endpoint.trim().to_owned();
        if endpoint.is_empty() {
            errors.add("endpoint", "is required");
        } else if endpoint.len() > ENDPOINT_MAX {
            errors.add("endpoint", format!("must be at most {ENDPOINT_MAX} bytes"));
        }
        let p256dh = decode_key(&mut errors, "keys.p256dh", &self.keys.p256dh, 65);
        if p256dh.first().is_some_and(|b| *b != 0x04) {
            errors.add("keys.p256dh", "must be an uncompressed P-256 point");
        }
        let auth = decode_key(&mut errors, "keys.auth", &self.keys.auth, 16);
        errors.into_result()?;
        Ok(StoredSubscription {
            id,
            endpoint,
            p256dh,
            auth,
            created_at: now,
        })
    }
}

/// One push still to send: a fired reminder, to one subscription.
#[derive(Debug, Clone)]
pub struct PushDelivery {
    pub user: UserId,
    pub reminder: Reminder,
    pub subscription: StoredSubscription,
    /// Attempts so far, this one included.
    pub attempts: u32,
    pub expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct ClaimedPushes {
    pub deliveries: Vec<PushDelivery>,
    /// When the earliest record still pending may next be tried, if any.
    pub next_at: Option<DateTime<Utc>>,
}

/// How a delivery record ends, or when it is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryResult {
    Sent {
        status: u16,
    },
    /// The push service no longer knows the subscription: it is removed.
    Gone,
    Retry {
        at: DateTime<Utc>,
        status: Option<u16>,
    },
    Failed {
        status: Option<u16>,
    },
    /// Not sent before the reminder went stale.
    Expired {
        status: Option<u16>,
    },
}

impl DeliveryResult {
    /// For logs and the `pixie_push_deliveries_total{outcome}` label (a fixed set).
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Sent { .. } => "sent",
            Self::Gone => "gone",
            Self::Retry { .. } => "retry",
            Self::Failed { .. } => "failed",
            Self::Expired { .. } => "expired",
        }
    }
}

#[async_trait]
pub trait PushRepository: Send + Sync {
    /// Stores a subscription, or replaces the keys of the user's subscription with the same
    /// endpoint (returned with its first id). A user holding
    /// [`MAX_SUBSCRIPTIONS_PER_USER`] is refused (`Validation`).
    async fn subscribe(
        &self,
        user: &UserId,
        subscription: &StoredSubscription,
    ) -> DomainResult<StoredSubscription>;
    async fn subscriptions(&self, user: &UserId) -> DomainResult<Vec<StoredSubscription>>;
    async fn unsubscribe(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
    /// Claims up to `limit` pending deliveries due at `now`, of any user, moving each a `lease`
    /// ahead (and counting the attempt), so another worker takes it only if this one dies.
    async fn claim_pushes(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> DomainResult<ClaimedPushes>;
    async fn finish_push(
        &self,
        reminder: Uuid,
        subscription: Uuid,
        result: DeliveryResult,
        now: DateTime<Utc>,
    ) -> DomainResult<()>;
}

/// A push message: the encrypted payload's plaintext and the RFC 8030 headers.
#[derive(Debug, Clone)]
pub struct PushMessage {
    pub payload: Vec<u8>,
    /// How long the push service may hold it for an offline browser.
    pub ttl: Duration,
    /// RFC 8030 `Urgency`; a due reminder is `high`.
    pub urgency: &'static str,
    /// RFC 8030 `Topic` (≤ 32 base64url characters): a newer push with the same topic replaces
    /// one the push service still holds.
    pub topic: String,
}

/// What a push service answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    Delivered {
        status: u16,
    },
    /// 404 or 410: the subscription expired or was withdrawn.
    Gone {
        status: u16,
    },
    /// 429, 5xx, a timeout or a connection error: worth trying again (after `after`, when the
    /// service said so with `Retry-After`).
    Retry {
        status: Option<u16>,
        after: Option<Duration>,
    },
    /// Any other answer (400, 403, 413…), or an endpoint the network policy refuses now.
    Rejected {
        status: Option<u16>,
        reason: String,
    },
}

/// The sending side: VAPID keys, the network policy for endpoints, and the push itself.
#[async_trait]
pub trait PushGateway: Send + Sync {
    /// The application server's VAPID public key (uncompressed P-256, base64url), which a
    /// page passes to `PushManager.subscribe` as `applicationServerKey`.
    fn public_key(&self) -> String;
    /// Refuses an endpoint the server must not send to (why, for the user), and keys that are
    /// not a P-256 point.
    async fn check(&self, subscription: &StoredSubscription) -> Result<(), (&'static str, String)>;
    async fn send(&self, subscription: &StoredSubscription, message: &PushMessage) -> PushOutcome;
}

#[derive(Debug, Clone)]
pub struct PushSettings {
    /// Pushes claimed per pass.
    pub batch_size: i64,
    /// Pushes in flight at once.
    pub concurrency: usize,
    /// Attempts before a delivery fails.
    pub max_attempts: u32,
    /// How long a claim holds a record (longer than a send can take).
    pub lease: Duration,
    /// How long a fired reminder is worth pushing (the push's TTL starts from this).
    pub ttl: Duration,
    /// The longest the worker sleeps without looking (records other instances wrote).
    pub poll: Duration,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            batch_size: 100,
            concurrency: 16,
            max_attempts: 6,
            lease: Duration::from_secs(60),
            ttl: Duration::from_secs(3600),
            poll: Duration::from_secs(10),
        }
    }
}

/// Backoff after the `attempts`-th failed try: 2 s, 4 s, 8 s … at most 5 min; a service's
/// `Retry-After` is honoured up to an hour.
pub fn retry_delay(attempts: u32, retry_after: Option<Duration>) -> Duration {
    let backoff = Duration::from_secs(1u64 << attempts.clamp(1, 8)).min(Duration::from_secs(300));
    retry_after
        .map(|after| after.min(Duration::from_secs(3600)))
        .map_or(backoff, |after| after.max(backoff))
}

/// What a delivery record becomes after the push service's answer.
pub fn settle(
    delivery: &PushDelivery,
    outcome: &PushOutcome,
    settings: &PushSettings,
    now: DateTime<Utc>,
) -> DeliveryResult {
    match outcome {
        PushOutcome::Delivered { status } => DeliveryResult::Sent { status: *status },
        PushOutcome::Gone { .. } => DeliveryResult::Gone,
        PushOutcome::Rejected { status, .. } => DeliveryResult::Failed { status: *status },
        PushOutcome::Retry { status, after } => {
            if delivery.attempts >= settings.max_attempts {
                return DeliveryResult::Failed { status: *status };
            }
            let delay = retry_delay(delivery.attempts, *after);
            let at = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
            if at >= delivery.expires_at {
                DeliveryResult::Expired { status: *status }
            } else {
                DeliveryResult::Retry {
                    at,
                    status: *status,
                }
            }
        }
    }
}

/// The push's JSON payload (`{type: "reminder", reminder}`, as the contract gives it).
fn message(delivery: &PushDelivery, now: DateTime<Utc>) -> DomainResult<PushMessage> {
    let payload = serde_json::to_vec(&serde_json::json!({
        "type": "reminder",
        "reminder": delivery.reminder,
    }))
    .map_err(|e| DomainError::Internal(e.into()))?;
    let ttl = (delivery.expires_at - now).to_std().unwrap_or_default();
    Ok(PushMessage {
        payload,
        ttl,
        urgency: "high",
        topic: delivery.reminder.id.simple().to_string(),
    })
}

impl Domain {
    pub fn vapid_public_key(&self) -> String {
        self.ports.pusher.public_key()
    }

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn subscribe_push(
        &self,
        user: &UserId,
        new: NewPushSubscription,
    ) -> DomainResult<PushSubscription> {
        let subscription = new.validate(Uuid::now_v7(), self.ports.clock.now())?;
        if let Err((field, problem)) = self.ports.pusher.check(&subscription).await {
            return Err(DomainError::invalid(field, problem));
        }
        let stored = self.ports.push.subscribe(user, &subscription).await?;
        tracing::info!(subscription = %stored.id, "push subscription stored");
        Ok(stored.public())
    }

    pub async fn push_subscriptions(&self, user: &UserId) -> DomainResult<Vec<PushSubscription>> {
        let all = self.ports.push.subscriptions(user).await?;
        Ok(all.iter().map(StoredSubscription::public).collect())
    }

    pub async fn unsubscribe_push(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        if !self.ports.push.unsubscribe(user, id).await? {
            return Err(DomainError::NotFound);
        }
        tracing::info!(user = %user, subscription = %id, "push subscription removed");
        Ok(())
    }

    /// Sends the pushes due now, at most `settings.batch_size`; returns when the next pending
    /// one may be tried, and how many were claimed.
    pub async fn push_due(
        &self,
        settings: &PushSettings,
    ) -> DomainResult<(usize, Option<DateTime<Utc>>)> {
        let now = self.ports.clock.now();
        let lease = chrono::Duration::from_std(settings.lease).unwrap_or(chrono::Duration::MAX);
        let claimed = self
            .ports
            .push
            .claim_pushes(now, lease, settings.batch_size)
            .await?;
        let count = claimed.deliveries.len();
        let results = futures_util::stream::iter(claimed.deliveries)
            .map(|delivery| self.push_one(delivery, settings))
            .buffer_unordered(settings.concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
        let mut next_at = claimed.next_at;
        for result in results {
            if let Some(DeliveryResult::Retry { at, .. }) = result? {
                next_at = Some(next_at.map_or(at, |next| next.min(at)));
            }
        }
        Ok((count, next_at))
    }

    async fn push_one(
        &self,
        delivery: PushDelivery,
        settings: &PushSettings,
    ) -> DomainResult<Option<DeliveryResult>> {
        let now = self.ports.clock.now();
        let result = if delivery.expires_at <= now {
            DeliveryResult::Expired { status: None }
        } else {
            let message = message(&delivery, now)?;
            let outcome = self
                .ports
                .pusher
                .send(&delivery.subscription, &message)
                .await;
            if let PushOutcome::Rejected { status, reason } = &outcome {
                tracing::warn!(
                    user = %delivery.user,
                    subscription = %delivery.subscription.id,
                    status = status.unwrap_or_default(),
                    reason,
                    "push refused"
                );
            }
            settle(&delivery, &outcome, settings, self.ports.clock.now())
        };
        tracing::info!(
            user = %delivery.user,
            reminder = %delivery.reminder.id,
            subscription = %delivery.subscription.id,
            attempt = delivery.attempts,
            outcome = result.outcome(),
            "push"
        );
        self.ports.meter.push_delivered(result.outcome());
        self.ports
            .push
            .finish_push(
                delivery.reminder.id,
                delivery.subscription.id,
                result,
                self.ports.clock.now(),
            )
            .await?;
        Ok(Some(result))
    }
}

/// Sends what firing reminders queued for Web Push, until stopped.
pub struct PushWorker {
    pub domain: Domain,
    pub settings: PushSettings,
}

impl PushWorker {
    pub async fn run(self, stop: CancellationToken) {
        tracing::debug!("push worker started");
        let wake: Arc<tokio::sync::Notify> = self.domain.push_signal();
        let mut failing = Duration::ZERO;
        loop {
            let outcome = tokio::select! {
                () = stop.cancelled() => break,
                outcome = self.domain.push_due(&self.settings) => outcome,
            };
            let wait = match outcome {
                Ok((claimed, next_at)) => {
                    if !failing.is_zero() {
                        tracing::info!("push worker recovered");
                        failing = Duration::ZERO;
                    }
                    if claimed as i64 >= self.settings.batch_size {
                        continue;
                    }
                    let now = self.domain.ports.clock.now();
                    next_at
                        .and_then(|at| (at - now).to_std().ok())
                        .unwrap_or(self.settings.poll)
                        .min(self.settings.poll)
                }
                Err(e) => {
                    if failing.is_zero() {
                        tracing::warn!(error = %e, "pushing failed; retrying");
                    }
                    failing = (failing * 2).clamp(Duration::from_millis(500), self.settings.poll);
                    failing
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        tracing::debug!("push worker stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p256dh: &str, auth: &str) -> NewPushSubscription {
        NewPushSubscription {
            endpoint: "https://push.example.com/abc".into(),
            keys: PushKeys {
                p256dh: p256dh.into(),
                auth: auth.into(),
            },
            expiration_time: None,
        }
    }

    #[test]
    fn keys_are_checked_for_encoding_and_length() {
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut point = vec![4u8; 65];
        point[1] = 7;
        let ok = keys(&b64(&point), &b64(&[1; 16])).validate(Uuid::nil(), Utc::now());
        assert!(ok.is_ok(), "{ok:?}");
        let padded = keys(
            &format!("{}=", b64(&point)),
            &format!("{}==", b64(&[1; 16])),
        );
        assert!(padded.validate(Uuid::nil(), Utc::now()).is_ok());
        let Err(DomainError::Validation(errors)) =
            keys(&b64(&[4; 33]), "not base64!").validate(Uuid::nil(), Utc::now())
        else {
            panic!("bad keys accepted");
        };
        let text = format!("{errors:?}");
        assert!(
            text.contains("keys.p256dh") && text.contains("keys.auth"),
            "{text}"
        );
        let compressed = keys(&b64(&[2; 65]), &b64(&[1; 16])).validate(Uuid::nil(), Utc::now());
        assert!(compressed.is_err());
    }

    #[test]
    fn a_retry_ends_as_failed_after_the_last_attempt_or_expired_past_the_ttl() {
        let now = Utc::now();
        let settings = PushSettings::default();
        let delivery = |attempts: u32, ttl_secs: i64| PushDelivery {
            user: UserId::parse("u").unwrap(),
            reminder: crate::domain::reminder::NewReminder {
                text: "x".into(),
                due_at: now,
                task_id: None,
                event_id: None,
                conversation_id: None,
            }
            .validate(Uuid::nil(), now)
            .unwrap(),
            subscription: StoredSubscription {
                id: Uuid::nil(),
                endpoint: "https://push.example.com/x".into(),
                p256dh: vec![4; 65],
                auth: vec![1; 16],
                created_at: now,
            },
            attempts,
            expires_at: now + chrono::Duration::seconds(ttl_secs),
        };
        let busy = PushOutcome::Retry {
            status: Some(503),
            after: None,
        };
        assert!(matches!(
            settle(&delivery(1, 3600), &busy, &settings, now),
            DeliveryResult::Retry { at, status: Some(503) } if at == now + chrono::Duration::seconds(2)
        ));
        assert_eq!(
            settle(
                &delivery(settings.max_attempts, 3600),
                &busy,
                &settings,
                now
            ),
            DeliveryResult::Failed { status: Some(503) }
        );
        assert_eq!(
            settle(&delivery(1, 1), &busy, &settings, now),
            DeliveryResult::Expired { status: Some(503) }
        );
        let gone = PushOutcome::Gone { status: 410 };
        assert_eq!(
            settle(&delivery(1, 3600), &gone, &settings, now),
            DeliveryResult::Gone
        );
    }

    #[test]
    fn retries_back_off_and_honour_retry_after_within_bounds() {
        assert_eq!(retry_delay(1, None), Duration::from_secs(2));
        assert_eq!(retry_delay(3, None), Duration::from_secs(8));
        assert_eq!(retry_delay(30, None), Duration::from_secs(256));
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            retry_delay(1, Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }
}
