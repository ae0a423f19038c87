//! The ports the domain needs from the outside: storage, the event bus and the clock. `db`
//! implements the repositories; tests and other backends can supply their own.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::assistant::{DocKind, Document};
use super::conversation::{Conversation, ConversationQuery, Message, MessageQuery};
use super::error::DomainResult;
use super::event::{Event, EventRange};
use super::memory::{Memory, MemoryQuery};
use super::page::PageRequest;
use super::reminder::{Reminder, ReminderQuery};
use super::task::{Task, TaskQuery};
use super::user::User;
use super::values::UserId;

/// A change to apply to a stored entity, read and written in one transaction. It may refuse
/// (e.g. a validation error), and then nothing is written.
pub type Mutation<T> = Box<dyn FnOnce(T) -> DomainResult<T> + Send>;

#[async_trait]
pub trait UserRepository: Send + Sync {
    /// Creates the user's row if it does not exist yet, and returns it. A session that began
    /// at `since`, before the user was erased, is refused with `DomainError::Erased`.
    async fn ensure(&self, user: &UserId, since: DateTime<Utc>) -> DomainResult<User>;
    /// Deletes the user and everything they own, and records the erasure at `at` (sessions
    /// that began earlier cannot sign in again); `false` when there was no such user.
    async fn erase(&self, user: &UserId, at: DateTime<Utc>) -> DomainResult<bool>;
    /// Records the delivery `id` of a webhook from `source`; `false` when it was recorded
    /// before (a replay). Deliveries older than `keep` are forgotten.
    async fn claim_delivery(&self, source: &str, id: &str, keep: Duration) -> DomainResult<bool>;
    /// Forgets a delivery whose handling failed, so that the sender's retry is handled.
    async fn release_delivery(&self, source: &str, id: &str) -> DomainResult<()>;
    /// Stores the user's settings and, in the same transaction, replaces their waiting agenda
    /// reminder with `agenda` (none: the agenda is off).
    async fn update_settings(
        &self,
        user: &UserId,
        settings: super::user::UserSettings,
        agenda: Option<Reminder>,
    ) -> DomainResult<User>;
}

/// A document read back by id: the text the index holds for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub kind: DocKind,
    pub id: Uuid,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// A document found by its words: which one, and how well it matches (higher is better).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub kind: DocKind,
    pub id: Uuid,
    pub rank: f32,
}

/// The lexical leg of recall: full-text search over the user's committed documents (so a
/// write is found at once), and reading documents back by id.
#[async_trait]
pub trait LexicalIndex: Send + Sync {
    /// The user's documents of these kinds (all when empty) that share words with `query`,
    /// best first. Their texts are read with [`fetch`](Self::fetch), together with the other
    /// leg's hits.
    async fn search(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> DomainResult<Vec<Ranked>>;
    /// These documents of the user as stored now; ids that are gone (or another user's) are
    /// left out.
    async fn fetch(&self, user: &UserId, ids: &[(DocKind, Uuid)]) -> DomainResult<Vec<Found>>;
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
    /// What a listing of the range is made of, read in one round trip.
    async fn list_in_range(&self, user: &UserId, query: &RangeQuery) -> DomainResult<RangeRows>;
    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Event>,
    ) -> DomainResult<Option<Event>>;
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
    /// Writes an import in one transaction: each event replaces the one with its id (an
    /// event this server exported) or its import key, or is inserted under that key.
    async fn import(
        &self,
        user: &UserId,
        events: Vec<ImportRow>,
    ) -> DomainResult<crate::domain::calendar::ImportApplied>;
}

/// One event of an import, validated: written under `key`, or over `own` (an event of this
/// server's export that still exists).
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub key: String,
    pub own: Option<Uuid>,
    pub event: Event,
}

#[async_trait]
pub trait MemoryRepository: Send + Sync {
    async fn insert(&self, user: &UserId, memory: &Memory) -> DomainResult<()>;
    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Memory>>;
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
    /// Stores a new conversation and its first message in one transaction.
    async fn insert_with_message(
        &self,
        user: &UserId,
        conversation: &Conversation,
        message: &Message,
    ) -> DomainResult<()>;
    /// The user's message sent with this client id, and the assistant message answering it.
    async fn find_turn(
        &self,
        user: &UserId,
        client_message_id: &str,
    ) -> DomainResult<Option<(Message, Option<Message>)>>;
    /// Up to `limit + 1` messages of the conversation older than `before`, newest first;
    /// `None` when the conversation (or `before`) is not the user's.
    async fn list_messages(
        &self,
        user: &UserId,
        conversation: Uuid,
        query: &MessageQuery,
    ) -> DomainResult<Option<Vec<Message>>>;
}

/// A user's calendar feed, as stored: the SHA-256 of its secret.
#[derive(Debug, Clone)]
pub struct StoredFeed {
    pub id: Uuid,
    pub user: UserId,
    pub secret_hash: [u8; 32],
}

#[async_trait]
pub trait FeedRepository: Send + Sync {
    /// Stores the user's feed, replacing any they had.
    async fn replace_feed(
        &self,
        user: &UserId,
        feed: &StoredFeed,
        at: DateTime<Utc>,
    ) -> DomainResult<()>;
    /// Deletes the user's feed; `false` when they had none.
    async fn revoke_feed(&self, user: &UserId) -> DomainResult<bool>;
    async fn feed(&self, id: Uuid) -> DomainResult<Option<StoredFeed>>;
    /// Records the hash of the body the feed serves now; returns when it last changed.
    async fn feed_content(
        &self,
        id: Uuid,
        hash: [u8; 32],
        at: DateTime<Utc>,
    ) -> DomainResult<DateTime<Utc>>;
}

#[async_trait]
pub trait ReminderRepository: Send + Sync {
    /// Stores a reminder. A task or event it names that is not the user's, or a user who
    /// holds [`MAX_SCHEDULED_PER_USER`](super::reminder::MAX_SCHEDULED_PER_USER) reminders
    /// still to fire, is refused (`Validation`).
    async fn insert(&self, user: &UserId, reminder: &Reminder) -> DomainResult<()>;
    async fn get(&self, user: &UserId, id: Uuid) -> DomainResult<Option<Reminder>>;
    /// Up to `page.fetch_limit()` reminders by `(dueAt, id)`, after the page's cursor.
    async fn list(&self, user: &UserId, query: &ReminderQuery) -> DomainResult<Vec<Reminder>>;
    async fn update(
        &self,
        user: &UserId,
        id: Uuid,
        change: Mutation<Reminder>,
    ) -> DomainResult<Option<Reminder>>;
    async fn delete(&self, user: &UserId, id: Uuid) -> DomainResult<bool>;
    /// Fires up to `limit` reminders due at `now`, of any user, in one transaction: rows
    /// another worker holds are skipped (`SKIP LOCKED`), so each fires once however many
    /// instances run. A reminder found later than `max_lateness` after its time is marked
    /// fired late. Each one with a conversation gets its assistant message there.
    async fn fire_due(&self, request: &FireRequest) -> DomainResult<FiredBatch>;
}

#[derive(Debug, Clone, Copy)]
pub struct FireRequest {
    pub now: DateTime<Utc>,
    pub max_lateness: chrono::Duration,
    pub limit: i64,
    /// The zone times are told in (a missed reminder's message).
    pub timezone: chrono_tz::Tz,
    /// How long a push of a reminder fired now is worth sending.
    pub push_ttl: chrono::Duration,
}

#[derive(Debug, Clone)]
pub struct Fired {
    pub user: UserId,
    pub reminder: Reminder,
    /// The assistant message stored in the reminder's conversation, if it has one.
    pub message: Option<Message>,
}

#[derive(Debug, Clone, Default)]
pub struct FiredBatch {
    pub fired: Vec<Fired>,
    /// Push deliveries queued for the reminders fired on time (one per subscription).
    pub pushes: u64,
    /// The earliest due time of the reminders still to fire (after this batch), if any;
    /// it may be past when other workers hold due rows.
    pub next_due: Option<DateTime<Utc>>,
}

/// What a listing of events in a range starts from.
#[derive(Debug, Clone, Copy)]
pub struct RangeQuery {
    pub range: EventRange,
    pub page: PageRequest,
    /// At most this many recurring series are read.
    pub max_series: i64,
}

#[derive(Debug, Default)]
pub struct RangeRows {
    /// Non-recurring events overlapping the range, by `(startAt, id)`, after the page's cursor.
    pub single: Vec<Event>,
    /// Recurring series that start before the range ends, by `(startAt, id)`.
    pub series: Vec<Event>,
}

/// What a chat turn reads before the model runs.
#[derive(Debug, Clone)]
pub struct TurnReads {
    /// The message being answered: the history is what the conversation holds before it.
    pub conversation_id: Uuid,
    pub before: (DateTime<Utc>, Uuid),
    pub history_limit: u32,
    pub open_tasks: TaskQuery,
    pub events: RangeQuery,
}

#[derive(Debug, Default)]
pub struct TurnRows {
    /// The user's last `history_limit` messages of the conversation, oldest first.
    pub history: Vec<Message>,
    pub open_tasks: Vec<Task>,
    pub events: RangeRows,
}

/// Reads a turn's context in one round trip to storage: every turn runs these reads, so
/// they go together rather than as a query (and a connection checkout) each.
#[async_trait]
pub trait TurnReader: Send + Sync {
    async fn turn_reads(&self, user: &UserId, reads: &TurnReads) -> DomainResult<TurnRows>;
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

/// What a vector-outbox row asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OutboxTarget {
    /// Bring the document's vector in line with its row (upsert, or delete if it is gone).
    Document(DocKind, Uuid),
    /// Drop every vector of the user (the user was erased).
    User,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxJob {
    pub id: i64,
    pub user: UserId,
    pub target: OutboxTarget,
    pub attempts: i32,
}

/// The vector outbox: rows added in the same transaction as every write of an indexed entity,
/// drained by the indexer.
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Up to `limit` due jobs, oldest first, hidden from other workers for `lease` (a worker
    /// that dies mid-batch leaves them to be picked up again when the lease ends).
    async fn claim(&self, limit: i64, lease: Duration) -> DomainResult<Vec<OutboxJob>>;
    /// The current documents of these entities; entities that no longer exist are left out.
    async fn documents(&self, targets: &[(UserId, DocKind, Uuid)]) -> DomainResult<Vec<Document>>;
    /// The jobs are done: removes them.
    async fn complete(&self, ids: &[i64]) -> DomainResult<()>;
    /// The jobs failed: counts an attempt, records the error and schedules them again after an
    /// exponential backoff (with jitter, capped at `max_delay`).
    async fn retry_later(&self, ids: &[i64], error: &str, max_delay: Duration) -> DomainResult<()>;
    /// Jobs not yet done (due or waiting for a retry).
    async fn pending(&self) -> DomainResult<i64>;
    /// Every document of one kind, by id, after `after` (for rebuilding the index).
    async fn scan(
        &self,
        kind: DocKind,
        after: Option<Uuid>,
        limit: i64,
    ) -> DomainResult<Vec<Document>>;
    /// Number of documents of one kind.
    async fn count(&self, kind: DocKind) -> DomainResult<i64>;
}

/// Carries signals to the server's other instances (behind a load balancer, sharing one
/// database), best effort: an instance that misses one resynchronises its clients through
/// REST. What the others send arrives on the receiver the relay was started with.
pub trait Relay: Send + Sync {
    /// Sends to every other instance; never blocks.
    fn send(&self, signal: &super::bus::Signal);
    /// `postgres`, or `local` when the server runs alone.
    fn name(&self) -> &'static str;
}

/// The server runs alone: there is nobody to tell.
pub struct NoRelay;

impl Relay for NoRelay {
    fn send(&self, _: &super::bus::Signal) {}

    fn name(&self) -> &'static str {
        "local"
    }
}

/// How a chat turn ended, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnOutcome {
    /// The answer was stored (a cancelled turn stores what it had: answered too).
    Answered,
    /// It ended in `chat:error` with this code.
    Failed(super::ErrorCode),
    /// It stopped without ending (a panic, a dropped task); its guard sent `chat:error`.
    Abandoned,
}

/// A leg of recall, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchLeg {
    Meaning,
    Words,
    /// Both legs, fusion and the texts' fetch.
    All,
}

/// Where the domain reports what it measures (the server's metrics).
pub trait Meter: Send + Sync {
    fn turn_ended(&self, outcome: TurnOutcome);
    /// `tool`: one of the assistant's tools, or `unknown`.
    fn tool_called(&self, tool: &'static str, ok: bool);
    fn searched(&self, leg: SearchLeg, elapsed: std::time::Duration);
    /// A reminder fired `lateness` after its time (`late`: too late to be delivered).
    fn reminder_fired(&self, late: bool, lateness: std::time::Duration);
    /// A push delivery ended or was put off: `outcome` is one of
    /// [`DeliveryResult::outcome`](super::push::DeliveryResult::outcome)'s.
    fn push_delivered(&self, outcome: &'static str);
}

/// Measures nothing (tests, tools that embed the domain).
pub struct NoMeter;

impl Meter for NoMeter {
    fn turn_ended(&self, _: TurnOutcome) {}
    fn tool_called(&self, _: &'static str, _: bool) {}
    fn searched(&self, _: SearchLeg, _: std::time::Duration) {}
    fn reminder_fired(&self, _: bool, _: std::time::Duration) {}
    fn push_delivered(&self, _: &'static str) {}
}
