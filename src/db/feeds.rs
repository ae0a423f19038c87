//! Calendar feeds over PostgreSQL.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::calendar_feeds;
use crate::domain::ports::{FeedRepository, StoredFeed};
use crate::domain::{DomainError, DomainResult, UserId};

#[async_trait]
impl FeedRepository for PgStore {
    async fn replace_feed(
        &self,
        user: &UserId,
        feed: &StoredFeed,
        at: DateTime<Utc>,
    ) -> DomainResult<()> {
        let (user, feed) = (user.as_str().to_owned(), feed.clone());
        self.run(move |conn| {
            conn.transaction(|conn| {
                diesel::delete(calendar_feeds::table.filter(calendar_feeds::user_id.eq(&user)))
                    .execute(conn)?;
                diesel::insert_into(calendar_feeds::table)
                    .values((
                        calendar_feeds::id.eq(feed.id),
                        calendar_feeds::user_id.eq(&user),
                        calendar_feeds::secret_hash.eq(feed.secret_hash.to_vec()),
                        calendar_feeds::created_at.eq(at),
                    ))
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn revoke_feed(&self, user: &UserId) -> DomainResult<bool> {
        let user = user.as_str().to_owned();
        self.run(move |conn| {
            let gone =
                diesel::delete(calendar_feeds::table.filter(calendar_feeds::user_id.eq(&user)))
                    .execute(conn)?;
            Ok(gone > 0)
        })
        .await
    }

    async fn feed(&self, id: Uuid) -> DomainResult<Option<StoredFeed>> {
        self.run(move |conn| {
            let row: Option<(String, Vec<u8>)> = calendar_feeds::table
                .find(id)
                .select((calendar_feeds::user_id, calendar_feeds::secret_hash))
                .first(conn)
                .optional()?;
            let Some((user, hash)) = row else {
                return Ok(None);
            };
            let user = UserId::parse(&user)
                .map_err(|e| DomainError::Internal(anyhow::anyhow!("stored user id: {e}")))?;
            let secret_hash: [u8; 32] = hash.try_into().map_err(|_| {
                DomainError::Internal(anyhow::anyhow!("stored feed hash is not 32 bytes"))
            })?;
            Ok(Some(StoredFeed {
                id,
                user,
                secret_hash,
            }))
        })
        .await
    }

    async fn feed_content(
        &self,
        id: Uuid,
        hash: [u8; 32],
        at: DateTime<Utc>,
    ) -> DomainResult<DateTime<Utc>> {
        self.run(move |conn| {
            // Written only when the body changed: a poll of an unchanged calendar reads.
            diesel::update(
                calendar_feeds::table
                    .find(id)
                    .filter(calendar_feeds::content_hash.is_distinct_from(hash.to_vec())),
            )
            .set((
                calendar_feeds::content_hash.eq(hash.to_vec()),
                calendar_feeds::content_changed_at.eq(at),
            ))
            .execute(conn)?;
            let changed: Option<Option<DateTime<Utc>>> = calendar_feeds::table
                .find(id)
                .select(calendar_feeds::content_changed_at)
                .first(conn)
                .optional()?;
            Ok(changed.flatten().unwrap_or(at))
        })
        .await
    }
}
