//! Rows as stored, and their conversion to domain entities.

use anyhow::anyhow;
use chrono::{DateTime, Utc};
use std::io::Write;

use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Jsonb;
use uuid::Uuid;

use super::schema::{
    conversations, events, memories, messages, reminders, tasks, users, vector_outbox,
};
use crate::domain::conversation::{Conversation, Message, Role, ToolCall};
use crate::domain::event::Event;
use crate::domain::memory::{Memory, MemoryKind};
use crate::domain::reminder::{Reminder, ReminderKind, ReminderStatus};
use crate::domain::task::{Priority, Task, TaskStatus};
use crate::domain::user::User;
use crate::domain::{DomainError, UserId};

fn corrupt(what: &str, value: &str) -> DomainError {
    DomainError::Internal(anyhow!("stored {what} {value:?} is not a known value"))
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRow {
    pub id: String,
    pub created_at: DateTime<Utc>,
    pub timezone: Option<String>,
    pub agenda_at: Option<chrono::NaiveTime>,
}

impl TryFrom<UserRow> for User {
    type Error = DomainError;
    fn try_from(row: UserRow) -> Result<Self, DomainError> {
        Ok(User {
            id: UserId::parse(&row.id).map_err(|_| corrupt("user id", &row.id))?,
            created_at: row.created_at,
            timezone: row
                .timezone
                .as_deref()
                .map(|name| name.parse().map_err(|_| corrupt("user time zone", name)))
                .transpose()?,
            agenda_at: row.agenda_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = tasks, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct TaskRow {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: Option<String>,
    pub project: Option<String>,
    pub status: String,
    pub priority: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TaskRow {
    pub fn new(user: &UserId, task: &Task) -> Self {
        Self {
            id: task.id,
            user_id: user.as_str().to_owned(),
            title: task.title.clone(),
            description: task.description.clone(),
            project: task.project.clone(),
            status: task.status.as_str().to_owned(),
            priority: task.priority.map(|p| p.as_str().to_owned()),
            due_at: task.due_at,
            completed_at: task.completed_at,
            created_at: task.created_at,
            updated_at: task.updated_at,
        }
    }
}

impl TryFrom<TaskRow> for Task {
    type Error = DomainError;
    fn try_from(row: TaskRow) -> Result<Self, DomainError> {
        Ok(Task {
            status: TaskStatus::parse(&row.status).ok_or_else(|| corrupt("status", &row.status))?,
            priority: match row.priority.as_deref() {
                None => None,
                Some(p) => Some(Priority::parse(p).ok_or_else(|| corrupt("priority", p))?),
            },
            id: row.id,
            title: row.title,
            description: row.description,
            project: row.project,
            due_at: row.due_at,
            completed_at: row.completed_at,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = events, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct EventRow {
    pub id: Uuid,
    pub user_id: String,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub is_all_day: bool,
    pub recurrence: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub alerts: Vec<i32>,
    pub timezone: Option<String>,
    pub exdates: Vec<DateTime<Utc>>,
}

impl EventRow {
    pub fn new(user: &UserId, event: &Event) -> Self {
        Self {
            id: event.id,
            user_id: user.as_str().to_owned(),
            title: event.title.clone(),
            description: event.description.clone(),
            location: event.location.clone(),
            start_at: event.start_at,
            end_at: event.end_at,
            is_all_day: event.is_all_day,
            recurrence: event.recurrence.clone(),
            created_at: event.created_at,
            updated_at: event.updated_at,
            alerts: event
                .alerts
                .iter()
                .map(|m| i32::try_from(*m).unwrap_or(i32::MAX))
                .collect(),
            timezone: event.timezone.map(|tz| tz.name().to_owned()),
            exdates: event.exdates.clone(),
        }
    }
}

impl From<EventRow> for Event {
    fn from(row: EventRow) -> Self {
        Event {
            id: row.id,
            title: row.title,
            description: row.description,
            location: row.location,
            start_at: row.start_at,
            end_at: row.end_at,
            is_all_day: row.is_all_day,
            recurrence: row.recurrence,
            created_at: row.created_at,
            updated_at: row.updated_at,
            alerts: row
                .alerts
                .into_iter()
                .filter_map(|m| u32::try_from(m).ok())
                .collect(),
            // A zone this build no longer knows repeats on the server's, like a new event.
            timezone: row.timezone.and_then(|name| name.parse().ok()),
            exdates: row.exdates,
            occurrence_of: None,
        }
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = memories, check_for_backend(diesel::pg::Pg))]
pub struct MemoryRow {
    pub id: Uuid,
    pub user_id: String,
    pub content: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
}

impl MemoryRow {
    pub fn new(user: &UserId, memory: &Memory) -> Self {
        Self {
            id: memory.id,
            user_id: user.as_str().to_owned(),
            content: memory.content.clone(),
            kind: memory.kind.as_str().to_owned(),
            created_at: memory.created_at,
        }
    }
}

impl TryFrom<MemoryRow> for Memory {
    type Error = DomainError;
    fn try_from(row: MemoryRow) -> Result<Self, DomainError> {
        Ok(Memory {
            kind: MemoryKind::parse(&row.kind).ok_or_else(|| corrupt("memory type", &row.kind))?,
            id: row.id,
            content: row.content,
            created_at: row.created_at,
        })
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations, check_for_backend(diesel::pg::Pg))]
pub struct ConversationRow {
    pub id: Uuid,
    pub user_id: String,
    pub title: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_message_at: Option<DateTime<Utc>>,
}

impl ConversationRow {
    pub fn new(user: &UserId, c: &Conversation) -> Self {
        Self {
            id: c.id,
            user_id: user.as_str().to_owned(),
            title: c.title.clone(),
            created_at: c.created_at,
            updated_at: c.updated_at,
            last_message_at: c.last_message_at,
        }
    }
}

impl From<ConversationRow> for Conversation {
    fn from(row: ConversationRow) -> Self {
        Conversation {
            id: row.id,
            title: row.title,
            created_at: row.created_at,
            updated_at: row.updated_at,
            last_message_at: row.last_message_at,
        }
    }
}

/// A message's tool calls as stored (`jsonb`), read and written without a `serde_json::Value`
/// tree in between: history is read on every turn.
#[derive(Debug, FromSqlRow, AsExpression)]
#[diesel(sql_type = Jsonb)]
pub struct StoredToolCalls(pub Vec<ToolCall>);

/// The version byte that starts PostgreSQL's binary `jsonb`, before the JSON text.
const JSONB_VERSION: u8 = 1;

impl FromSql<Jsonb, Pg> for StoredToolCalls {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        match value.as_bytes().split_first() {
            Some((&JSONB_VERSION, json)) => serde_json::from_slice(json)
                .map(Self)
                .map_err(|e| format!("stored tool calls do not parse: {e}").into()),
            _ => Err("stored tool calls: unsupported jsonb encoding".into()),
        }
    }
}

impl ToSql<Jsonb, Pg> for StoredToolCalls {
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
        out.write_all(&[JSONB_VERSION])?;
        serde_json::to_writer(out, &self.0)?;
        Ok(IsNull::No)
    }
}

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, check_for_backend(diesel::pg::Pg))]
pub struct MessageRow {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub user_id: String,
    pub role: String,
    pub content: String,
    pub tool_calls: StoredToolCalls,
    pub client_message_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub reply_to: Option<Uuid>,
}

impl MessageRow {
    pub fn new(user: &UserId, m: &Message) -> Self {
        Self {
            id: m.id,
            conversation_id: m.conversation_id,
            user_id: user.as_str().to_owned(),
            role: m.role.as_str().to_owned(),
            content: m.content.clone(),
            tool_calls: StoredToolCalls(m.tool_calls.clone()),
            client_message_id: m.client_message_id.clone(),
            created_at: m.created_at,
            reply_to: m.reply_to,
        }
    }
}

impl TryFrom<MessageRow> for Message {
    type Error = DomainError;
    fn try_from(row: MessageRow) -> Result<Self, DomainError> {
        let StoredToolCalls(tool_calls) = row.tool_calls;
        Ok(Message {
            role: Role::parse(&row.role).ok_or_else(|| corrupt("role", &row.role))?,
            id: row.id,
            conversation_id: row.conversation_id,
            content: row.content,
            tool_calls,
            client_message_id: row.client_message_id,
            created_at: row.created_at,
            reply_to: row.reply_to,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = vector_outbox, check_for_backend(diesel::pg::Pg))]
pub struct NewOutboxRow<'a> {
    pub user_id: &'a str,
    pub entity_kind: &'a str,
    pub entity_id: Option<Uuid>,
    pub op: &'a str,
}

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = reminders, check_for_backend(diesel::pg::Pg), treat_none_as_null = true)]
pub struct ReminderRow {
    pub id: Uuid,
    pub user_id: String,
    pub text: String,
    pub due_at: DateTime<Utc>,
    pub task_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub occurrence_at: Option<DateTime<Utc>>,
    pub alert_minutes: Option<i32>,
    pub conversation_id: Option<Uuid>,
    pub status: String,
    pub fired_at: Option<DateTime<Utc>>,
    pub fired_late: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub kind: String,
}

impl ReminderRow {
    pub fn new(user: &UserId, r: &Reminder) -> Self {
        Self {
            id: r.id,
            user_id: user.as_str().to_owned(),
            text: r.text.clone(),
            due_at: r.due_at,
            task_id: r.task_id,
            event_id: r.event_id,
            occurrence_at: r.occurrence_at,
            alert_minutes: r.alert_minutes.map(|m| m.min(i32::MAX as u32) as i32),
            conversation_id: r.conversation_id,
            status: r.status.as_str().to_owned(),
            fired_at: r.fired_at,
            fired_late: r.fired_late,
            created_at: r.created_at,
            updated_at: r.updated_at,
            kind: r.kind.as_str().to_owned(),
        }
    }
}

impl TryFrom<ReminderRow> for Reminder {
    type Error = DomainError;
    fn try_from(row: ReminderRow) -> Result<Self, DomainError> {
        Ok(Reminder {
            status: ReminderStatus::parse(&row.status)
                .ok_or_else(|| corrupt("reminder status", &row.status))?,
            kind: ReminderKind::parse(&row.kind)
                .ok_or_else(|| corrupt("reminder kind", &row.kind))?,
            id: row.id,
            text: row.text,
            due_at: row.due_at,
            task_id: row.task_id,
            event_id: row.event_id,
            occurrence_at: row.occurrence_at,
            alert_minutes: row.alert_minutes.and_then(|m| u32::try_from(m).ok()),
            conversation_id: row.conversation_id,
            fired_at: row.fired_at,
            fired_late: row.fired_late,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}
