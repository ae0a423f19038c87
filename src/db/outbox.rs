//! The vector outbox over PostgreSQL: rows are added by the schema's triggers in the writing
//! transaction; the indexer claims them with `FOR UPDATE SKIP LOCKED`, so several instances
//! can drain one outbox without taking the same rows.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::{Double, Interval, Timestamptz};
use uuid::Uuid;

use super::PgStore;
use super::models::{EventRow, MemoryRow, MessageRow, TaskRow};
use super::schema::{events, memories, messages, tasks, vector_outbox};
use crate::domain::assistant::{DocKind, Document};
use crate::domain::conversation::Message;
use crate::domain::event::Event;
use crate::domain::memory::Memory;
use crate::domain::ports::{Outbox, OutboxJob, OutboxTarget};
use crate::domain::task::Task;
use crate::domain::{DomainError, DomainResult, UserId};

#[derive(Queryable)]
struct JobRow {
    id: i64,
    user_id: String,
    entity_kind: String,
    entity_id: Option<Uuid>,
    attempts: i32,
}

fn job(row: JobRow) -> Option<OutboxJob> {
    let user = UserId::parse(&row.user_id).ok()?;
    let target = match (row.entity_kind.as_str(), row.entity_id) {
        ("user", _) => OutboxTarget::User,
        (kind, Some(id)) => OutboxTarget::Document(DocKind::parse(kind)?, id),
        _ => return None,
    };
    Some(OutboxJob {
        id: row.id,
        user,
        target,
        attempts: row.attempts,
    })
}

fn micros(d: Duration) -> diesel::data_types::PgInterval {
    diesel::data_types::PgInterval::from_microseconds(
        i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    )
}

/// Documents of one kind, owned by one of the given users, by id.
fn load(
    conn: &mut PgConnection,
    kind: DocKind,
    ids: &[Uuid],
    after: Option<Uuid>,
    limit: Option<i64>,
) -> Result<Vec<Document>, super::DbError> {
    macro_rules! query {
        ($table:ident, $row:ty) => {{
            let mut q = $table::table.select(<$row>::as_select()).into_boxed();
            if !ids.is_empty() {
                q = q.filter($table::id.eq_any(ids));
            }
            if let Some(after) = after {
                q = q.filter($table::id.gt(after));
            }
            if let Some(limit) = limit {
                q = q.order($table::id.asc()).limit(limit);
            }
            q.load::<$row>(conn)?
        }};
    }
    let user_of = |raw: &str| {
        UserId::parse(raw).map_err(|_| {
            DomainError::Internal(anyhow::anyhow!("stored user id {raw:?} is not valid"))
        })
    };
    let mut out = Vec::new();
    match kind {
        DocKind::Task => {
            for row in query!(tasks, TaskRow) {
                let user = user_of(&row.user_id)?;
                out.push(Document::of_task(&user, &Task::try_from(row)?));
            }
        }
        DocKind::Event => {
            for row in query!(events, EventRow) {
                let user = user_of(&row.user_id)?;
                out.push(Document::of_event(&user, &Event::from(row)));
            }
        }
        DocKind::Memory => {
            for row in query!(memories, MemoryRow) {
                let user = user_of(&row.user_id)?;
                out.push(Document::of_memory(&user, &Memory::try_from(row)?));
            }
        }
        DocKind::Message => {
            for row in query!(messages, MessageRow) {
                let user = user_of(&row.user_id)?;
                out.push(Document::of_message(&user, &Message::try_from(row)?));
            }
        }
    }
    Ok(out)
}

/// The outbox as the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxGauges {
    /// Rows waiting, counted up to [`BACKLOG_COUNT_MAX`].
    pub backlog: i64,
    /// Age of the oldest row, seconds (0 when none).
    pub oldest_seconds: f64,
}

/// A scrape never counts further (it would cost as much as the backlog is long).
pub const BACKLOG_COUNT_MAX: i64 = 1_000_000;

impl PgStore {
    pub async fn outbox_gauges(&self) -> DomainResult<OutboxGauges> {
        self.run(|conn| {
            let backlog: i64 = diesel::select(sql::<diesel::sql_types::BigInt>(&format!(
                "(SELECT count(*) FROM (SELECT 1 FROM vector_outbox LIMIT {BACKLOG_COUNT_MAX}) AS waiting)"
            )))
            .get_result(conn)?;
            // The oldest by id (the primary key's order), not by a scan of created_at.
            let oldest_seconds: Option<f64> = vector_outbox::table
                .order(vector_outbox::id)
                .select(sql::<diesel::sql_types::Nullable<Double>>(
                    "extract(epoch FROM now() - created_at)::float8",
                ))
                .first(conn)
                .optional()?
                .flatten();
            Ok(OutboxGauges {
                backlog,
                oldest_seconds: oldest_seconds.unwrap_or(0.0).max(0.0),
            })
        })
        .await
    }
}

#[async_trait]
impl Outbox for PgStore {
    async fn claim(&self, limit: i64, lease: Duration) -> DomainResult<Vec<OutboxJob>> {
        let lease = micros(lease);
        self.run(move |conn| {
            conn.transaction(|conn| {
                let rows: Vec<JobRow> = vector_outbox::table
                    .filter(vector_outbox::next_attempt_at.le(diesel::dsl::now))
                    .order(vector_outbox::id.asc())
                    .limit(limit)
                    .select((
                        vector_outbox::id,
                        vector_outbox::user_id,
                        vector_outbox::entity_kind,
                        vector_outbox::entity_id,
                        vector_outbox::attempts,
                    ))
                    .for_update()
                    .skip_locked()
                    .load(conn)?;
                let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
                diesel::update(vector_outbox::table.filter(vector_outbox::id.eq_any(&ids)))
                    .set(
                        vector_outbox::next_attempt_at
                            .eq(sql::<Timestamptz>("now() + ").bind::<Interval, _>(lease)),
                    )
                    .execute(conn)?;
                Ok(rows.into_iter().filter_map(job).collect())
            })
        })
        .await
    }

    async fn documents(&self, targets: &[(UserId, DocKind, Uuid)]) -> DomainResult<Vec<Document>> {
        let mut by_kind: HashMap<DocKind, Vec<Uuid>> = HashMap::new();
        let mut owners: HashMap<Uuid, UserId> = HashMap::new();
        for (user, kind, id) in targets {
            by_kind.entry(*kind).or_default().push(*id);
            owners.insert(*id, user.clone());
        }
        self.run(move |conn| {
            let mut out = Vec::new();
            for (kind, ids) in by_kind {
                out.extend(load(conn, kind, &ids, None, None)?);
            }
            // A row owned by someone else than the job says is never indexed for the job's user.
            out.retain(|d| owners.get(&d.id) == Some(&d.user));
            Ok(out)
        })
        .await
    }

    async fn complete(&self, ids: &[i64]) -> DomainResult<()> {
        let ids = ids.to_vec();
        self.run(move |conn| {
            diesel::delete(vector_outbox::table.filter(vector_outbox::id.eq_any(&ids)))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn retry_later(&self, ids: &[i64], error: &str, max_delay: Duration) -> DomainResult<()> {
        let ids = ids.to_vec();
        let error: String = error.chars().take(1000).collect();
        let max_secs = max_delay.as_secs_f64();
        self.run(move |conn| {
            // 1 s, 2 s, 4 s, … capped, each scaled by a random factor in [0.5, 1).
            let delay = sql::<Timestamptz>("now() + make_interval(secs => least(")
                .bind::<Double, _>(max_secs)
                .sql(", power(2, least(attempts, 20))) * (0.5 + random() / 2))");
            diesel::update(vector_outbox::table.filter(vector_outbox::id.eq_any(&ids)))
                .set((
                    vector_outbox::attempts.eq(vector_outbox::attempts + 1),
                    vector_outbox::last_error.eq(&error),
                    vector_outbox::next_attempt_at.eq(delay),
                ))
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn pending(&self) -> DomainResult<i64> {
        self.run(|conn| Ok(vector_outbox::table.count().get_result(conn)?))
            .await
    }

    async fn scan(
        &self,
        kind: DocKind,
        after: Option<Uuid>,
        limit: i64,
    ) -> DomainResult<Vec<Document>> {
        self.run(move |conn| load(conn, kind, &[], after, Some(limit)))
            .await
    }

    async fn count(&self, kind: DocKind) -> DomainResult<i64> {
        self.run(move |conn| {
            Ok(match kind {
                DocKind::Task => tasks::table.count().get_result(conn)?,
                DocKind::Event => events::table.count().get_result(conn)?,
                DocKind::Memory => memories::table.count().get_result(conn)?,
                DocKind::Message => messages::table.count().get_result(conn)?,
            })
        })
        .await
    }
}
