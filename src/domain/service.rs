//! The domain's use cases. Every method acts as one signed-in user and only on their data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use tokio::sync::Notify;
use uuid::Uuid;

use super::assistant::{Assistant, DocKind, SemanticIndex};
use super::bus::{Change, DomainEvent, EventBus, Signal};
use super::conversation::{
    Conversation, ConversationQuery, MESSAGE_TEXT_MAX, Message, MessageQuery, NewConversation,
    NewMessage,
};
use super::error::{DomainError, DomainResult};
use super::event::{Budget, Event, EventPatch, EventQuery, NewEvent, TooCostly};
use super::limits::RateLimiter;
use super::memory::{Memory, MemoryQuery, NewMemory};
use super::page::Page;
use super::ports::{
    Clock, ConversationRepository, EventRepository, LexicalIndex, MemoryRepository, Outbox,
    RangeQuery, RangeRows, ReminderRepository, TaskRepository, TurnReader, UserRepository,
};
use super::recall::{Legs, RecallQuery, SearchHit};
use super::task::{NewTask, PROJECT_MAX, Task, TaskPatch, TaskQuery};
use super::turns::Turns;
use super::user::User;
use super::values::{UserId, optional_text};

/// At most this many recurring series are expanded in one range listing.
pub(super) const MAX_SERIES_PER_LISTING: i64 = 1_000;

/// One page of a range listing: the single events and the occurrences of the series in the
/// range, by `(startAt, id)`, after the page's cursor; and the series that could not be
/// expanded within the listing's budget (left out of the page).
pub(crate) fn events_in_range(
    rows: RangeRows,
    query: &RangeQuery,
    tz: chrono_tz::Tz,
) -> (Page<Event>, Vec<Uuid>) {
    let RangeQuery { range, page, .. } = *query;
    let RangeRows {
        single: mut events,
        series,
    } = rows;
    let limit = usize::try_from(page.fetch_limit()).unwrap_or(usize::MAX);
    let mut budget = Budget::for_listing();
    let mut too_costly = Vec::new();
    for event in &series {
        match event.occurrences(tz, range.from, range.to, page.after, limit, &mut budget) {
            Ok(occurrences) => events.extend(occurrences),
            Err(TooCostly(id)) => too_costly.push(id),
        }
    }
    if !too_costly.is_empty() {
        tracing::warn!(
            series = ?too_costly,
            examined = budget.examined(),
            "recurring events left out of a listing: too costly to expand over its range"
        );
    }
    events.sort_by_key(|a| (a.start_at, a.id));
    events.truncate(limit);
    (
        Page::from_rows(events, page.limit, Event::cursor),
        too_costly,
    )
}

/// Expands a range listing on the blocking pool: the walk over recurrence rules is CPU work
/// that must not hold up the request workers.
pub(super) async fn expand_range(
    rows: RangeRows,
    query: RangeQuery,
    tz: chrono_tz::Tz,
) -> DomainResult<(Page<Event>, Vec<Uuid>)> {
    tokio::task::spawn_blocking(move || events_in_range(rows, &query, tz))
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("event expansion failed: {e}")))
}

/// Everything the domain needs, injected at start.
#[derive(Clone)]
pub struct Ports {
    pub users: Arc<dyn UserRepository>,
    pub tasks: Arc<dyn TaskRepository>,
    pub events: Arc<dyn EventRepository>,
    pub memories: Arc<dyn MemoryRepository>,
    pub conversations: Arc<dyn ConversationRepository>,
    pub reminders: Arc<dyn ReminderRepository>,
    pub push: Arc<dyn super::push::PushRepository>,
    pub feeds: Arc<dyn super::ports::FeedRepository>,
    pub pusher: Arc<dyn super::push::PushGateway>,
    pub lexical: Arc<dyn LexicalIndex>,
    pub turn_reads: Arc<dyn TurnReader>,
    pub outbox: Arc<dyn Outbox>,
    pub assistant: Arc<dyn Assistant>,
    pub index: Arc<dyn SemanticIndex>,
    pub bus: Arc<dyn EventBus>,
    pub clock: Arc<dyn Clock>,
    pub meter: Arc<dyn super::ports::Meter>,
}

/// The domain's own settings (from the `ai` section of the configuration).
#[derive(Debug, Clone)]
pub struct Settings {
    /// The user's wall clock: tools read times without an offset in this zone.
    pub timezone: chrono_tz::Tz,
    /// Earlier messages of the conversation given to the model.
    pub history_messages: u32,
    /// Open tasks and upcoming events given to the model (each).
    pub context_items: u32,
    /// Recalled memories given to the model.
    pub recall_limit: usize,
    /// Longest chat message accepted, in characters (at most [`MESSAGE_TEXT_MAX`]).
    pub max_text_chars: usize,
    /// Chat messages a user may send per hour, on every edge together (0: unlimited).
    pub chat_sends_per_hour: u32,
}

/// Open tasks and upcoming events given to the model, at most (`ai.context_items`).
pub const CONTEXT_ITEMS_MAX: u32 = 200;
/// Earlier messages given to the model, at most (`ai.history_messages`).
pub const HISTORY_MESSAGES_MAX: u32 = 200;

impl Default for Settings {
    fn default() -> Self {
        Self {
            timezone: chrono_tz::UTC,
            history_messages: 20,
            context_items: 20,
            recall_limit: 5,
            max_text_chars: MESSAGE_TEXT_MAX,
            chat_sends_per_hour: 100,
        }
    }
}

/// Longest search query accepted.
pub const SEARCH_QUERY_MAX: usize = 1_000;
pub const SEARCH_LIMIT_MAX: usize = 50;

#[derive(Clone)]
pub struct Domain {
    pub(crate) ports: Ports,
    pub(crate) settings: Settings,
    known_users: Arc<SignIns>,
    index_signal: Arc<Notify>,
    reminder_signal: Arc<Notify>,
    push_signal: Arc<Notify>,
    pub(crate) turns: Arc<Turns>,
    pub(crate) sends: Arc<RateLimiter>,
    pub(crate) feed_reads: Arc<RateLimiter>,
}

impl Domain {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Self {
            ports,
            known_users: Arc::new(SignIns::new(Duration::from_secs(300), 100_000)),
            index_signal: Arc::new(Notify::new()),
            reminder_signal: Arc::new(Notify::new()),
            push_signal: Arc::new(Notify::new()),
            turns: Arc::new(Turns::default()),
            sends: Arc::new(RateLimiter::new(settings.chat_sends_per_hour)),
            feed_reads: Arc::new(RateLimiter::new(super::calendar::FEED_READS_PER_HOUR)),
            settings,
        }
    }

    /// Woken after every write that queued index work, so the indexer picks it up at once.
    pub fn index_signal(&self) -> Arc<Notify> {
        self.index_signal.clone()
    }

    pub(crate) fn signal_index(&self) {
        self.index_signal.notify_one();
    }

    /// Woken after every write that may have changed when the next reminder is due, so the
    /// scheduler sleeps until the right time.
    pub fn reminder_signal(&self) -> Arc<Notify> {
        self.reminder_signal.clone()
    }

    pub(crate) fn signal_reminders(&self) {
        self.reminder_signal.notify_one();
    }

    /// Woken when fired reminders queued pushes.
    pub fn push_signal(&self) -> Arc<Notify> {
        self.push_signal.clone()
    }

    /// The turns queued and running in this process.
    pub fn turns(&self) -> &Arc<Turns> {
        &self.turns
    }

    pub fn bus(&self) -> &Arc<dyn EventBus> {
        &self.ports.bus
    }

    pub(crate) fn publish(&self, user: &UserId, change: Change) {
        self.publish_from(user, change, None);
    }

    pub(crate) fn publish_from(&self, user: &UserId, change: Change, origin: Option<Arc<str>>) {
        self.ports.bus.publish(DomainEvent {
            user_id: user.clone(),
            change,
            origin,
            written: None,
        });
    }

    /// Publishes a change whose payload the caller has written already (and used).
    pub(crate) fn publish_written(
        &self,
        user: &UserId,
        change: Change,
        origin: Option<Arc<str>>,
        payload: Box<RawValue>,
    ) {
        self.ports.bus.publish(DomainEvent {
            user_id: user.clone(),
            change,
            origin,
            written: Some(payload),
        });
    }

    // ----- users -----------------------------------------------------------------------------

    /// Records that the user was seen: their row is created on first sight. Cheap when the
    /// user was seen recently. `since` is when the session began (its token was issued); a
    /// session older than the user's erasure is refused (`DomainError::Erased`).
    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn sign_in(&self, user: &UserId, since: DateTime<Utc>) -> DomainResult<()> {
        if self.known_users.contains(user) {
            return Ok(());
        }
        self.ports.users.ensure(user, since).await?;
        self.known_users.insert(user.clone());
        Ok(())
    }

    pub async fn me(&self, user: &UserId, since: DateTime<Utc>) -> DomainResult<User> {
        let me = self.ports.users.ensure(user, since).await?;
        self.known_users.insert(user.clone());
        Ok(me)
    }

    /// Changes the user's time zone and daily agenda. Turning the agenda on (or moving it, or
    /// changing the zone) schedules its next firing at once; turning it off cancels it.
    #[tracing::instrument(level = "debug", skip(self, patch), fields(user = %user))]
    pub async fn update_me(
        &self,
        user: &UserId,
        since: DateTime<Utc>,
        patch: super::user::MePatch,
    ) -> DomainResult<User> {
        let me = self.me(user, since).await?;
        let settings = patch.apply(&me)?;
        let now = self.ports.clock.now();
        let tz = settings.timezone.unwrap_or(self.settings.timezone);
        let agenda = settings.agenda_at.map(|at| {
            super::reminder::agenda_reminder(super::reminder::next_agenda(tz, at, now), now)
        });
        let me = self
            .ports
            .users
            .update_settings(user, settings, agenda)
            .await?;
        self.signal_reminders();
        Ok(me)
    }

    /// Deletes the user's every row (and, through the outbox, every vector), then ends their
    /// sessions everywhere: sockets are disconnected and turns in flight cancelled on every
    /// instance. A write racing the erasure fails (`DomainError::Erased`) instead of bringing
    /// the user back.
    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn erase_user(&self, user: &UserId) -> DomainResult<bool> {
        self.known_users.remove(user);
        let erased = self.ports.users.erase(user, self.ports.clock.now()).await?;
        self.known_users.remove(user);
        let turns = self.turns.cancel_user(user);
        self.signal_index();
        // The other instances end the user's sign-ins and turns when they hear of it.
        self.publish(user, Change::UserErased);
        tracing::info!(turns, "erased user's turns cancelled here");
        tracing::info!(erased, "user erased");
        Ok(erased)
    }

    /// Handles a webhook delivery once: runs `handle` unless the delivery `id` from `source`
    /// was handled before (a replay), within `keep`. A delivery whose handling fails is
    /// forgotten, so that the sender's retry runs it again. `false` for a replay.
    pub async fn once<F>(
        &self,
        source: &str,
        id: &str,
        keep: Duration,
        handle: F,
    ) -> DomainResult<bool>
    where
        F: Future<Output = DomainResult<()>>,
    {
        if !self.ports.users.claim_delivery(source, id, keep).await? {
            return Ok(false);
        }
        if let Err(e) = handle.await {
            if let Err(release) = self.ports.users.release_delivery(source, id).await {
                tracing::warn!(error = %release, "a failed webhook delivery stays recorded");
            }
            return Err(e);
        }
        Ok(true)
    }

    /// Users whose row is known to exist; other instances' erasures are told to it.
    /// Cancels the turn running in the user's conversation, here or on another instance.
    pub fn cancel_turn(&self, user: &UserId, conversation: Uuid) {
        self.turns.cancel(user, conversation);
        self.publish(user, Change::CancelTurn(conversation));
    }

    /// Acts on what another instance signalled: a turn to cancel, an erased user.
    pub fn receive(&self, signal: &Signal) {
        match signal {
            Signal::Cancel { user, conversation } => {
                self.turns.cancel(user, *conversation);
            }
            Signal::Erased { user } => {
                self.known_users.remove(user);
                let turns = self.turns.cancel_user(user);
                tracing::info!(user = %user, turns, "erased user's turns cancelled here");
            }
            Signal::Event(_) => {}
        }
    }

    // ----- tasks -----------------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn create_task(&self, user: &UserId, new: NewTask) -> DomainResult<Task> {
        self.create_task_as(user, Uuid::now_v7(), new).await
    }

    /// Creates the task under `id`; when the user already has a task with this id (a rerun of
    /// the turn step that made it), that task is the result and nothing is written.
    pub(crate) async fn create_task_as(
        &self,
        user: &UserId,
        id: Uuid,
        new: NewTask,
    ) -> DomainResult<Task> {
        let task = new.validate(id, self.ports.clock.now())?;
        if let Err(e) = self.ports.tasks.insert(user, &task).await {
            return made_before(e, self.ports.tasks.get(user, id)).await;
        }
        self.signal_index();
        self.publish(user, Change::TaskCreated(task.clone()));
        Ok(task)
    }

    pub async fn get_task(&self, user: &UserId, id: Uuid) -> DomainResult<Task> {
        self.ports
            .tasks
            .get(user, id)
            .await?
            .ok_or(DomainError::NotFound)
    }

    pub async fn list_tasks(
        &self,
        user: &UserId,
        mut query: TaskQuery,
    ) -> DomainResult<Page<Task>> {
        // The filter is text from a client like a task's own project.
        query.filter.project = optional_text(query.filter.project.as_deref(), PROJECT_MAX)
            .map_err(|problem| DomainError::invalid("project", problem))?;
        let rows = self.ports.tasks.list(user, &query).await?;
        Ok(Page::from_rows(rows, query.page.limit, Task::cursor))
    }

    #[tracing::instrument(level = "debug", skip(self, patch), fields(user = %user))]
    pub async fn update_task(
        &self,
        user: &UserId,
        id: Uuid,
        patch: TaskPatch,
    ) -> DomainResult<Task> {
        let now = self.ports.clock.now();
        // Only a new due time can bring its reminders earlier than the scheduler's next wake.
        let moves_reminders = patch.due_at.is_some();
        let task = self
            .ports
            .tasks
            .update(user, id, Box::new(move |task| patch.apply(task, now)))
            .await?
            .ok_or(DomainError::NotFound)?;
        self.signal_index();
        if moves_reminders {
            self.signal_reminders();
        }
        self.publish(user, Change::TaskUpdated(task.clone()));
        Ok(task)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn delete_task(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        if !self.ports.tasks.delete(user, id).await? {
            return Err(DomainError::NotFound);
        }
        self.signal_index();
        self.publish(user, Change::TaskDeleted(id));
        Ok(())
    }

    // ----- events ----------------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn create_event(&self, user: &UserId, new: NewEvent) -> DomainResult<Event> {
        self.create_event_as(user, Uuid::now_v7(), new).await
    }

    /// [`Self::create_task_as`], for an event (and its alerts' reminders).
    pub(crate) async fn create_event_as(
        &self,
        user: &UserId,
        id: Uuid,
        new: NewEvent,
    ) -> DomainResult<Event> {
        let event = new.validate(id, self.ports.clock.now())?;
        if let Err(e) = self.ports.events.insert(user, &event).await {
            return made_before(e, self.ports.events.get(user, id)).await;
        }
        self.signal_index();
        if !event.alerts.is_empty() {
            self.signal_reminders();
        }
        self.publish(user, Change::EventCreated(event.clone()));
        Ok(event)
    }

    pub async fn get_event(&self, user: &UserId, id: Uuid) -> DomainResult<Event> {
        self.ports
            .events
            .get(user, id)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// Without a range: every event, a recurring one as its series. With a range: the events
    /// and the occurrences of recurring events that overlap it, by start time.
    pub async fn list_events(&self, user: &UserId, query: EventQuery) -> DomainResult<Page<Event>> {
        let page = query.page;
        let Some(range) = query.range else {
            let rows = self.ports.events.list(user, &page).await?;
            return Ok(Page::from_rows(rows, page.limit, Event::cursor));
        };
        let query = RangeQuery {
            range,
            page,
            max_series: MAX_SERIES_PER_LISTING,
        };
        let rows = self.ports.events.list_in_range(user, &query).await?;
        let (page, too_costly) = expand_range(rows, query, self.settings.timezone).await?;
        if let Some(series) = too_costly.first() {
            return Err(DomainError::invalid(
                "range",
                format!(
                    "the recurring event {series} has too many occurrences to expand over \
                     this range; ask for a shorter or later range, or change that event's \
                     recurrence"
                ),
            ));
        }
        Ok(page)
    }

    #[tracing::instrument(level = "debug", skip(self, patch), fields(user = %user))]
    pub async fn update_event(
        &self,
        user: &UserId,
        id: Uuid,
        patch: EventPatch,
    ) -> DomainResult<Event> {
        let now = self.ports.clock.now();
        let moves_reminders =
            patch.start_at.is_some() || patch.recurrence.is_some() || patch.alerts.is_some();
        let event = self
            .ports
            .events
            .update(user, id, Box::new(move |event| patch.apply(event, now)))
            .await?
            .ok_or(DomainError::NotFound)?;
        self.signal_index();
        if moves_reminders {
            self.signal_reminders();
        }
        self.publish(user, Change::EventUpdated(event.clone()));
        Ok(event)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(user = %user))]
    pub async fn delete_event(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        if !self.ports.events.delete(user, id).await? {
            return Err(DomainError::NotFound);
        }
        self.signal_index();
        self.publish(user, Change::EventDeleted(id));
        Ok(())
    }

    // ----- memories --------------------------------------------------------------------------

    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn create_memory(&self, user: &UserId, new: NewMemory) -> DomainResult<Memory> {
        self.create_memory_as(user, Uuid::now_v7(), new).await
    }

    /// [`Self::create_task_as`], for a memory.
    pub(crate) async fn create_memory_as(
        &self,
        user: &UserId,
        id: Uuid,
        new: NewMemory,
    ) -> DomainResult<Memory> {
        let memory = new.validate(id, self.ports.clock.now())?;
        if let Err(e) = self.ports.memories.insert(user, &memory).await {
            return made_before(e, self.ports.memories.get(user, id)).await;
        }
        self.signal_index();
        Ok(memory)
    }

    pub async fn list_memories(
        &self,
        user: &UserId,
        query: MemoryQuery,
    ) -> DomainResult<Page<Memory>> {
        let rows = self.ports.memories.list(user, &query).await?;
        Ok(Page::from_rows(rows, query.page.limit, Memory::cursor))
    }

    pub async fn delete_memory(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        if !self.ports.memories.delete(user, id).await? {
            return Err(DomainError::NotFound);
        }
        self.signal_index();
        Ok(())
    }

    // ----- conversations ---------------------------------------------------------------------

    pub async fn create_conversation(
        &self,
        user: &UserId,
        new: NewConversation,
    ) -> DomainResult<Conversation> {
        let conversation = new.validate(Uuid::now_v7(), self.ports.clock.now())?;
        self.ports.conversations.insert(user, &conversation).await?;
        Ok(conversation)
    }

    pub async fn list_conversations(
        &self,
        user: &UserId,
        query: ConversationQuery,
    ) -> DomainResult<Page<Conversation>> {
        let rows = self.ports.conversations.list(user, &query).await?;
        Ok(Page::from_rows(
            rows,
            query.page.limit,
            Conversation::cursor,
        ))
    }

    pub async fn delete_conversation(&self, user: &UserId, id: Uuid) -> DomainResult<()> {
        if !self.ports.conversations.delete(user, id).await? {
            return Err(DomainError::NotFound);
        }
        self.signal_index();
        Ok(())
    }

    /// Stores a message in one of the user's conversations.
    #[tracing::instrument(level = "debug", skip(self, new), fields(user = %user))]
    pub async fn append_message(
        &self,
        user: &UserId,
        conversation: Uuid,
        new: NewMessage,
    ) -> DomainResult<Message> {
        let message = new.validate(Uuid::now_v7(), conversation, self.ports.clock.now())?;
        self.ports
            .conversations
            .append_message(user, &message)
            .await?
            .ok_or(DomainError::NotFound)
    }

    /// A page of a conversation's messages, oldest → newest; `nextCursor` is the id to pass
    /// as `before` for the page of older messages.
    pub async fn list_messages(
        &self,
        user: &UserId,
        conversation: Uuid,
        query: MessageQuery,
    ) -> DomainResult<Page<Message>> {
        let mut rows = self
            .ports
            .conversations
            .list_messages(user, conversation, &query)
            .await?
            .ok_or(DomainError::NotFound)?;
        let limit = query.limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|oldest| oldest.id.to_string())
        } else {
            None
        };
        rows.reverse();
        Ok(Page {
            items: rows,
            next_cursor,
        })
    }
}

impl Domain {
    /// Search over the user's own tasks, events, memories and messages, by meaning and by
    /// words (see `recall`). `exclude` is never returned (the message being answered).
    pub async fn search(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
        exclude: Option<Uuid>,
    ) -> DomainResult<Vec<SearchHit>> {
        let query = super::values::required_text(query, SEARCH_QUERY_MAX)
            .map_err(|problem| DomainError::invalid("q", problem))?;
        let query = query.as_str();
        if limit == 0 || limit > SEARCH_LIMIT_MAX {
            return Err(DomainError::invalid(
                "limit",
                format!("must be 1 to {SEARCH_LIMIT_MAX}"),
            ));
        }
        self.recall(
            user,
            RecallQuery {
                text: query,
                kinds,
                limit,
                exclude,
                legs: Legs::Both,
                fusion: None,
            },
        )
        .await
    }
}

/// Users whose row is known to exist, so that sign-in costs no query on every request.
pub struct SignIns {
    ttl: Duration,
    capacity: usize,
    seen: Mutex<HashMap<UserId, Instant>>,
}

impl SignIns {
    fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            seen: Mutex::new(HashMap::new()),
        }
    }

    fn contains(&self, user: &UserId) -> bool {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.get(user).is_some_and(|at| at.elapsed() < self.ttl)
    }

    fn insert(&self, user: UserId) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= self.capacity {
            seen.clear();
        }
        seen.insert(user, Instant::now());
    }

    /// Forgets the user (erased here or on another instance): their next sign-in checks.
    pub fn remove(&self, user: &UserId) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        seen.remove(user);
    }
}

/// What a `create_*_as` returns when its insert failed with `error`: the item already stored
/// under its id for this user (`found`), made by an earlier run of the same turn step, or
/// the error itself. `found` runs only after a conflict.
pub(crate) async fn made_before<T>(
    error: DomainError,
    found: impl std::future::Future<Output = DomainResult<Option<T>>>,
) -> DomainResult<T> {
    match error {
        DomainError::Conflict(_) => found.await?.ok_or(error),
        error => Err(error),
    }
}
