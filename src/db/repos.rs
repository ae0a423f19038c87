//! The domain's storage ports over PostgreSQL. Every query filters on the user. Every write of
//! an indexed entity adds its vector-outbox row in the same transaction, through the triggers of
//! the schema (see the migrations).

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::pg::{Pg, PgConnection};
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types;
use uuid::Uuid;

use super::models::{
    ConversationRow, EventRow, MemoryRow, MessageRow, NewOutboxRow, TaskRow, UserRow,
};
use super::reminders::{self, Owner};
use super::schema::{
    conversations, erased_users, events, memories, messages, tasks, users, vector_outbox,
    webhook_deliveries,
};
use super::{DbError, PgStore};
use crate::domain::calendar::ImportApplied;
use crate::domain::conversation::{Conversation, ConversationQuery, Message, MessageQuery};
use crate::domain::event::Event;
use crate::domain::memory::{Memory, MemoryQuery};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::ports::{
    ConversationRepository, EventRepository, ImportRow, MemoryRepository, Mutation, RangeQuery,
    RangeRows, TaskRepository, TurnReader, TurnReads, TurnRows, UserRepository,
};
use crate::domain::reminder::TaskCascade;
use crate::domain::task::{Task, TaskQuery};
use crate::domain::user::User;
use crate::domain::{DomainError, DomainResult, UserId};

type DbResult<T> = Result<T, DbError>;

fn ensure_user(conn: &mut PgConnection, user: &str) -> DbResult<()> {
    diesel::insert_into(users::table)
        .values(users::id.eq(user))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// `(messages.created_at, messages.id) < (at, id)`: messages stored before the given one. A row
/// comparison, so that it bounds the scan of `messages_conversation_created_idx` instead of
/// filtering every row the scan reads; a type of its own rather than an SQL literal, so that
/// diesel keeps the statements that use it prepared.
#[derive(Debug, Clone, Copy)]
struct StoredBefore {
    at: DateTime<Utc>,
    id: Uuid,
}

fn stored_before(at: DateTime<Utc>, id: Uuid) -> StoredBefore {
    StoredBefore { at, id }
}

impl diesel::expression::Expression for StoredBefore {
    type SqlType = sql_types::Bool;
}

impl diesel::expression::ValidGrouping<()> for StoredBefore {
    type IsAggregate = diesel::expression::is_aggregate::Never;
}

impl AppearsOnTable<messages::table> for StoredBefore {}
impl SelectableExpression<messages::table> for StoredBefore {}

impl diesel::query_builder::QueryId for StoredBefore {
    type QueryId = Self;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for StoredBefore {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("(messages.created_at, messages.id) < (");
        out.push_bind_param::<sql_types::Timestamptz, _>(&self.at)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Uuid, _>(&self.id)?;
        out.push_sql(")");
        Ok(())
    }
}

/// Stores a message in one statement (one round trip, atomic on its own): bumps the
/// conversation if it is the user's, and inserts the message only then. A query type of its
/// own, so that diesel keeps it prepared.
pub(super) struct AppendMessage<'a>(pub(super) &'a MessageRow);

impl diesel::query_builder::QueryId for AppendMessage<'_> {
    type QueryId = AppendMessage<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl QueryFragment<Pg> for AppendMessage<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let row = self.0;
        out.push_sql("WITH bumped AS (UPDATE conversations SET updated_at = ");
        out.push_bind_param::<sql_types::Timestamptz, _>(&row.created_at)?;
        out.push_sql(", last_message_at = ");
        out.push_bind_param::<sql_types::Timestamptz, _>(&row.created_at)?;
        out.push_sql(" WHERE id = ");
        out.push_bind_param::<sql_types::Uuid, _>(&row.conversation_id)?;
        out.push_sql(" AND user_id = ");
        out.push_bind_param::<sql_types::Text, _>(&row.user_id)?;
        out.push_sql(
            " RETURNING id, user_id) \
             INSERT INTO messages (id, conversation_id, user_id, role, content, tool_calls, \
             client_message_id, created_at, reply_to) SELECT ",
        );
        out.push_bind_param::<sql_types::Uuid, _>(&row.id)?;
        out.push_sql(", bumped.id, bumped.user_id, ");
        out.push_bind_param::<sql_types::Text, _>(&row.role)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Text, _>(&row.content)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Jsonb, _>(&row.tool_calls)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Nullable<sql_types::Text>, _>(&row.client_message_id)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Timestamptz, _>(&row.created_at)?;
        out.push_sql(", ");
        out.push_bind_param::<sql_types::Nullable<sql_types::Uuid>, _>(&row.reply_to)?;
        out.push_sql(" FROM bumped");
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for AppendMessage<'_> {}

/// The user's tasks matching the query: one page, newest first.
fn task_rows(conn: &mut PgConnection, user: &str, query: TaskQuery) -> DbResult<Vec<Task>> {
    let mut q = tasks::table
        .filter(tasks::user_id.eq(user))
        .select(TaskRow::as_select())
        .into_boxed();
    let f = query.filter;
    if let Some(status) = f.status {
        q = q.filter(tasks::status.eq(status.as_str()));
    }
    if f.open {
        q = q.filter(tasks::status.eq_any([
            crate::domain::task::TaskStatus::Pending.as_str(),
            crate::domain::task::TaskStatus::InProgress.as_str(),
        ]));
    }
    if let Some(project) = f.project {
        q = q.filter(tasks::project.eq(project));
    }
    if let Some(before) = f.due_before {
        q = q.filter(tasks::due_at.lt(before));
    }
    if let Some(after) = f.due_after {
        q = q.filter(tasks::due_at.gt(after));
    }
    if let Some(c) = query.page.after {
        q = q.filter(
            tasks::created_at
                .lt(c.at)
                .or(tasks::created_at.eq(c.at).and(tasks::id.lt(c.id))),
        );
    }
    let rows: Vec<TaskRow> = q
        .order((tasks::created_at.desc(), tasks::id.desc()))
        .limit(query.page.fetch_limit())
        .load(conn)?;
    rows.into_iter()
        .map(|r| Task::try_from(r).map_err(DbError::from))
        .collect()
}

/// Events after a page's cursor, in `(start_at, id)` order.
fn events_after(
    c: Cursor,
) -> Box<dyn BoxableExpression<events::table, Pg, SqlType = sql_types::Bool>> {
    Box::new(
        events::start_at
            .gt(c.at)
            .or(events::start_at.eq(c.at).and(events::id.gt(c.id))),
    )
}

/// The single events of one page of the range and the series that may recur in it.
pub(super) fn range_rows(
    conn: &mut PgConnection,
    user: &str,
    query: &RangeQuery,
) -> DbResult<RangeRows> {
    let RangeQuery {
        range,
        page,
        max_series,
    } = *query;
    let mut q = events::table
        .filter(events::user_id.eq(user))
        .filter(events::recurrence.is_null())
        .filter(events::start_at.lt(range.to))
        .filter(events::end_at.gt(range.from))
        .select(EventRow::as_select())
        .into_boxed();
    if let Some(c) = page.after {
        q = q.filter(events_after(c));
    }
    let single: Vec<EventRow> = q
        .order((events::start_at.asc(), events::id.asc()))
        .limit(page.fetch_limit())
        .load(conn)?;
    let series: Vec<EventRow> = events::table
        .filter(events::user_id.eq(user))
        .filter(events::recurrence.is_not_null())
        .filter(events::start_at.lt(range.to))
        .order((events::start_at.asc(), events::id.asc()))
        .limit(max_series)
        .select(EventRow::as_select())
        .load(conn)?;
    Ok(RangeRows {
        single: single.into_iter().map(Event::from).collect(),
        series: series.into_iter().map(Event::from).collect(),
    })
}

/// The user's last `limit` messages of the conversation stored before `(at, id)`, oldest first.
fn history_rows(
    conn: &mut PgConnection,
    user: &str,
    conversation: Uuid,
    (at, id): (DateTime<Utc>, Uuid),
    limit: u32,
) -> DbResult<Vec<Message>> {
    // Scoped to the user through the conversation, not `messages.user_id`: the planner takes
    // the two for independent and, expecting a row or two, would read and sort the whole
    // conversation instead of walking the index to the first `limit` rows.
    let owned = conversations::table
        .filter(conversations::id.eq(conversation))
        .filter(conversations::user_id.eq(user));
    let rows: Vec<MessageRow> = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(diesel::dsl::exists(owned))
        .filter(stored_before(at, id))
        .order((messages::created_at.desc(), messages::id.desc()))
        .limit(i64::from(limit))
        .select(MessageRow::as_select())
        .load(conn)?;
    let mut messages = rows
        .into_iter()
        .map(Message::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    messages.reverse();
    Ok(messages)
}

#[async_trait]
impl TurnReader for PgStore {
    async fn turn_reads(&self, user: &UserId, reads: &TurnReads) -> DomainResult<TurnRows> {
        let user = owned(user);
        let reads = reads.clone();
        // One checkout, the reads one after the other: cheaper than a connection each.
        self.run(move |conn| {
            Ok(TurnRows {
                history: history_rows(
                    conn,
                    &user,
                    reads.conversation_id,
                    reads.before,
                    reads.history_limit,
                )?,
                open_tasks: task_rows(conn, &user, reads.open_tasks)?,
                events: range_rows(conn, &user, &reads.events)?,
            })
        })
        .await
    }
}

fn owned(user: &UserId) -> String {
    user.as_str().to_owned()
}

/// How long an erasure is remembered: a token issued before it and presented later than this
/// is no longer told apart from a new user's.
const ERASURE_MEMORY: &str = "30 days";

#[async_trait]
impl UserRepository for PgStore {
    async fn ensure(&self, user: &UserId, since: DateTime<Utc>) -> DomainResult<User> {
        let user = owned(user);
        self.run(move |conn| {
            let erased: Option<DateTime<Utc>> = erased_users::table
                .find(&user)
                .select(erased_users::erased_at)
                .first(conn)
                .optional()?;
            if erased.is_some_and(|at| at >= since) {
                return Err(DomainError::Erased.into());
            }
            ensure_user(conn, &user)?;
            let row: UserRow = users::table
                .find(&user)
                .select(UserRow::as_select())
                .first(conn)?;
            Ok(User::try_from(row)?)
        })
        .await
    }

    async fn erase(&self, user: &UserId, at: DateTime<Utc>) -> DomainResult<bool> {
        let user = owned(user);
        self.run(move |conn| {
            conn.transaction(|conn| {
                // The cascade below queues no per-entity outbox rows, and pending index work
                // for this user is moot: one row drops all their vectors.
                diesel::sql_query("SELECT set_config('pixie.erasing_user', 'on', true)")
                    .execute(conn)?;
                diesel::delete(vector_outbox::table.filter(vector_outbox::user_id.eq(&user)))
                    .execute(conn)?;
                diesel::insert_into(vector_outbox::table)
                    .values(NewOutboxRow {
                        user_id: &user,
                        entity_kind: "user",
                        entity_id: None,
                        op: "delete",
                    })
                    .execute(conn)?;
                diesel::insert_into(erased_users::table)
                    .values((erased_users::id.eq(&user), erased_users::erased_at.eq(at)))
                    .on_conflict(erased_users::id)
                    .do_update()
                    .set(erased_users::erased_at.eq(at))
                    .execute(conn)?;
                diesel::sql_query(format!(
                    "DELETE FROM erased_users WHERE erased_at < now() - interval '{ERASURE_MEMORY}'"
                ))
                .execute(conn)?;
                let deleted = diesel::delete(users::table.find(&user)).execute(conn)?;
                Ok(deleted > 0)
            })
        })
        .await
    }

    async fn claim_delivery(&self, source: &str, id: &str, keep: Duration) -> DomainResult<bool> {
        let (source, id) = (source.to_owned(), id.to_owned());
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::days(1));
        self.run(move |conn| {
            diesel::delete(
                webhook_deliveries::table
                    .filter(webhook_deliveries::received_at.lt(Utc::now() - keep)),
            )
            .execute(conn)?;
            let inserted = diesel::insert_into(webhook_deliveries::table)
                .values((
                    webhook_deliveries::source.eq(&source),
                    webhook_deliveries::id.eq(&id),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            Ok(inserted == 1)
        })
        .await
    }

    async fn release_delivery(&self, source: &str, id: &str) -> DomainResult<()> {
        let (source, id) = (source.to_owned(), id.to_owned());
        self.run(move |conn| {
            diesel::delete(webhook_deliveries::table.find((&source, &id))).execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn update_settings(
        &self,
        user: &UserId,
        settings: crate::domain::user::UserSettings,
        agenda: Option<crate::domain::reminder::Reminder>,
    ) -> DomainResult<User> {
        let user = user.clone();
        self.run(move |conn| {
            conn.transaction(|conn| {
                let row: UserRow = diesel::update(users::table.find(user.as_str()))
                    .set((
                        users::timezone.eq(settings.timezone.map(|tz| tz.name().to_owned())),
                        users::agenda_at.eq(settings.agenda_at),
                    ))
                    .returning(UserRow::as_returning())
                    .get_result(conn)?;
                super::reminders::replace_agenda(conn, &user, agenda.as_ref())?;
                Ok(User::try_from(row)?)
            })
        })
        .await
    }
}

#[async_trait]
impl TaskRepository for PgStore {
    async fn insert(&self, user: &UserId, task: &Task) -> DomainResult<()> {
        let row = TaskRow::new(user, task);
        self.run(move |conn| {
            diesel::insert_into(tasks::table)
                .values(&row)
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Task>> {
        let user = owned(user);
        self.run(move |conn| {
            let row = tasks::table
                .filter(tasks::id.eq(id).and(tasks::user_id.eq(&user)))
                .select(TaskRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Task::try_from).transpose()?)
        })
        .await
    }

    async fn list(&self, user: &UserId, query: &TaskQuery) -> DomainResult<Vec<Task>> {
        let user = owned(user);
        let query = query.clone();
        self.run(move |conn| task_rows(conn, &user, query)).await
    }

    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Task>,
    ) -> DomainResult<Option<Task>> {
        let user = owned(user);
        self.run(move |conn| {
            conn.transaction(|conn| {
                let Some(row) = tasks::table
                    .filter(tasks::id.eq(id).and(tasks::user_id.eq(&user)))
                    .select(TaskRow::as_select())
                    .for_update()
                    .first(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                let before = Task::try_from(row)?;
                let task = change(before.clone())?;
                let user_id =
                    UserId::parse(&user).map_err(|e| DomainError::Internal(anyhow::anyhow!(e)))?;
                diesel::update(tasks::table.find(id))
                    .set(&TaskRow::new(&user_id, &task))
                    .execute(conn)?;
                let cascade = TaskCascade::of(&before, &task);
                if !cascade.is_empty() {
                    reminders::cascade_task(conn, id, &cascade, task.updated_at)?;
                }
                Ok(Some(task))
            })
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = owned(user);
        self.run(move |conn| {
            conn.transaction(|conn| {
                // Cancelled while the link still holds (deleting the task clears it).
                let owned: bool = diesel::select(diesel::dsl::exists(
                    tasks::table.filter(tasks::id.eq(id).and(tasks::user_id.eq(&user))),
                ))
                .get_result(conn)?;
                if owned {
                    reminders::cancel_pending(conn, Owner::Task(id), Utc::now())?;
                }
                let n = diesel::delete(
                    tasks::table.filter(tasks::id.eq(id).and(tasks::user_id.eq(&user))),
                )
                .execute(conn)?;
                Ok(n > 0)
            })
        })
        .await
    }
}

#[async_trait]
impl EventRepository for PgStore {
    async fn insert(&self, user: &UserId, event: &Event) -> DomainResult<()> {
        let row = EventRow::new(user, event);
        let (user, event, timezone) = (user.clone(), event.clone(), self.timezone);
        self.run(move |conn| {
            conn.transaction(|conn| {
                diesel::insert_into(events::table)
                    .values(&row)
                    .execute(conn)?;
                if !event.alerts.is_empty() {
                    reminders::sync_alerts(conn, &user, &event, timezone, event.created_at)?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Event>> {
        let user = owned(user);
        self.run(move |conn| {
            let row = events::table
                .filter(events::id.eq(id).and(events::user_id.eq(&user)))
                .select(EventRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Event::from))
        })
        .await
    }

    async fn list(&self, user: &UserId, page: &PageRequest) -> DomainResult<Vec<Event>> {
        let user = owned(user);
        let page = *page;
        self.run(move |conn| {
            let mut q = events::table
                .filter(events::user_id.eq(user))
                .select(EventRow::as_select())
                .into_boxed();
            if let Some(c) = page.after {
                q = q.filter(events_after(c));
            }
            let rows: Vec<EventRow> = q
                .order((events::start_at.asc(), events::id.asc()))
                .limit(page.fetch_limit())
                .load(conn)?;
            Ok(rows.into_iter().map(Event::from).collect())
        })
        .await
    }

    async fn list_in_range(&self, user: &UserId, query: &RangeQuery) -> DomainResult<RangeRows> {
        let user = owned(user);
        let query = *query;
        self.run(move |conn| range_rows(conn, &user, &query)).await
    }

    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Event>,
    ) -> DomainResult<Option<Event>> {
        let user_id = user.clone();
        let timezone = self.timezone;
        self.run(move |conn| {
            conn.transaction(|conn| {
                let Some(row) = events::table
                    .filter(events::id.eq(id).and(events::user_id.eq(user_id.as_str())))
                    .select(EventRow::as_select())
                    .for_update()
                    .first(conn)
                    .optional()?
                else {
                    return Ok(None);
                };
                let before = Event::from(row);
                let event = change(before.clone())?;
                write_change(conn, &user_id, &before, &event, timezone)?;
                Ok(Some(event))
            })
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = owned(user);
        self.run(move |conn| {
            conn.transaction(|conn| {
                // Cancelled while the link still holds (deleting the event clears it).
                let owned: bool = diesel::select(diesel::dsl::exists(
                    events::table.filter(events::id.eq(id).and(events::user_id.eq(&user))),
                ))
                .get_result(conn)?;
                if owned {
                    reminders::cancel_pending(conn, Owner::Event(id), Utc::now())?;
                }
                let n = diesel::delete(
                    events::table.filter(events::id.eq(id).and(events::user_id.eq(&user))),
                )
                .execute(conn)?;
                Ok(n > 0)
            })
        })
        .await
    }

    async fn import(&self, user: &UserId, rows: Vec<ImportRow>) -> DomainResult<ImportApplied> {
        let user = user.clone();
        let timezone = self.timezone;
        self.run(move |conn| {
            conn.transaction(|conn| {
                let mut applied = ImportApplied::default();
                for ImportRow {
                    key,
                    own,
                    mut event,
                } in rows
                {
                    let mine = events::user_id.eq(user.as_str());
                    let by_id = match own {
                        Some(id) => events::table
                            .filter(events::id.eq(id).and(mine))
                            .select(EventRow::as_select())
                            .for_update()
                            .first(conn)
                            .optional()?,
                        None => None,
                    };
                    let existing = match by_id {
                        Some(row) => Some(row),
                        None => events::table
                            .filter(events::ical_uid.eq(&key).and(mine))
                            .select(EventRow::as_select())
                            .for_update()
                            .first(conn)
                            .optional()?,
                    };
                    let Some(before) = existing.map(Event::from) else {
                        diesel::insert_into(events::table)
                            .values((EventRow::new(&user, &event), events::ical_uid.eq(&key)))
                            .execute(conn)?;
                        if !event.alerts.is_empty() {
                            reminders::sync_alerts(
                                conn,
                                &user,
                                &event,
                                timezone,
                                event.created_at,
                            )?;
                        }
                        applied.created.push(event);
                        continue;
                    };
                    event.id = before.id;
                    event.created_at = before.created_at;
                    if same_content(&before, &event) {
                        applied.unchanged += 1;
                        continue;
                    }
                    write_change(conn, &user, &before, &event, timezone)?;
                    applied.updated.push(event);
                }
                Ok(applied)
            })
        })
        .await
    }
}

/// Writes a changed event, and moves its reminders with it: a single event's by the shift of
/// its start, an event with alerts by its alerts' next times.
fn write_change(
    conn: &mut PgConnection,
    user: &UserId,
    before: &Event,
    event: &Event,
    timezone: chrono_tz::Tz,
) -> DbResult<()> {
    diesel::update(events::table.find(event.id))
        .set(&EventRow::new(user, event))
        .execute(conn)?;
    if before.recurrence.is_none()
        && event.recurrence.is_none()
        && before.start_at != event.start_at
    {
        let shift = event.start_at - before.start_at;
        reminders::shift_event(conn, event.id, shift, event.updated_at)?;
    }
    if !before.alerts.is_empty() || !event.alerts.is_empty() {
        reminders::sync_alerts(conn, user, event, timezone, event.updated_at)?;
    }
    Ok(())
}

/// Whether an import would change nothing the user sees of the event.
fn same_content(a: &Event, b: &Event) -> bool {
    a.title == b.title
        && a.description == b.description
        && a.location == b.location
        && a.start_at == b.start_at
        && a.end_at == b.end_at
        && a.is_all_day == b.is_all_day
        && a.recurrence == b.recurrence
        && a.alerts == b.alerts
        && a.timezone == b.timezone
        && a.exdates == b.exdates
}

#[async_trait]
impl MemoryRepository for PgStore {
    async fn insert(&self, user: &UserId, memory: &Memory) -> DomainResult<()> {
        let row = MemoryRow::new(user, memory);
        self.run(move |conn| {
            diesel::insert_into(memories::table)
                .values(&row)
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Memory>> {
        let user = owned(user);
        self.run(move |conn| {
            let row: Option<MemoryRow> = memories::table
                .filter(memories::id.eq(id).and(memories::user_id.eq(user)))
                .select(MemoryRow::as_select())
                .first(conn)
                .optional()?;
            row.map(|r| Memory::try_from(r).map_err(DbError::from))
                .transpose()
        })
        .await
    }

    async fn list(&self, user: &UserId, query: &MemoryQuery) -> DomainResult<Vec<Memory>> {
        let user = owned(user);
        let page = query.page;
        self.run(move |conn| {
            let mut q = memories::table
                .filter(memories::user_id.eq(user))
                .select(MemoryRow::as_select())
                .into_boxed();
            if let Some(c) = page.after {
                q = q.filter(
                    memories::created_at
                        .lt(c.at)
                        .or(memories::created_at.eq(c.at).and(memories::id.lt(c.id))),
                );
            }
            let rows: Vec<MemoryRow> = q
                .order((memories::created_at.desc(), memories::id.desc()))
                .limit(page.fetch_limit())
                .load(conn)?;
            rows.into_iter()
                .map(|r| Memory::try_from(r).map_err(DbError::from))
                .collect()
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = owned(user);
        self.run(move |conn| {
            let n = diesel::delete(
                memories::table.filter(memories::id.eq(id).and(memories::user_id.eq(&user))),
            )
            .execute(conn)?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl ConversationRepository for PgStore {
    async fn insert(&self, user: &UserId, conversation: &Conversation) -> DomainResult<()> {
        let row = ConversationRow::new(user, conversation);
        self.run(move |conn| {
            diesel::insert_into(conversations::table)
                .values(&row)
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Conversation>> {
        let user = owned(user);
        self.run(move |conn| {
            let row = conversations::table
                .filter(
                    conversations::id
                        .eq(id)
                        .and(conversations::user_id.eq(&user)),
                )
                .select(ConversationRow::as_select())
                .first(conn)
                .optional()?;
            Ok(row.map(Conversation::from))
        })
        .await
    }

    async fn list(
        &self,
        user: &UserId,
        query: &ConversationQuery,
    ) -> DomainResult<Vec<Conversation>> {
        let user = owned(user);
        let page = query.page;
        self.run(move |conn| {
            let mut q = conversations::table
                .filter(conversations::user_id.eq(user))
                .select(ConversationRow::as_select())
                .into_boxed();
            if let Some(c) = page.after {
                q = q.filter(
                    conversations::updated_at
                        .lt(c.at)
                        .or(conversations::updated_at
                            .eq(c.at)
                            .and(conversations::id.lt(c.id))),
                );
            }
            let rows: Vec<ConversationRow> = q
                .order((conversations::updated_at.desc(), conversations::id.desc()))
                .limit(page.fetch_limit())
                .load(conn)?;
            Ok(rows.into_iter().map(Conversation::from).collect())
        })
        .await
    }

    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool> {
        let user = owned(user);
        self.run(move |conn| {
            conn.transaction(|conn| {
                let owned_by_user = conversations::table
                    .filter(
                        conversations::id
                            .eq(id)
                            .and(conversations::user_id.eq(&user)),
                    )
                    .select(conversations::id)
                    .for_update()
                    .first::<Uuid>(conn)
                    .optional()?
                    .is_some();
                if !owned_by_user {
                    return Ok(false);
                }
                // The messages (and, through the outbox, their vectors) go with it.
                diesel::delete(conversations::table.find(id)).execute(conn)?;
                Ok(true)
            })
        })
        .await
    }

    async fn append_message(
        &self,
        user: &UserId,
        message: &Message,
    ) -> DomainResult<Option<Message>> {
        let row = MessageRow::new(user, message);
        let message = message.clone();
        if self.group_commit {
            return Ok(self.append_grouped(row).await?.then_some(message));
        }
        self.run(move |conn| {
            let inserted = AppendMessage(&row).execute(conn)?;
            Ok((inserted > 0).then(|| message.clone()))
        })
        .await
    }

    async fn insert_with_message(
        &self,
        user: &UserId,
        conversation: &Conversation,
        message: &Message,
    ) -> DomainResult<()> {
        let conversation = ConversationRow::new(user, conversation);
        let message = MessageRow::new(user, message);
        self.run(move |conn| {
            conn.transaction(|conn| {
                diesel::insert_into(conversations::table)
                    .values(&conversation)
                    .execute(conn)?;
                diesel::insert_into(messages::table)
                    .values(&message)
                    .execute(conn)?;
                Ok(())
            })
        })
        .await
    }

    async fn find_turn(
        &self,
        user: &UserId,
        client_message_id: &str,
    ) -> DomainResult<Option<(Message, Option<Message>)>> {
        let user = owned(user);
        let client_message_id = client_message_id.to_owned();
        self.run(move |conn| {
            let Some(sent) = messages::table
                .filter(
                    messages::user_id
                        .eq(&user)
                        .and(messages::client_message_id.eq(&client_message_id)),
                )
                .select(MessageRow::as_select())
                .first::<MessageRow>(conn)
                .optional()?
            else {
                return Ok(None);
            };
            let reply = messages::table
                .filter(messages::reply_to.eq(sent.id))
                .select(MessageRow::as_select())
                .first::<MessageRow>(conn)
                .optional()?
                .map(Message::try_from)
                .transpose()?;
            Ok(Some((Message::try_from(sent)?, reply)))
        })
        .await
    }

    async fn list_messages(
        &self,
        user: &UserId,
        conversation: Uuid,
        query: &MessageQuery,
    ) -> DomainResult<Option<Vec<Message>>> {
        let user = owned(user);
        let query = query.clone();
        self.run(move |conn| {
            let exists = conversations::table
                .filter(
                    conversations::id
                        .eq(conversation)
                        .and(conversations::user_id.eq(&user)),
                )
                .select(conversations::id)
                .first::<Uuid>(conn)
                .optional()?
                .is_some();
            if !exists {
                return Ok(None);
            }
            let mut q = messages::table
                .filter(messages::conversation_id.eq(conversation))
                .select(MessageRow::as_select())
                .into_boxed();
            if let Some(before) = query.before {
                let Some(at) = messages::table
                    .filter(
                        messages::id
                            .eq(before)
                            .and(messages::conversation_id.eq(conversation)),
                    )
                    .select(messages::created_at)
                    .first::<DateTime<Utc>>(conn)
                    .optional()?
                else {
                    // An id this conversation does not hold, like any unknown id.
                    return Err(DomainError::NotFound.into());
                };
                q = q.filter(stored_before(at, before));
            }
            let rows: Vec<MessageRow> = q
                .order((messages::created_at.desc(), messages::id.desc()))
                .limit(i64::from(query.limit) + 1)
                .load(conn)?;
            let messages = rows
                .into_iter()
                .map(Message::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(messages))
        })
        .await
    }
}
