//! Reminders over PostgreSQL: the user's CRUD, the scheduler's claim-and-fire, and what a
//! change to a task or an event does to its reminders still to fire (in the same
//! transaction as that change).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::data_types::PgInterval;
use diesel::pg::PgConnection;
use diesel::prelude::*;
use uuid::Uuid;

use super::models::{EventRow, MessageRow, ReminderRow, TaskRow};
use super::repos::AppendMessage;
use super::schema::{conversations, events, reminders, tasks, users};
use super::{DbError, PgStore};
use crate::domain::event::{Event, EventRange};
use crate::domain::page::PageRequest;
use crate::domain::ports::{
    FireRequest, Fired, FiredBatch, Mutation, RangeQuery, ReminderRepository,
};
use crate::domain::reminder::{
    MAX_SCHEDULED_PER_USER, Reminder, ReminderKind, ReminderQuery, ReminderStatus, TaskCascade,
    agenda_reminder, agenda_text, alert_reminders, leaves_alert_series, local_day, next_agenda,
};
use crate::domain::service::events_in_range;
use crate::domain::task::{Task, TaskStatus};
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

/// Stores reminders an event's alerts call for; one already waiting for the same alert and
/// occurrence is kept (see the `reminders_alert_series_key` index).
fn insert_alerts(conn: &mut PgConnection, user: &UserId, due: &[Reminder]) -> DbResult<()> {
    if due.is_empty() {
        return Ok(());
    }
    let rows: Vec<ReminderRow> = due.iter().map(|r| ReminderRow::new(user, r)).collect();
    diesel::insert_into(reminders::table)
        .values(&rows)
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Makes an event's waiting alert reminders anew after it was written (created, moved,
/// its rule or alerts changed): the old ones go, the next occurrence's come.
pub(super) fn sync_alerts(
    conn: &mut PgConnection,
    user: &UserId,
    event: &Event,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> DbResult<()> {
    diesel::delete(
        reminders::table
            .filter(reminders::event_id.eq(event.id))
            .filter(reminders::status.eq(SCHEDULED))
            .filter(reminders::alert_minutes.is_not_null()),
    )
    .execute(conn)?;
    insert_alerts(conn, user, &alert_reminders(event, tz, now, None, None))
}

/// The next occurrence's reminder of the alert `left` belonged to, which just left the queue.
fn continue_series(
    conn: &mut PgConnection,
    user: &UserId,
    left: &Reminder,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let (Some(event), Some(minutes)) = (left.event_id, left.alert_minutes) else {
        return Ok(());
    };
    let Some(row) = events::table
        .filter(events::id.eq(event).and(events::user_id.eq(user.as_str())))
        .select(EventRow::as_select())
        .first(conn)
        .optional()?
    else {
        return Ok(());
    };
    let event = Event::from(row);
    let next = alert_reminders(&event, tz, now, Some(minutes), left.occurrence_at);
    insert_alerts(conn, user, &next)
}

/// Whether an alert's reminder still belongs to its event as it is now (an edit racing the
/// scheduler may leave one of the old alerts behind): otherwise it is cancelled, not fired.
fn alert_still_set(conn: &mut PgConnection, reminder: &Reminder) -> DbResult<bool> {
    let (Some(event), Some(minutes)) = (reminder.event_id, reminder.alert_minutes) else {
        return Ok(true);
    };
    let alerts: Option<Vec<i32>> = events::table
        .find(event)
        .select(events::alerts)
        .first(conn)
        .optional()?;
    Ok(alerts.is_some_and(|alerts| alerts.contains(&i32::try_from(minutes).unwrap_or(-1))))
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
        let timezone = self.timezone;
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
                let before = Reminder::try_from(row)?;
                let reminder = change(before.clone())?;
                diesel::update(reminders::table.find(id))
                    .set(&ReminderRow::new(&user, &reminder))
                    .execute(conn)?;
                if leaves_alert_series(&before, Some(&reminder)) {
                    continue_series(conn, &user, &before, timezone, reminder.updated_at)?;
                }
                Ok(Some(reminder))
            })
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = user.clone();
        let timezone = self.timezone;
        self.run(move |conn| {
            conn.transaction(|conn| {
                let gone: Vec<ReminderRow> = diesel::delete(
                    reminders::table.filter(
                        reminders::id
                            .eq(id)
                            .and(reminders::user_id.eq(user.as_str())),
                    ),
                )
                .returning(ReminderRow::as_returning())
                .get_results(conn)?;
                let deleted = !gone.is_empty();
                for row in gone {
                    let before = Reminder::try_from(row)?;
                    if leaves_alert_series(&before, None) {
                        continue_series(conn, &user, &before, timezone, Utc::now())?;
                    }
                }
                Ok(deleted)
            })
        })
        .await
    }

    async fn fire_due(&self, request: &FireRequest) -> DomainResult<FiredBatch> {
        let request = *request;
        self.run(move |conn| conn.transaction(|conn| fire_due(conn, &request)))
            .await
    }
}

/// Replaces the user's waiting agenda reminder (if any) with `agenda`.
pub(super) fn replace_agenda(
    conn: &mut PgConnection,
    user: &UserId,
    agenda: Option<&Reminder>,
) -> DbResult<()> {
    diesel::delete(
        reminders::table
            .filter(reminders::user_id.eq(user.as_str()))
            .filter(reminders::kind.eq(ReminderKind::Agenda.as_str()))
            .filter(reminders::status.eq(SCHEDULED)),
    )
    .execute(conn)?;
    if let Some(agenda) = agenda {
        diesel::insert_into(reminders::table)
            .values(&ReminderRow::new(user, agenda))
            .on_conflict_do_nothing()
            .execute(conn)?;
    }
    Ok(())
}

/// Most events and tasks an agenda lists (each).
const AGENDA_ITEMS: u32 = 20;

/// Writes a firing agenda's text (the day's events and the tasks due, on the user's clock), and
/// schedules the next day's while the user keeps the agenda on.
fn fire_agenda(
    conn: &mut PgConnection,
    fired: &mut Fired,
    server_tz: chrono_tz::Tz,
    now: DateTime<Utc>,
) -> DbResult<()> {
    let settings: Option<(Option<String>, Option<chrono::NaiveTime>)> = users::table
        .find(fired.user.as_str())
        .select((users::timezone, users::agenda_at))
        .first(conn)
        .optional()?;
    let Some((timezone, agenda_at)) = settings else {
        return Ok(());
    };
    let tz = timezone
        .and_then(|name| name.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(server_tz);
    let reminder = &mut fired.reminder;
    let (from, to) = local_day(tz, reminder.due_at);
    let query = RangeQuery {
        range: EventRange { from, to },
        page: PageRequest {
            limit: AGENDA_ITEMS,
            after: None,
        },
        max_series: 200,
    };
    let rows = super::repos::range_rows(conn, fired.user.as_str(), &query)?;
    // Recurring events are expanded on the server's wall clock, as everywhere else.
    let (events, _) = events_in_range(rows, &query, server_tz);
    let tasks: Vec<TaskRow> = tasks::table
        .filter(tasks::user_id.eq(fired.user.as_str()))
        .filter(tasks::due_at.ge(from))
        .filter(tasks::due_at.lt(to))
        .filter(tasks::status.eq_any([
            TaskStatus::Pending.as_str(),
            TaskStatus::InProgress.as_str(),
        ]))
        .order((tasks::due_at.asc(), tasks::id.asc()))
        .limit(i64::from(AGENDA_ITEMS))
        .select(TaskRow::as_select())
        .load(conn)?;
    let tasks = tasks
        .into_iter()
        .map(Task::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    reminder.text = agenda_text(&events.items, &tasks, tz);
    diesel::update(reminders::table.find(reminder.id))
        .set(reminders::text.eq(&reminder.text))
        .execute(conn)?;
    if let Some(at) = agenda_at {
        // After downtime, the next one after now: missed days are not made up.
        let next = agenda_reminder(next_agenda(tz, at, reminder.due_at.max(now)), now);
        replace_agenda(conn, &fired.user, Some(&next))?;
    }
    Ok(())
}

fn fire_due(conn: &mut PgConnection, request: &FireRequest) -> DbResult<FiredBatch> {
    let FireRequest {
        now,
        max_lateness,
        limit,
        timezone,
        push_ttl,
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
        if !alert_still_set(conn, &reminder)? {
            diesel::update(reminders::table.find(reminder.id))
                .set((
                    reminders::status.eq(ReminderStatus::Cancelled.as_str()),
                    reminders::updated_at.eq(now),
                ))
                .execute(conn)?;
            continue;
        }
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
    // In this transaction: a crash after it commits leaves the pushes to send, never lost.
    let pushes = super::push::queue_pushes(conn, &on_time, now, push_ttl)? as u64;
    for f in &fired {
        if f.reminder.alert_minutes.is_some() {
            continue_series(conn, &f.user, &f.reminder, timezone, now)?;
        }
    }
    for f in &mut fired {
        if f.reminder.kind == ReminderKind::Agenda {
            fire_agenda(conn, f, timezone, now)?;
        }
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
    Ok(FiredBatch {
        fired,
        pushes,
        next_due,
    })
}
