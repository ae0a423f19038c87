//! The ports the domain needs from the outside: storage, the event bus and the clock. `db`
//! implements the repositories; tests and other backends can supply their own.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::conversation::{Conversation, ConversationQuery, Message, MessageQuery};
use super::error::DomainResult;
use super::event::{Event, EventRange};
use super::memory::{Memory, MemoryQuery};
use super::page::PageRequest;
use super::task::{Task, TaskQuery};
use super::user::User;
use super::values::UserId;

/// A change to apply to a stored entity, read and written in one transaction. It may refuse
/// (e.g. a validation error), and then nothing is written.
pub type Mutation<T> = Box<dyn FnOnce(T) -> DomainResult<T> + Send>;

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates the user's row if it does not exist yet, and returns it.
    async fn ensure(&self, user: &UserId) -> DomainResult<User>;
    /// Deletes the user and everything they own; `false` when there was no such user.
    async fn erase(&self, user: &UserId) -> DomainResult<bool>;
}

#[async_trait]
pub trait TaskRepository: Send + Sync {
    async fn insert(&self, user: &UserId, task: &Task) -> DomainResult<()>;
    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Task>>;
    /// Up to `page.fetch_limit()` tasks, newest first, after the page's cursor.
    async fn list(&self, user: &UserId, query: &TaskQuery) -> DomainResult<Vec<Task>>;
    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Task>,
    ) -> DomainResult<Option<Task>>;
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
}

#[async_trait]
pub trait EventRepository: Send + Sync {
    async fn insert(&self, user: &UserId, event: &Event) -> DomainResult<()>;
    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Event>>;
    /// Every event (a series as itself), by `(startAt, id)`, after the page's cursor.
    async fn list(&self, user: &UserId, page: &PageRequest) -> DomainResult<Vec<Event>>;
    /// Non-recurring events overlapping the range, by `(startAt, id)`, after the page's cursor.
    async fn list_single_in_range(
        &self,
        user: &UserId,
        range: &EventRange,
        page: &PageRequest,
    ) -> DomainResult<Vec<Event>>;
    /// Recurring series that start before `before` (at most `limit`).
    async fn list_series_starting_before(
        &self,
        user: &UserId,
        before: DateTime<Utc>,
        limit: i64,
    ) -> DomainResult<Vec<Event>>;
    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Event>,
    ) -> DomainResult<Option<Event>>;
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
}

#[async_trait]
pub trait MemoryRepository: Send + Sync {
    async fn insert(&self, user: &UserId, memory: &Memory) -> DomainResult<()>;
    async fn list(&self, user: &UserId, query: &MemoryQuery) -> DomainResult<Vec<Memory>>;
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
}

#[async_trait]
pub trait ConversationRepository: Send + Sync {
    async fn insert(&self, user: &UserId, conversation: &Conversation) -> DomainResult<()>;
    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Conversation>>;
    /// Most recent activity first, after the page's cursor.
    async fn list(
        &self,
        user: &UserId,
        query: &ConversationQuery,
    ) -> DomainResult<Vec<Conversation>>;
    /// Deletes the conversation with its messages; `false` when there was no such conversation.
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
    /// Stores a message and bumps the conversation's activity; `None` when the conversation is
    /// not the user's. A message with a `clientMessageId` the user already used is a conflict
    /// reported as `Err(DomainError::Conflict)`.
    async fn append_message(
        &self,
        user: &UserId,
        message: &Message,
    ) -> DomainResult<Option<Message>>;
    /// Up to `limit + 1` messages of the conversation older than `before`, newest first;
    /// `None` when the conversation (or `before`) is not the user's.
    async fn list_messages(
        &self,
        user: &UserId,
        conversation: Uuid,
        query: &MessageQuery,
    ) -> DomainResult<Option<Vec<Message>>>;
}

/// Something whose health `/readyz` reports.
#[async_trait]
pub trait HealthCheck: Send + Sync {
    /// Name of the dependency in the readiness report, e.g. `database`.
    fn name(&self) -> &'static str;
    async fn is_healthy(&self) -> bool;
}

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}

/// Wall-clock time, truncated to the microseconds PostgreSQL stores, so that what the API
/// returns on write equals what it returns on read.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        let now = Utc::now();
        DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }
}
