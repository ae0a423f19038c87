//! The ports the domain needs from the AI half: run a chat turn with tools, and keep a
//! semantic index of the user's documents. `src/ai` implements them; the domain never learns
//! which model, embedder or vector store sits behind.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::conversation::{Message, ToolCall};
use super::error::ErrorCode;
use super::event::Event;
use super::task::Task;
use super::values::UserId;

/// The kinds of documents the semantic index holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DocKind {
    Task,
    Event,
    Memory,
    Message,
}

impl DocKind {
    pub const ALL: [DocKind; 4] = [Self::Task, Self::Event, Self::Memory, Self::Message];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Task => "task",
            Self::Event => "event",
            Self::Memory => "memory",
            Self::Message => "message",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

/// A document to index: the searchable text of one task, event, memory or message.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub user: UserId,
    pub kind: DocKind,
    /// The entity's id (unique across kinds: every id is a UUID).
    pub id: Uuid,
    pub text: String,
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recalled {
    pub kind: DocKind,
    pub id: Uuid,
    /// Cosine similarity, higher is closer.
    pub score: f32,
    /// The start of the indexed text.
    pub snippet: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum AssistantError {
    /// The provider (LLM, embedder or vector store) cannot be reached or is overloaded; the
    /// same request may succeed later.
    #[error("{0}")]
    Unavailable(String),
    /// The provider answered with an error or with something unusable.
    #[error("{0}")]
    BadGateway(String),
}

impl AssistantError {
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<AssistantError> for super::DomainError {
    fn from(e: AssistantError) -> Self {
        match e {
            AssistantError::Unavailable(m) => Self::Unavailable(m),
            AssistantError::BadGateway(m) => Self::BadGateway(m),
        }
    }
}

/// The semantic index of the user's documents. Every call is scoped to one user.
#[async_trait]
pub trait SemanticIndex: Send + Sync {
    /// Embeds and stores (or replaces) the documents.
    async fn index(&self, documents: &[Document]) -> Result<(), AssistantError>;
    /// Removes the documents with these ids of this user; unknown ids are ignored.
    async fn forget(&self, user: &UserId, ids: &[Uuid]) -> Result<(), AssistantError>;
    /// Removes every document of the user.
    async fn forget_user(&self, user: &UserId) -> Result<(), AssistantError>;
    /// The documents of this user closest in meaning to `query`, best first.
    async fn recall(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<Recalled>, AssistantError>;
}

/// What the model is told about the user's world when a turn starts.
#[derive(Debug, Clone)]
pub struct TurnContext {
    pub user: UserId,
    pub now: DateTime<Utc>,
    /// Earlier messages of the conversation, oldest → newest (the new user message excluded).
    pub history: Vec<Message>,
    /// The user's new message.
    pub text: String,
    pub open_tasks: Vec<Task>,
    pub upcoming_events: Vec<Event>,
    pub memories: Vec<RecalledText>,
}

/// A recalled document with its text, for the model's context.
#[derive(Debug, Clone, PartialEq)]
pub struct RecalledText {
    pub kind: DocKind,
    pub id: Uuid,
    pub text: String,
    /// When it was written (a memory: when the user said it).
    pub created_at: Option<DateTime<Utc>>,
}

/// The outcome of one tool call, as the model will see it.
pub type ToolOutcome = Result<Value, ToolFailure>;

/// A tool call that failed: a code of the contract's list and what the model can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolFailure {
    pub code: ErrorCode,
    pub message: String,
}

impl ToolFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// The domain's side of the tool loop: runs a tool as the signed-in user. Validation errors,
/// unknown tools and unknown ids come back as `Err(failure)` for the model, never as a panic.
#[async_trait]
pub trait ToolExecutor: Send + Sync {
    async fn execute(&self, name: &str, arguments: &Value) -> ToolOutcome;
}

/// What a turn reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum TurnProgress {
    /// Assistant text, in order.
    Delta(String),
    /// A tool ran.
    Tool(ToolCall),
}

/// Receives a turn's progress as it happens. Must not block.
pub trait TurnObserver: Send + Sync {
    fn progress(&self, progress: TurnProgress);
}

/// The finished turn: the assistant's text and the tools it ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnOutput {
    pub text: String,
    pub tool_calls: Vec<ToolCall>,
    /// The turn was stopped by its cancellation token; `text` is what was streamed until then.
    pub cancelled: bool,
}

/// Runs chat turns: the model, its tool loop and its streaming.
#[async_trait]
pub trait Assistant: Send + Sync {
    /// Whether the memories recalled for a turn reach the model. Recall is the costliest
    /// read of a turn (and grows with the user's history): an assistant that never reads
    /// it is not given it.
    fn reads_memories(&self) -> bool {
        true
    }
    /// Runs one turn to its end. On cancellation it returns what was produced so far (with
    /// `cancelled` set); on a provider failure, `Err` (the partial output, if any, was already
    /// reported to the observer).
    async fn run_turn(
        &self,
        context: TurnContext,
        tools: &dyn ToolExecutor,
        observer: &dyn TurnObserver,
        cancel: CancellationToken,
    ) -> Result<TurnOutput, AssistantError>;
}

impl Document {
    fn joined(user: &UserId, kind: DocKind, id: Uuid, parts: &[Option<&str>]) -> Self {
        let text = parts
            .iter()
            .flatten()
            .map(|part| part.trim())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        Self {
            user: user.clone(),
            kind,
            id,
            text,
        }
    }

    /// A task is found by its title, description and project.
    pub fn of_task(user: &UserId, task: &Task) -> Self {
        Self::joined(
            user,
            DocKind::Task,
            task.id,
            &[
                Some(&task.title),
                task.description.as_deref(),
                task.project.as_deref(),
            ],
        )
    }

    /// An event is found by its title, description and location.
    pub fn of_event(user: &UserId, event: &Event) -> Self {
        Self::joined(
            user,
            DocKind::Event,
            event.id,
            &[
                Some(&event.title),
                event.description.as_deref(),
                event.location.as_deref(),
            ],
        )
    }

    pub fn of_memory(user: &UserId, memory: &super::memory::Memory) -> Self {
        Self::joined(user, DocKind::Memory, memory.id, &[Some(&memory.content)])
    }

    /// A message is found by what the user wrote; the assistant's replies are not facts about
    /// the user and are not indexed (an empty text: the indexer drops any vector of it).
    pub fn of_message(user: &UserId, message: &Message) -> Self {
        let text = (message.role == super::conversation::Role::User).then_some(&message.content);
        Self::joined(
            user,
            DocKind::Message,
            message.id,
            &[text.map(String::as_str)],
        )
    }
}
