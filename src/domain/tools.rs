//! The assistant's tools, executed by the domain as the signed-in user.
//!
//! Arguments are snake_case JSON objects (as LLM tool schemas usually are; the schemas are in
//! `ai::tools`) and are validated like REST bodies: unknown fields, wrong types and invalid
//! values come back to the model as an error message it can act on. Tasks and events can be
//! named by `id` or by `title`: a title is matched loosely among the user's own items, so
//! "mark the milk thing done" works without the model knowing ids.

use async_trait::async_trait;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use super::assistant::{DocKind, ToolExecutor, ToolFailure, ToolOutcome};
use super::error::{DomainError, ErrorCode};
use super::event::{Event, EventPatch, EventQuery, EventRange, NewEvent};
use super::memory::{MemoryKind, NewMemory};
use super::page::PageRequest;
use super::reminder::{NewReminder, Reminder, ReminderPatch, ReminderQuery, ReminderStatus};
use super::service::Domain;
use super::task::{NewTask, Priority, Task, TaskFilter, TaskPatch, TaskQuery, TaskStatus};
use super::values::UserId;

/// Items listed for the model at most (more would only eat its context).
const LIST_MAX: u32 = 50;
const LIST_DEFAULT: u32 = 20;
/// How many of the user's tasks / events a title is matched against.
const MATCH_POOL: u32 = 200;

/// Runs tools for one user during one turn.
pub struct DomainTools {
    pub(crate) domain: Domain,
    pub(crate) user: UserId,
    pub(crate) tz: Tz,
    /// The user message being answered: a search does not answer it with itself.
    pub(crate) message: Option<uuid::Uuid>,
    /// Its conversation: a reminder set here is told here when it fires.
    pub(crate) conversation: Option<uuid::Uuid>,
    /// Items created so far in this turn: the next one's id is derived from the message and
    /// this count (see [`DomainTools::new_id`]).
    created: std::sync::atomic::AtomicU32,
}

/// The assistant's tools, the contract's list (the AI half's schemas name the same, in this
/// order); also the metric labels (a name a model makes up is `unknown`).
pub const TOOL_NAMES: [&str; 15] = [
    "create_task",
    "update_task",
    "complete_task",
    "delete_task",
    "list_tasks",
    "create_event",
    "update_event",
    "delete_event",
    "list_events",
    "remember",
    "search_memory",
    "create_reminder",
    "list_reminders",
    "cancel_reminder",
    "snooze_reminder",
];

#[async_trait]
impl ToolExecutor for DomainTools {
    async fn execute(&self, name: &str, arguments: &Value) -> ToolOutcome {
        let label = TOOL_NAMES
            .iter()
            .find(|known| **known == name)
            .copied()
            .unwrap_or("unknown");
        let span = tracing::info_span!("tool_call", tool = label);
        let outcome =
            tracing::Instrument::instrument(self.run(name, arguments), span.clone()).await;
        span.in_scope(|| tracing::debug!(ok = outcome.is_ok(), "tool call"));
        self.domain.ports.meter.tool_called(label, outcome.is_ok());
        outcome
    }
}

impl DomainTools {
    /// Tools run outside a chat turn (MCP): no message to answer, no conversation to tell.
    pub fn for_user(domain: &Domain, user: UserId) -> Self {
        Self {
            domain: domain.clone(),
            user,
            tz: domain.settings.timezone,
            message: None,
            conversation: None,
            created: Default::default(),
        }
    }

    /// Tools for the turn that answers `message`, in `conversation`.
    pub(crate) fn for_turn(
        domain: &Domain,
        user: UserId,
        message: Uuid,
        conversation: Uuid,
    ) -> Self {
        Self {
            domain: domain.clone(),
            tz: domain.settings.timezone,
            user,
            message: Some(message),
            conversation: Some(conversation),
            created: Default::default(),
        }
    }

    /// The id of the next item this turn creates. A turn that failed after its tools ran is
    /// run again when the client retries its message, and must not create the same task
    /// twice: within a turn, the n-th creation's id is derived from the user's message and n,
    /// so a rerun's insert meets the row the first run made (and returns it) instead of
    /// adding another. The id stays a UUIDv7 with the message's timestamp. Outside a turn
    /// (MCP), every id is new.
    fn new_id(&self) -> Uuid {
        let Some(message) = self.message else {
            return Uuid::now_v7();
        };
        let n = self
            .created
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        step_id(message, n)
    }

    async fn run(&self, name: &str, arguments: &Value) -> ToolOutcome {
        let result = match name {
            "create_task" => self.create_task(args(arguments)?).await,
            "update_task" => self.update_task(args(arguments)?).await,
            "complete_task" => self.complete_task(args(arguments)?).await,
            "delete_task" => self.delete_task(args(arguments)?).await,
            "list_tasks" => self.list_tasks(args(arguments)?).await,
            "create_event" => self.create_event(args(arguments)?).await,
            "update_event" => self.update_event(args(arguments)?).await,
            "delete_event" => self.delete_event(args(arguments)?).await,
            "list_events" => self.list_events(args(arguments)?).await,
            "remember" => self.remember(args(arguments)?).await,
            "search_memory" => self.search_memory(args(arguments)?).await,
            "create_reminder" => self.create_reminder(args(arguments)?).await,
            "list_reminders" => self.list_reminders(args(arguments)?).await,
            "cancel_reminder" => self.cancel_reminder(args(arguments)?).await,
            "snooze_reminder" => self.snooze_reminder(args(arguments)?).await,
            other => {
                return Err(ToolFailure::new(
                    ErrorCode::NotFound,
                    format!("unknown tool {other:?}"),
                ));
            }
        };
        result.map_err(|e| match e {
            ToolError::Domain(e) => {
                let message = match &e {
                    DomainError::Validation(fields) => format!("invalid arguments: {fields}"),
                    DomainError::NotFound => "no such item".to_owned(),
                    DomainError::Conflict(message) => message.clone(),
                    DomainError::Erased => "the user was erased".to_owned(),
                    DomainError::Unavailable(_)
                    | DomainError::BadGateway(_)
                    | DomainError::RateLimited { .. } => {
                        "the service is temporarily unavailable; try again later".to_owned()
                    }
                    DomainError::Internal(cause) => {
                        tracing::error!(tool = name, error = %cause, "tool failed");
                        "the tool failed unexpectedly".to_owned()
                    }
                };
                ToolFailure::new(e.code(), message)
            }
            ToolError::Refused(code, message) => ToolFailure::new(code, message),
        })
    }
}

/// The id of the `n`-th item a turn answering `message` creates: the same for every run of
/// that turn, a UUIDv7 with the message's timestamp (so items still sort by creation).
fn step_id(message: Uuid, n: u32) -> Uuid {
    let mut seed = [0u8; 20];
    seed[..16].copy_from_slice(message.as_bytes());
    seed[16..].copy_from_slice(&n.to_be_bytes());
    let digest = hmac_sha256::Hash::hash(&seed);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&message.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    uuid::Builder::from_bytes(bytes)
        .with_variant(uuid::Variant::RFC4122)
        .with_version(uuid::Version::SortRand)
        .into_uuid()
}

enum ToolError {
    Domain(DomainError),
    /// Refused before the domain was asked (bad arguments, no single matching item).
    Refused(ErrorCode, String),
}

impl From<DomainError> for ToolError {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

/// Arguments the model got wrong.
impl From<String> for ToolError {
    fn from(message: String) -> Self {
        Self::Refused(ErrorCode::ValidationFailed, message)
    }
}

type ToolResult = Result<Value, ToolError>;

fn args<T: DeserializeOwned>(arguments: &Value) -> Result<T, ToolFailure> {
    let invalid = |message: String| ToolFailure::new(ErrorCode::ValidationFailed, message);
    if !arguments.is_object() {
        return Err(invalid("arguments must be a JSON object".to_owned()));
    }
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        invalid(if path == "." {
            format!("invalid arguments: {}", e.inner())
        } else {
            format!("invalid arguments: {path}: {}", e.inner())
        })
    })
}

/// `null` → `Some(None)` (clear), absent → `None` (leave as is).
fn nullable<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A time as the model writes it: RFC 3339 with an offset, or a local date-time / date in the
/// user's time zone (models often leave the offset out).
pub fn parse_time(text: &str, tz: Tz) -> Result<DateTime<Utc>, String> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let local = [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    })
    .ok_or_else(|| {
        format!("{text:?} is not a date-time (use RFC 3339, e.g. 2026-05-03T17:00:00Z)")
    })?;
    tz.from_local_datetime(&local)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| format!("{text:?} does not exist in time zone {tz}"))
}

fn time(text: Option<String>, field: &str, tz: Tz) -> Result<Option<DateTime<Utc>>, String> {
    text.map(|t| parse_time(&t, tz).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTask {
    title: String,
    description: Option<String>,
    project: Option<String>,
    priority: Option<Priority>,
    status: Option<TaskStatus>,
    due_at: Option<String>,
}

/// Names a task or an event: by id, or by (part of) its title.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ItemRef {
    id: Option<Uuid>,
    title: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateTask {
    id: Option<Uuid>,
    title: Option<String>,
    new_title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    project: Option<Option<String>>,
    status: Option<TaskStatus>,
    #[serde(default, deserialize_with = "nullable")]
    priority: Option<Option<Priority>>,
    #[serde(default, deserialize_with = "nullable")]
    due_at: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListTasks {
    status: Option<TaskStatus>,
    project: Option<String>,
    due_before: Option<String>,
    due_after: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEvent {
    title: String,
    start_at: String,
    end_at: Option<String>,
    duration_minutes: Option<u32>,
    description: Option<String>,
    location: Option<String>,
    #[serde(default)]
    is_all_day: bool,
    recurrence: Option<String>,
    #[serde(default)]
    alerts: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateEvent {
    id: Option<Uuid>,
    title: Option<String>,
    new_title: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    location: Option<Option<String>>,
    start_at: Option<String>,
    end_at: Option<String>,
    is_all_day: Option<bool>,
    #[serde(default, deserialize_with = "nullable")]
    recurrence: Option<Option<String>>,
    alerts: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListEvents {
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Remember {
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchMemory {
    query: String,
    kinds: Option<Vec<DocKind>>,
    limit: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateReminder {
    text: Option<String>,
    due_at: Option<String>,
    task_id: Option<Uuid>,
    event_id: Option<Uuid>,
    /// The task or event by title, when the model has no id.
    task: Option<String>,
    event: Option<String>,
    /// Without `due_at`: this long before the task is due or the event starts.
    minutes_before: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListReminders {
    status: Option<ReminderStatus>,
    limit: Option<u32>,
}

/// Names a reminder: by id, by (part of) its text, or neither for the one that fired last.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReminderRef {
    id: Option<Uuid>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SnoozeReminder {
    id: Option<Uuid>,
    text: Option<String>,
    until: Option<String>,
    minutes: Option<u32>,
}

fn page(limit: Option<u32>) -> Result<PageRequest, String> {
    let limit = limit.unwrap_or(LIST_DEFAULT);
    if limit == 0 || limit > LIST_MAX {
        return Err(format!("limit must be 1 to {LIST_MAX}"));
    }
    PageRequest::parse(Some(limit), None, LIST_MAX).map_err(|e| e.to_string())
}

impl DomainTools {
    async fn create_task(&self, a: CreateTask) -> ToolResult {
        let new = NewTask {
            title: a.title,
            description: a.description,
            project: a.project,
            status: a.status,
            priority: a.priority,
            due_at: time(a.due_at, "due_at", self.tz)?,
        };
        let task = self
            .domain
            .create_task_as(&self.user, self.new_id(), new)
            .await?;
        Ok(json!({ "task": task }))
    }

    async fn find_task(&self, r: &ItemRef, open_only: bool) -> Result<Task, ToolError> {
        if let Some(id) = r.id {
            return Ok(self.domain.get_task(&self.user, id).await?);
        }
        let Some(title) = r.title.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Err("name the task by id or title".to_owned().into());
        };
        let query = TaskQuery {
            filter: TaskFilter {
                open: open_only,
                ..Default::default()
            },
            page: PageRequest::parse(Some(MATCH_POOL), None, MATCH_POOL)?,
        };
        let tasks = self.domain.list_tasks(&self.user, query).await?.items;
        best_match(tasks, |t| &t.title, title, "task")
    }

    async fn update_task(&self, a: UpdateTask) -> ToolResult {
        let task = self
            .find_task(
                &ItemRef {
                    id: a.id,
                    title: a.title,
                },
                false,
            )
            .await?;
        let due_at = match a.due_at {
            Some(Some(t)) => Some(Some(
                parse_time(&t, self.tz).map_err(|e| format!("due_at: {e}"))?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        let patch = TaskPatch {
            title: a.new_title,
            description: a.description,
            project: a.project,
            status: a.status,
            priority: a.priority,
            due_at,
        };
        let task = self.domain.update_task(&self.user, task.id, patch).await?;
        Ok(json!({ "task": task }))
    }

    async fn complete_task(&self, r: ItemRef) -> ToolResult {
        let task = self.find_task(&r, r.id.is_none()).await?;
        let patch = TaskPatch {
            status: Some(TaskStatus::Completed),
            ..Default::default()
        };
        let task = self.domain.update_task(&self.user, task.id, patch).await?;
        Ok(json!({ "task": task }))
    }

    async fn delete_task(&self, r: ItemRef) -> ToolResult {
        let task = self.find_task(&r, false).await?;
        self.domain.delete_task(&self.user, task.id).await?;
        Ok(json!({ "deleted": { "id": task.id, "title": task.title } }))
    }

    async fn list_tasks(&self, a: ListTasks) -> ToolResult {
        let query = TaskQuery {
            filter: TaskFilter {
                status: a.status,
                open: false,
                project: a.project,
                due_before: time(a.due_before, "due_before", self.tz)?,
                due_after: time(a.due_after, "due_after", self.tz)?,
            },
            page: page(a.limit)?,
        };
        let tasks = self.domain.list_tasks(&self.user, query).await?.items;
        Ok(json!({ "count": tasks.len(), "tasks": tasks }))
    }

    async fn create_event(&self, a: CreateEvent) -> ToolResult {
        let start_at = parse_time(&a.start_at, self.tz).map_err(|e| format!("start_at: {e}"))?;
        let end_at = match (time(a.end_at, "end_at", self.tz)?, a.duration_minutes) {
            (Some(end), _) => end,
            (None, Some(0)) => return Err("duration_minutes must be positive".to_owned().into()),
            (None, Some(minutes)) => {
                start_at + Duration::minutes(i64::from(minutes.min(60 * 24 * 366)))
            }
            (None, None) if a.is_all_day => start_at + Duration::days(1),
            (None, None) => start_at + Duration::hours(1),
        };
        let new = NewEvent {
            title: a.title,
            description: a.description,
            location: a.location,
            start_at,
            end_at,
            is_all_day: a.is_all_day,
            recurrence: a.recurrence,
            alerts: a.alerts,
        };
        let event = self
            .domain
            .create_event_as(&self.user, self.new_id(), new)
            .await?;
        Ok(json!({ "event": event }))
    }

    async fn find_event(&self, r: &ItemRef) -> Result<Event, ToolError> {
        if let Some(id) = r.id {
            return Ok(self.domain.get_event(&self.user, id).await?);
        }
        let Some(title) = r.title.as_deref().filter(|t| !t.trim().is_empty()) else {
            return Err("name the event by id or title".to_owned().into());
        };
        let query = EventQuery {
            range: None,
            page: PageRequest::parse(Some(MATCH_POOL), None, MATCH_POOL)?,
        };
        let events = self.domain.list_events(&self.user, query).await?.items;
        best_match(events, |e| &e.title, title, "event")
    }

    async fn update_event(&self, a: UpdateEvent) -> ToolResult {
        let event = self
            .find_event(&ItemRef {
                id: a.id,
                title: a.title,
            })
            .await?;
        let patch = EventPatch {
            title: a.new_title,
            description: a.description,
            location: a.location,
            start_at: time(a.start_at, "start_at", self.tz)?,
            end_at: time(a.end_at, "end_at", self.tz)?,
            is_all_day: a.is_all_day,
            recurrence: a.recurrence,
            alerts: a.alerts,
        };
        let event = self
            .domain
            .update_event(&self.user, event.id, patch)
            .await?;
        Ok(json!({ "event": event }))
    }

    async fn delete_event(&self, r: ItemRef) -> ToolResult {
        let event = self.find_event(&r).await?;
        self.domain.delete_event(&self.user, event.id).await?;
        Ok(json!({ "deleted": { "id": event.id, "title": event.title } }))
    }

    async fn list_events(&self, a: ListEvents) -> ToolResult {
        let from = time(a.from, "from", self.tz)?.unwrap_or_else(Utc::now);
        let to = time(a.to, "to", self.tz)?.unwrap_or(from + Duration::days(7));
        let range = EventRange::parse(Some(from), Some(to))?;
        let query = EventQuery {
            range,
            page: page(a.limit)?,
        };
        let events = self.domain.list_events(&self.user, query).await?.items;
        Ok(json!({ "from": from, "to": to, "count": events.len(), "events": events }))
    }

    async fn remember(&self, a: Remember) -> ToolResult {
        let memory = self
            .domain
            .create_memory_as(
                &self.user,
                self.new_id(),
                NewMemory {
                    content: a.content,
                    kind: Some(MemoryKind::Note),
                },
            )
            .await?;
        Ok(json!({ "memory": memory }))
    }

    async fn search_memory(&self, a: SearchMemory) -> ToolResult {
        let limit = a.limit.unwrap_or(5);
        if limit == 0 || limit > 20 {
            return Err("limit must be 1 to 20".to_owned().into());
        }
        let kinds = a.kinds.unwrap_or_default();
        let hits = self
            .domain
            .search(&self.user, &a.query, &kinds, limit as usize, self.message)
            .await?;
        let results: Vec<Value> = hits
            .into_iter()
            .map(|h| {
                json!({
                    "kind": h.kind, "id": h.id, "score": h.score, "text": h.snippet,
                    "created_at": h.created_at,
                })
            })
            .collect();
        Ok(json!({ "count": results.len(), "results": results }))
    }
}

impl DomainTools {
    async fn create_reminder(&self, a: CreateReminder) -> ToolResult {
        let task = match (a.task_id, a.task.as_deref()) {
            (Some(id), _) => Some(self.domain.get_task(&self.user, id).await?),
            (None, Some(title)) => Some(
                self.find_task(
                    &ItemRef {
                        id: None,
                        title: Some(title.to_owned()),
                    },
                    true,
                )
                .await?,
            ),
            (None, None) => None,
        };
        let (mut task, mut event) = (task, None);
        match (a.event_id, a.event.as_deref()) {
            (Some(id), _) => event = Some(self.domain.get_event(&self.user, id).await?),
            (None, Some(title)) => {
                let named = ItemRef {
                    id: None,
                    title: Some(title.to_owned()),
                };
                match self.find_event(&named).await {
                    Ok(found) => event = Some(found),
                    // "remind me about the report an hour before": a task may be meant.
                    Err(ToolError::Refused(ErrorCode::NotFound, message)) if task.is_none() => {
                        match self.find_task(&named, true).await {
                            Ok(found) => task = Some(found),
                            Err(_) => return Err(ToolError::Refused(ErrorCode::NotFound, message)),
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            (None, None) => {}
        }
        let before = Duration::minutes(i64::from(a.minutes_before.unwrap_or(0).min(40_320)));
        let now = Utc::now();
        let due_at = match (time(a.due_at, "due_at", self.tz)?, &task, &event) {
            (Some(due), _, _) => due,
            (None, Some(task), _) => task
                .due_at
                .map(|due| due - before)
                .ok_or_else(|| format!("the task {:?} has no due time: give due_at", task.title))?,
            (None, None, Some(event)) => event
                .next_start_after(self.tz, now)
                .map(|start| start - before)
                .ok_or_else(|| format!("the event {:?} has no start ahead", event.title))?,
            (None, None, None) => {
                return Err("say when: due_at, or a task or event to remind of"
                    .to_owned()
                    .into());
            }
        };
        let text = a
            .text
            .filter(|t| !t.trim().is_empty())
            .or_else(|| task.as_ref().map(|t| t.title.clone()))
            .or_else(|| event.as_ref().map(|e| e.title.clone()))
            .unwrap_or_default();
        let new = NewReminder {
            text,
            due_at,
            task_id: task.map(|t| t.id),
            event_id: event.map(|e| e.id),
            conversation_id: self.conversation,
        };
        let reminder = self
            .domain
            .create_reminder_as(&self.user, self.new_id(), new)
            .await?;
        Ok(json!({ "reminder": reminder }))
    }

    async fn list_reminders(&self, a: ListReminders) -> ToolResult {
        let query = ReminderQuery {
            status: Some(a.status.unwrap_or(ReminderStatus::Scheduled)),
            from: None,
            to: None,
            page: page(a.limit)?,
        };
        let reminders = self.domain.list_reminders(&self.user, query).await?.items;
        Ok(json!({ "count": reminders.len(), "reminders": reminders }))
    }

    /// The reminder a call names: by id, by text among those still to fire (or fired and
    /// not dismissed), or the one that fired last.
    async fn find_reminder(
        &self,
        id: Option<Uuid>,
        text: Option<&str>,
    ) -> Result<Reminder, ToolError> {
        if let Some(id) = id {
            return Ok(self.domain.get_reminder(&self.user, id).await?);
        }
        let mut pool = Vec::new();
        for status in [ReminderStatus::Scheduled, ReminderStatus::Fired] {
            let query = ReminderQuery {
                status: Some(status),
                from: None,
                to: None,
                page: PageRequest::parse(Some(MATCH_POOL), None, MATCH_POOL)?,
            };
            pool.extend(self.domain.list_reminders(&self.user, query).await?.items);
        }
        match text.filter(|t| !t.trim().is_empty()) {
            Some(text) => best_match(pool, |r| &r.text, text, "reminder"),
            None => pool
                .into_iter()
                .filter(|r| r.status == ReminderStatus::Fired)
                .max_by_key(|r| r.fired_at)
                .ok_or_else(|| {
                    "no reminder has fired to snooze; name one by id or text"
                        .to_owned()
                        .into()
                }),
        }
    }

    async fn cancel_reminder(&self, r: ReminderRef) -> ToolResult {
        if r.id.is_none() && r.text.as_deref().is_none_or(|t| t.trim().is_empty()) {
            return Err("name the reminder by id or text".to_owned().into());
        }
        let reminder = self.find_reminder(r.id, r.text.as_deref()).await?;
        let status = if reminder.status == ReminderStatus::Scheduled {
            ReminderStatus::Cancelled
        } else {
            ReminderStatus::Dismissed
        };
        let reminder = self
            .domain
            .update_reminder(&self.user, reminder.id, ReminderPatch::status(status), None)
            .await?;
        Ok(json!({ "reminder": reminder }))
    }

    async fn snooze_reminder(&self, a: SnoozeReminder) -> ToolResult {
        let until = match (time(a.until, "until", self.tz)?, a.minutes) {
            (Some(until), _) => until,
            (None, Some(minutes)) if minutes > 0 => {
                Utc::now() + Duration::minutes(i64::from(minutes.min(40_320)))
            }
            _ => {
                return Err("say until when: until, or minutes from now"
                    .to_owned()
                    .into());
            }
        };
        let reminder = self.find_reminder(a.id, a.text.as_deref()).await?;
        let reminder = self
            .domain
            .update_reminder(&self.user, reminder.id, ReminderPatch::snooze(until), None)
            .await?;
        Ok(json!({ "reminder": reminder }))
    }
}

fn words(text: &str) -> Vec<String> {
    const FILLER: &[&str] = &["the", "a", "an", "my", "task", "event", "to", "todo"];
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && !FILLER.contains(w))
        .map(str::to_owned)
        .collect()
}

fn trigrams(words: &[String]) -> Vec<String> {
    let mut grams: Vec<String> = words
        .iter()
        .flat_map(|w| {
            let chars: Vec<char> = format!(" {w} ").chars().collect();
            chars
                .windows(3)
                .map(|g| g.iter().collect::<String>())
                .collect::<Vec<_>>()
        })
        .collect();
    grams.sort();
    grams.dedup();
    grams
}

fn dice(a: &[String], b: &[String]) -> f64 {
    if a.is_empty() || b.is_empty() {
        return 0.0;
    }
    let common = a.iter().filter(|x| b.contains(x)).count();
    2.0 * common as f64 / (a.len() + b.len()) as f64
}

/// How well `query` names `title`, from 0 to 1: every query word in the title counts most;
/// character trigrams forgive typos and plurals.
pub fn title_score(query: &str, title: &str) -> f64 {
    let (q, t) = (words(query), words(title));
    if q.is_empty() || t.is_empty() {
        return 0.0;
    }
    if q == t {
        return 1.0;
    }
    let contained = q.iter().all(|w| t.contains(w));
    let word_score = dice(&q, &t);
    let gram_score = dice(&trigrams(&q), &trigrams(&t));
    let score = word_score.max(gram_score);
    if contained { score.max(0.75) } else { score }
}

/// The one item whose title best matches `query`, or an error the model can act on.
fn best_match<T>(
    items: Vec<T>,
    title: impl Fn(&T) -> &str,
    query: &str,
    what: &str,
) -> Result<T, ToolError> {
    const ENOUGH: f64 = 0.5;
    let mut scored: Vec<(f64, T)> = items
        .into_iter()
        .map(|item| (title_score(query, title(&item)), item))
        .filter(|(score, _)| *score >= ENOUGH)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    match scored.as_slice() {
        [] => Err(ToolError::Refused(
            ErrorCode::NotFound,
            format!("no {what} matches {query:?}"),
        )),
        [(best, _), (second, other), ..]
            if best - second < 0.05 && title(&scored[0].1) != title(other) =>
        {
            let names: Vec<String> = scored
                .iter()
                .take(5)
                .map(|(_, item)| format!("{:?}", title(item)))
                .collect();
            Err(format!(
                "several {what}s match {query:?}: {}; name one exactly or by id",
                names.join(", ")
            )
            .into())
        }
        _ => Ok(scored.swap_remove(0).1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_turns_item_ids_are_the_same_on_every_run_and_distinct_within_it() {
        let message = Uuid::now_v7();
        let first: Vec<Uuid> = (0..3).map(|n| step_id(message, n)).collect();
        let again: Vec<Uuid> = (0..3).map(|n| step_id(message, n)).collect();
        assert_eq!(first, again);
        assert_ne!(first[0], first[1]);
        assert_ne!(first[1], first[2]);
        assert_ne!(
            step_id(Uuid::now_v7(), 0),
            first[0],
            "another message, other ids"
        );
        for id in &first {
            assert_eq!(id.get_version(), Some(uuid::Version::SortRand));
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(
                id.as_bytes()[..6],
                message.as_bytes()[..6],
                "the message's time"
            );
        }
    }

    #[test]
    fn times_with_and_without_offsets() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        assert_eq!(
            parse_time("2026-05-03T17:00:00Z", berlin).unwrap(),
            "2026-05-03T17:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-05-03T17:00:00", berlin).unwrap(),
            "2026-05-03T15:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            parse_time("2026-12-03", berlin).unwrap(),
            "2026-12-02T23:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(parse_time("next friday", berlin).is_err());
        // 02:30 does not exist when clocks spring forward.
        assert!(parse_time("2026-03-29T02:30", berlin).is_err());
    }

    #[test]
    fn titles_match_loosely() {
        assert!(title_score("milk", "Buy milk") >= 0.75);
        assert!(title_score("the report", "Finish the quarterly report") >= 0.5);
        assert!(title_score("call mom", "Call Mom") == 1.0);
        assert!(title_score("buy mlik", "Buy milk") >= 0.5);
        assert!(title_score("dentist", "Buy milk") < 0.5);
        assert_eq!(title_score("", "Buy milk"), 0.0);
    }

    #[test]
    fn best_match_refuses_ambiguity() {
        let items = vec!["Buy milk".to_owned(), "Buy milk chocolate".to_owned()];
        assert!(best_match(items.clone(), |s| s, "buy milk", "task").is_ok());
        let twins = vec![
            "Call Sam".to_owned(),
            "Call Sam back".to_owned(),
            "Call Ana".to_owned(),
        ];
        match best_match(twins, |s| s, "sam", "task") {
            Err(ToolError::Refused(ErrorCode::ValidationFailed, m)) => {
                assert!(m.contains("several tasks"), "{m}")
            }
            _ => panic!("ambiguous titles must be refused"),
        }
        assert!(matches!(
            best_match(items, |s| s, "dentist", "task"),
            Err(ToolError::Refused(ErrorCode::NotFound, _))
        ));
    }
}
