//! Reminders over PostgreSQL: the user's CRUD, the scheduler's claim-and-fire, and what a
//! change to a task or an event does to its reminders still to fire (in the same
//! transaction as that change).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::data_types::PgInterval;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use uuid::Uuid;

use super::models::{MessageRow, ReminderRow};
use super::repos::AppendMessage;
use super::schema::{conversations, events, reminders, tasks};
use super::{DbError, PgStore};
use crate::domain::ports::{FireRequest, Fired, FiredBatch, Mutation, ReminderRepository};
use crate::domain::reminder::{
    MAX_SCHEDULED_PER_USER, Reminder, ReminderQuery, ReminderStatus, TaskCascade,
};
use crate::domain::{DomainError, DomainResult, UserId};

type DbResult<T> = Result<T, DbError>;

const SCHEDULED: &str = "scheduled";

fn interval(d: chrono::Duration) -> PgInterval {
    PgInterval::from_microseconds(d.num_microseconds().unwrap_or(i64::MAX))
}

/// Applies a task's change to its reminders still to fire.
pub(super) fn cascade_task(
    conn: &mut PgConnection,
    task: Uuid,
    cascade: &TaskCascade,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let pending = || {
        reminders::table
            .filter(reminders::task_id.eq(task))
            .filter(reminders::status.eq(SCHEDULED))
    };
    if cascade.cancel {
        cancel_pending(conn, Owner::Task(task), now)?;
        return Ok(());
    }
    if let Some(shift) = cascade.shift {
        diesel::update(pending())
            .set((
                reminders::due_at.eq(reminders::due_at + interval(shift)),
                reminders::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    if let Some((old, new)) = &cascade.retitle {
        diesel::update(pending().filter(reminders::text.eq(old)))
            .set((reminders::text.eq(new), reminders::updated_at.eq(now)))
            .execute(conn)?;
    }
    Ok(())
}

/// Moves the reminders still to fire of a single (not recurring) event whose start moved.
pub(super) fn shift_event(
    conn: &mut PgConnection,
    event: Uuid,
    shift: chrono::Duration,
    now: DateTime<Utc>,
) -> DbResult<()> {
    diesel::update(
        reminders::table
            .filter(reminders::event_id.eq(event))
            .filter(reminders::status.eq(SCHEDULED)),
    )
    .set((
        reminders::due_at.eq(reminders::due_at + interval(shift)),
        reminders::occurrence_at.eq(reminders::occurrence_at + interval(shift)),
        reminders::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// What reminders belong to.
#[derive(Debug, Clone, Copy)]
pub(super) enum Owner {
    Task(Uuid),
    Event(Uuid),
}

/// Cancels the owner's reminders still to fire (it was deleted, completed or cancelled).
pub(super) fn cancel_pending(
    conn: &mut PgConnection,
    owner: Owner,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let cancel = (
        reminders::status.eq(ReminderStatus::Cancelled.as_str()),
        reminders::updated_at.eq(now),
    );
    let pending = reminders::table.filter(reminders::status.eq(SCHEDULED));
    match owner {
        Owner::Task(id) => diesel::update(pending.filter(reminders::task_id.eq(id)))
            .set(cancel)
            .execute(conn)?,
        Owner::Event(id) => diesel::update(pending.filter(reminders::event_id.eq(id)))
            .set(cancel)
            .execute(conn)?,
    };
    Ok(())
}

/// A reminder's links must be the user's own.
fn check_links(conn: &mut PgConnection, user: &str, row: &mut ReminderRow) -> DbResult<()> {
    if let Some(task) = row.task_id {
        let found: bool = diesel::select(diesel::dsl::exists(
            tasks::table.filter(tasks::id.eq(task).and(tasks::user_id.eq(user))),
        ))
        .get_result(conn)?;
        if !found {
            return Err(DomainError::invalid("taskId", "no such task").into());
        }
    }
    if let Some(event) = row.event_id {
        let found: bool = diesel::select(diesel::dsl::exists(
            events::table.filter(events::id.eq(event).and(events::user_id.eq(user))),
        ))
        .get_result(conn)?;
        if !found {
            return Err(DomainError::invalid("eventId", "no such event").into());
        }
    }
    if let Some(conversation) = row.conversation_id {
        let found: bool = diesel::select(diesel::dsl::exists(
            conversations::table.filter(
                conversations::id
                    .eq(conversation)
                    .and(conversations::user_id.eq(user)),
            ),
        ))
        .get_result(conn)?;
        if !found {
            row.conversation_id = None;
        }
    }
    Ok(())
}

#[async_trait]
impl ReminderRepository for PgStore {
    async fn insert(&self, user: &UserId, reminder: &Reminder) -> DomainResult<()> {
        let mut row = ReminderRow::new(user, reminder);
        self.run(move |conn| {
            conn.transaction(|conn| {
                let user = row.user_id.clone();
                check_links(conn, &user, &mut row)?;
                let scheduled: i64 = reminders::table
                    .filter(reminders::user_id.eq(&user))
                    .filter(reminders::status.eq(SCHEDULED))
                    .count()
                    .get_result(conn)?;
                if scheduled >= MAX_SCHEDULED_PER_USER {
                    return Err(DomainError::invalid(
                        "dueAt",
                        format!(
                            "at most {MAX_SCHEDULED_PER_USER} reminders may wait to fire; \
                             cancel some first"
                        ),
                    )
                    .into());
                }
                diesel::insert_into(reminders::table)
                    .values(&row)
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Reminder>> {
        let user = user.as_str().to_owned();
        self.run(move |conn| {
            let row = reminders::table
                .filter(reminders::id.eq(id).and(reminders::user_id.eq(&user)))
                .select(ReminderRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Reminder::try_from).transpose()?)
        })
        .await
    }

    async fn list(&self, user: &UserId, query: &ReminderQuery) -> DomainResult<Vec<Reminder>> {
        let user = user.as_str().to_owned();
        let query = query.clone();
        self.run(move |conn| {
            let mut q = reminders::table
                .filter(reminders::user_id.eq(&user))
                .select(ReminderRow::as_select())
                .into_boxed();
            if let Some(status) = query.status {
                q = q.filter(reminders::status.eq(status.as_str()));
            }
            if let Some(from) = query.from {
                q = q.filter(reminders::due_at.ge(from));
            }
            if let Some(to) = query.to {
                q = q.filter(reminders::due_at.lt(to));
            }
            if let Some(c) = query.page.after {
                q = q.filter(
                    reminders::due_at
                        .gt(c.at)
                        .or(reminders::due_at.eq(c.at).and(reminders::id.gt(c.id))),
                );
            }
            let rows: Vec<ReminderRow> = q
                .order((reminders::due_at.asc(), reminders::id.asc()))
                .limit(query.page.fetch_limit())
                .load(conn)?;
            rows.into_iter()
                .map(|r| Reminder::try_from(r).map_err(DbError::from))
                .collect()
        })
        .await
    }

    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Reminder>,
    ) -> DomainResult<Option<Reminder>> {
        let user = user.clone();
        self.run(move |conn| {
            conn.transaction(|conn| {
                let Some(row) = reminders::table
                    .filter(
                        reminders::id
                            .eq(id)
                            .and(reminders::user_id.eq(user.as_str())),
                    )
                    .select(ReminderRow::as_select())
                    .for_update()
                    .first(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                let reminder = change(Reminder::try_from(row)?)?;
                diesel::update(reminders::table.find(id))
                    .set(&ReminderRow::new(&user, &reminder))
                    .execute(conn)?;
                Ok(Some(reminder))
            })
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = user.as_str().to_owned();
        self.run(move |conn| {
            let n = diesel::delete(
                reminders::table.filter(reminders::id.eq(id).and(reminders::user_id.eq(&user))),
            )
            .execute(conn)?;
            Ok(n > 0)
        })
        .await
    }

    async fn fire_due(&self, request: &FireRequest) -> DomainResult<FiredBatch> {
        let request = *request;
        self.run(move |conn| conn.transaction(|conn| fire_due(conn, &request)))
            .await
    }
}

fn fire_due(conn: &mut PgConnection, request: &FireRequest) -> DbResult<FiredBatch> {
    let FireRequest {
        now,
        max_lateness,
        limit,
        timezone,
    } = *request;
    let rows: Vec<ReminderRow> = reminders::table
        .filter(reminders::status.eq(SCHEDULED))
        .filter(reminders::due_at.le(now))
        .order(reminders::due_at.asc())
        .limit(limit)
        .for_update()
        .skip_locked()
        .select(ReminderRow::as_select())
        .load(conn)?;
    let mut fired = Vec::with_capacity(rows.len());
    let (mut on_time, mut late) = (Vec::new(), Vec::new());
    for row in rows {
        let user = UserId::parse(&row.user_id)
            .map_err(|e| DomainError::Internal(anyhow::anyhow!("stored user id: {e}")))?;
        let mut reminder = Reminder::try_from(row)?;
        let is_late = now - reminder.due_at > max_lateness;
        if is_late {
            late.push(reminder.id);
        } else {
            on_time.push(reminder.id);
        }
        reminder.status = ReminderStatus::Fired;
        reminder.fired_at = Some(now);
        reminder.fired_late = is_late;
        reminder.updated_at = now;
        let message = reminder.message(is_late, timezone, now);
        fired.push(Fired {
            user,
            reminder,
            message,
        });
    }
    for (ids, is_late) in [(&on_time, false), (&late, true)] {
        if ids.is_empty() {
            continue;
        }
        diesel::update(reminders::table.filter(reminders::id.eq_any(ids)))
            .set((
                reminders::status.eq(ReminderStatus::Fired.as_str()),
                reminders::fired_at.eq(now),
                reminders::fired_late.eq(is_late),
                reminders::updated_at.eq(now),
            ))
            .execute(conn)?;
    }
    for f in &mut fired {
        if let Some(message) = &f.message {
            let stored = AppendMessage(&MessageRow::new(&f.user, message)).execute(conn)?;
            if stored == 0 {
                f.message = None;
            }
        }
    }
    let next_due: Option<DateTime<Utc>> = reminders::table
        .filter(reminders::status.eq(SCHEDULED))
        .select(diesel::dsl::min(reminders::due_at))
        .first(conn)?;
    Ok(FiredBatch { fired, next_due })
}
