//! Web Push over PostgreSQL: the user's subscriptions, and the delivery records the push worker
//! claims (with a lease, `SKIP LOCKED`) and settles.

use async_trait::async_trait;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use diesel::data_types::PgInterval;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use uuid::Uuid;

use super::models::ReminderRow;
use super::schema::{push_deliveries, push_subscriptions, reminders, users};
use super::{DbError, PgStore};
use crate::domain::push::{
    ClaimedPushes, DeliveryResult, MAX_SUBSCRIPTIONS_PER_USER, PushDelivery, PushRepository,
    StoredSubscription,
};
use crate::domain::reminder::Reminder;
use crate::domain::{DomainError, DomainResult, UserId};

type DbResult<T> = Result<T, DbError>;

const PENDING: &str = "pending";

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = push_subscriptions, check_for_backend(diesel::pg::Pg))]
struct SubscriptionRow {
    id: Uuid,
    user_id: String,
    endpoint: String,
    p256dh: String,
    auth: String,
    created_at: DateTime<Utc>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl SubscriptionRow {
    fn new(user: &UserId, s: &StoredSubscription) -> Self {
        Self {
            id: s.id,
            user_id: user.as_str().to_owned(),
            endpoint: s.endpoint.clone(),
            p256dh: b64(&s.p256dh),
            auth: b64(&s.auth),
            created_at: s.created_at,
        }
    }

    fn into_domain(self) -> DbResult<StoredSubscription> {
        let decode = |field: &str, text: &str| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| {
                    DbError::from(DomainError::Internal(anyhow::anyhow!(
                        "stored push subscription {field} is not base64url"
                    )))
                })
        };
        Ok(StoredSubscription {
            p256dh: decode("p256dh", &self.p256dh)?,
            auth: decode("auth", &self.auth)?,
            id: self.id,
            endpoint: self.endpoint,
            created_at: self.created_at,
        })
    }
}

/// Writes one pending delivery per subscription of the users of `fired` (reminders fired on
/// time, in the firing transaction); returns how many.
pub(super) fn queue_pushes(
    conn: &mut PgConnection,
    fired: &[Uuid],
    now: DateTime<Utc>,
    ttl: chrono::Duration,
) -> DbResult<usize> {
    if fired.is_empty() {
        return Ok(0);
    }
    let expires = now + ttl;
    let queued = diesel::sql_query(
        "INSERT INTO push_deliveries (reminder_id, subscription_id, next_attempt_at, expires_at) \
         SELECT r.id, s.id, $2, $3 FROM reminders r \
         JOIN push_subscriptions s ON s.user_id = r.user_id \
         WHERE r.id = ANY($1) \
         ON CONFLICT DO NOTHING",
    )
    .bind::<diesel::sql_types::Array<diesel::sql_types::Uuid>, _>(fired)
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Timestamptz, _>(expires)
    .execute(conn)?;
    Ok(queued)
}

#[derive(QueryableByName)]
struct ClaimedRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    reminder_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    subscription_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    attempts: i32,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    expires_at: DateTime<Utc>,
}

fn claim(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease: chrono::Duration,
    limit: i64,
) -> DbResult<ClaimedPushes> {
    let lease = PgInterval::from_microseconds(lease.num_microseconds().unwrap_or(i64::MAX));
    let rows: Vec<ClaimedRow> = diesel::sql_query(
        "UPDATE push_deliveries d \
         SET attempts = d.attempts + 1, next_attempt_at = $1 + $2 \
         FROM (SELECT reminder_id, subscription_id FROM push_deliveries \
               WHERE state = 'pending' AND next_attempt_at <= $1 \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) c \
         WHERE d.reminder_id = c.reminder_id AND d.subscription_id = c.subscription_id \
         RETURNING d.reminder_id, d.subscription_id, d.attempts, d.expires_at",
    )
    .bind::<diesel::sql_types::Timestamptz, _>(now)
    .bind::<diesel::sql_types::Interval, _>(lease)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)?;
    let reminder_ids: Vec<Uuid> = rows.iter().map(|r| r.reminder_id).collect();
    let subscription_ids: Vec<Uuid> = rows.iter().map(|r| r.subscription_id).collect();
    let found: Vec<(ReminderRow, SubscriptionRow)> = reminders::table
        .inner_join(
            push_subscriptions::table.on(push_subscriptions::user_id.eq(reminders::user_id)),
        )
        .filter(reminders::id.eq_any(&reminder_ids))
        .filter(push_subscriptions::id.eq_any(&subscription_ids))
        .select((ReminderRow::as_select(), SubscriptionRow::as_select()))
        .load(conn)?;
    let mut by_pair = std::collections::HashMap::new();
    for (reminder, subscription) in found {
        by_pair.insert((reminder.id, subscription.id), (reminder, subscription));
    }
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        let Some((reminder, subscription)) =
            by_pair.remove(&(row.reminder_id, row.subscription_id))
        else {
            continue;
        };
        let user = UserId::parse(&reminder.user_id)
            .map_err(|e| DomainError::Internal(anyhow::anyhow!("stored user id: {e}")))?;
        deliveries.push(PushDelivery {
            user,
            reminder: Reminder::try_from(reminder)?,
            subscription: subscription.into_domain()?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            expires_at: row.expires_at,
        });
    }
    let next_at: Option<DateTime<Utc>> = push_deliveries::table
        .filter(push_deliveries::state.eq(PENDING))
        .select(diesel::dsl::min(push_deliveries::next_attempt_at))
        .first(conn)?;
    Ok(ClaimedPushes {
        deliveries,
        next_at,
    })
}

#[async_trait]
impl PushRepository for PgStore {
    async fn subscribe(
        &self,
        user: &UserId,
        subscription: &StoredSubscription,
    ) -> DomainResult<StoredSubscription> {
        let row = SubscriptionRow::new(user, subscription);
        self.run(move |conn| {
            conn.transaction(|conn| {
                // Serialises the user's subscribes, so the bound holds under concurrency.
                users::table
                    .find(&row.user_id)
                    .select(users::id)
                    .for_update()
                    .first::<String>(conn)
                    .optional()?;
                let existing: Option<Uuid> = push_subscriptions::table
                    .filter(push_subscriptions::user_id.eq(&row.user_id))
                    .filter(push_subscriptions::endpoint.eq(&row.endpoint))
                    .select(push_subscriptions::id)
                    .first(conn)
                    .optional()?;
                if let Some(id) = existing {
                    let kept: SubscriptionRow = diesel::update(push_subscriptions::table.find(id))
                        .set((
                            push_subscriptions::p256dh.eq(&row.p256dh),
                            push_subscriptions::auth.eq(&row.auth),
                        ))
                        .returning(SubscriptionRow::as_returning())
                        .get_result(conn)?;
                    return kept.into_domain();
                }
                let held: i64 = push_subscriptions::table
                    .filter(push_subscriptions::user_id.eq(&row.user_id))
                    .count()
                    .get_result(conn)?;
                if held >= MAX_SUBSCRIPTIONS_PER_USER {
                    return Err(DomainError::invalid(
                        "endpoint",
                        format!(
                            "at most {MAX_SUBSCRIPTIONS_PER_USER} push subscriptions per user; \
                             remove one first"
                        ),
                    )
                    .into());
                }
                let stored: SubscriptionRow = diesel::insert_into(push_subscriptions::table)
                    .values(&row)
                    .returning(SubscriptionRow::as_returning())
                    .get_result(conn)?;
                stored.into_domain()
            })
        })
        .await
    }

    async fn subscriptions(&self, user: &UserId) -> DomainResult<Vec<StoredSubscription>> {
        let user = user.as_str().to_owned();
        self.run(move |conn| {
            let rows: Vec<SubscriptionRow> = push_subscriptions::table
                .filter(push_subscriptions::user_id.eq(&user))
                .order((
                    push_subscriptions::created_at.asc(),
                    push_subscriptions::id.asc(),
                ))
                .select(SubscriptionRow::as_select())
                .load(conn)?;
            rows.into_iter().map(SubscriptionRow::into_domain).collect()
        })
        .await
    }

    async fn unsubscribe(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = user.as_str().to_owned();
        self.run(move |conn| {
            let gone = diesel::delete(
                push_subscriptions::table
                    .filter(push_subscriptions::id.eq(id))
                    .filter(push_subscriptions::user_id.eq(&user)),
            )
            .execute(conn)?;
            Ok(gone > 0)
        })
        .await
    }

    async fn claim_pushes(
        &self,
        now: DateTime<Utc>,
        lease: chrono::Duration,
        limit: i64,
    ) -> DomainResult<ClaimedPushes> {
        self.run(move |conn| conn.transaction(|conn| claim(conn, now, lease, limit)))
            .await
    }

    async fn finish_push(
        &self,
        reminder: Uuid,
        subscription: Uuid,
        result: DeliveryResult,
        now: DateTime<Utc>,
    ) -> DomainResult<()> {
        self.run(move |conn| {
            let record = push_deliveries::table.find((reminder, subscription));
            let status = |s: Option<u16>| s.map(i32::from);
            match result {
                DeliveryResult::Gone => {
                    // Its deliveries go with it (ON DELETE CASCADE).
                    diesel::delete(push_subscriptions::table.find(subscription)).execute(conn)?;
                }
                DeliveryResult::Retry { at, status: s } => {
                    diesel::update(record)
                        .set((
                            push_deliveries::next_attempt_at.eq(at),
                            push_deliveries::last_status.eq(status(s)),
                        ))
                        .execute(conn)?;
                }
                DeliveryResult::Sent { status: s } => {
                    settle(conn, reminder, subscription, "sent", status(Some(s)), now)?;
                }
                DeliveryResult::Failed { status: s } => {
                    settle(conn, reminder, subscription, "failed", status(s), now)?;
                }
                DeliveryResult::Expired { status: s } => {
                    settle(conn, reminder, subscription, "expired", status(s), now)?;
                }
            }
            Ok(())
        })
        .await
    }
}

fn settle(
    conn: &mut PgConnection,
    reminder: Uuid,
    subscription: Uuid,
    state: &str,
    status: Option<i32>,
    now: DateTime<Utc>,
) -> DbResult<()> {
    diesel::update(push_deliveries::table.find((reminder, subscription)))
        .set((
            push_deliveries::state.eq(state),
            push_deliveries::last_status.eq(status),
            push_deliveries::done_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
