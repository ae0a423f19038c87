//! The model seam: one streaming request with tools, whatever the provider. The tool loop in
//! [`super::orchestrator`] drives it; providers only translate to and from their wire format.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::Stream;
use serde_json::Value;

/// A tool the model may call: name, description and a JSON Schema for its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: &'static str,
    pub description: &'static str,
    /// JSON Schema (`{"type": "object", "properties": …}`).
    pub parameters: Value,
}

/// A tool call as the model made it. `arguments` is the raw JSON text the model produced: it
/// may be invalid, and the tool loop reports that back to the model.
#[derive(Debug, Clone, PartialEq)]
pub struct LlmToolCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
}

/// The result of a tool call, sent back to the model. `content` is JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    pub call_id: String,
    pub content: String,
    pub is_error: bool,
}

/// One message of the conversation as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmMessage {
    User(String),
    /// The model's earlier output: text and the tool calls it made.
    Assistant {
        text: String,
        tool_calls: Vec<LlmToolCall>,
    },
    /// Results of the tool calls of the preceding assistant message, in the same order.
    ToolResults(Vec<ToolResult>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LlmRequest {
    pub system: String,
    pub messages: Vec<LlmMessage>,
    /// Never empty when sent to a provider that rejects empty tool lists: providers omit the
    /// field when it is empty.
    /// Shared: the same schemas go with every call of every turn.
    pub tools: std::sync::Arc<[ToolSpec]>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants the tool calls it emitted to run.
    ToolUse,
    /// The answer hit `max_tokens`.
    MaxTokens,
    /// Anything else the provider reported (content filter, stop sequence, …).
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub enum LlmEvent {
    /// A piece of the answer's text, in order.
    TextDelta(String),
    /// A complete tool call (a provider reassembles streamed fragments before emitting it).
    ToolCall(LlmToolCall),
    Usage {
        input_tokens: u64,
        output_tokens: u64,
    },
    /// Always the last event of a successful stream.
    Stop(StopReason),
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LlmError {
    /// Could not connect, timed out, or the provider is overloaded / rate limiting us (after
    /// the retries were used up). The same request may succeed later.
    #[error("model provider unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The provider refused the request (4xx other than 429) or answered with an error.
    #[error("model provider error: {0}")]
    Upstream(String),
    /// The stream broke the provider's wire format or ended without a stop event.
    #[error("model provider sent a malformed answer: {0}")]
    Protocol(String),
}

pub type LlmStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

#[async_trait]
pub trait LlmProvider: Send + Sync {
    /// `offline`, `anthropic` or `openai`.
    fn name(&self) -> &'static str;
    /// Starts one model call. Retries (connect errors, 429, 5xx) happen inside, before the
    /// stream is returned; once events flow, an error ends the stream. Dropping the stream
    /// cancels the request.
    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError>;
    /// Whether the model reads the system prompt (the context: history, tasks, events,
    /// memories). Models do; the offline assistant answers from the messages alone.
    fn reads_system_prompt(&self) -> bool {
        true
    }
}
