//! Anthropic's Messages API (`POST /v1/messages`, `stream: true`).
//!
//! Requests: the system prompt is the top-level `system`; every message carries content
//! blocks, and consecutive messages of one role are merged because the API requires user and
//! assistant turns to alternate (tool results are user turns there).
//! Answers: server-sent events `message_start`, then per content block `content_block_start`,
//! `content_block_delta`s and `content_block_stop`, then `message_delta` (stop reason, output
//! tokens) and `message_stop`; `ping` may come at any time, `error` ends the stream.

use std::collections::HashMap;

use async_trait::async_trait;
use eventsource_stream::Event;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Decoder, HttpSettings, Transport, endpoint, secret_headers};
use crate::ai::llm::{
    LlmError, LlmEvent, LlmMessage, LlmProvider, LlmRequest, LlmStream, LlmToolCall, StopReason,
};

/// The API version this wire format follows.
const API_VERSION: &str = "2023-06-01";

#[derive(Clone)]
pub struct AnthropicSettings {
    /// Without `/v1`: `https://api.anthropic.com` or a compatible gateway.
    pub base_url: String,
    pub model: String,
    /// Required; from `ANTHROPIC_API_KEY`.
    pub api_key: Option<String>,
    pub http: HttpSettings,
}

impl Default for AnthropicSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".to_owned(),
            model: "claude-sonnet-4-5".to_owned(),
            api_key: None,
            http: HttpSettings::default(),
        }
    }
}

pub struct AnthropicProvider {
    transport: Transport,
    url: String,
    model: String,
}

impl AnthropicProvider {
    pub fn new(settings: AnthropicSettings) -> anyhow::Result<Self> {
        let key = settings
            .api_key
            .ok_or_else(|| anyhow::anyhow!("the anthropic provider needs ANTHROPIC_API_KEY"))?;
        let mut headers = secret_headers(Some((HeaderName::from_static("x-api-key"), key)))?;
        headers.insert("anthropic-version", HeaderValue::from_static(API_VERSION));
        Ok(Self {
            transport: Transport::new(settings.http, headers)?,
            url: endpoint(&settings.base_url, "v1/messages")?,
            model: settings.model,
        })
    }

    fn body(&self, request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": self.model,
            "max_tokens": request.max_tokens,
            "stream": true,
            "messages": messages(&request.messages),
        });
        if !request.system.is_empty() {
            body["system"] = json!(request.system);
        }
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "name": tool.name,
                        "description": tool.description,
                        "input_schema": tool.parameters,
                    })
                })
                .collect();
        }
        body
    }
}

#[async_trait]
impl LlmProvider for AnthropicProvider {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    #[tracing::instrument(name = "anthropic", skip_all, fields(model = %self.model))]
    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let response = self
            .transport
            .post_json(&self.url, &self.body(request))
            .await?;
        Ok(self.transport.decode(response, Answer::default()))
    }
}

/// The conversation as alternating user / assistant turns of content blocks. Empty text is
/// dropped (the API rejects empty text blocks), and so is a message left with no block.
fn messages(messages: &[LlmMessage]) -> Vec<Value> {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks): (&str, Vec<Value>) = match message {
            LlmMessage::User(text) => ("user", text_block(text).into_iter().collect()),
            LlmMessage::Assistant { text, tool_calls } => (
                "assistant",
                text_block(text)
                    .into_iter()
                    .chain(tool_calls.iter().map(|call| {
                        json!({
                            "type": "tool_use",
                            "id": call.id,
                            "name": call.name,
                            "input": tool_input(&call.arguments),
                        })
                    }))
                    .collect(),
            ),
            LlmMessage::ToolResults(results) => (
                "user",
                results
                    .iter()
                    .map(|result| {
                        json!({
                            "type": "tool_result",
                            "tool_use_id": result.call_id,
                            "content": result.content,
                            "is_error": result.is_error,
                        })
                    })
                    .collect(),
            ),
        };
        match turns.last_mut() {
            _ if blocks.is_empty() => {}
            Some((last, content)) if *last == role => content.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect()
}

fn text_block(text: &str) -> Option<Value> {
    (!text.trim().is_empty()).then(|| json!({ "type": "text", "text": text }))
}

/// `tool_use.input` must be an object. Arguments the model got wrong (the tool loop already
/// answered them with an error result) are replayed as `{}`.
fn tool_input(arguments: &str) -> Value {
    serde_json::from_str::<Value>(arguments)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}))
}

/// The events this provider acts on; others (`ping`, types added later) are ignored, as
/// Anthropic's versioning policy asks.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Wire {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: WireBlock,
    },
    ContentBlockDelta {
        index: u64,
        delta: WireDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        delta: WireStop,
        #[serde(default)]
        usage: WireUsage,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireMessage {
    #[serde(default)]
    usage: WireUsage,
}

#[derive(Deserialize, Default)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireBlock {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct WireStop {
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct WireError {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

/// The state of one streamed answer.
#[derive(Default)]
struct Answer {
    input_tokens: u64,
    output_tokens: u64,
    stop: Option<StopReason>,
    /// `tool_use` blocks still streaming their input, by block index.
    tools: HashMap<u64, LlmToolCall>,
}

impl Answer {
    /// Counts in `message_delta` are cumulative: the latest wins.
    fn usage(&mut self, usage: WireUsage) {
        self.input_tokens = usage.input_tokens.unwrap_or(self.input_tokens);
        self.output_tokens = usage.output_tokens.unwrap_or(self.output_tokens);
    }
}

impl Decoder for Answer {
    fn event(&mut self, event: &Event, out: &mut Vec<LlmEvent>) -> Result<bool, LlmError> {
        let wire: Wire = serde_json::from_str(&event.data).map_err(|error| {
            LlmError::Protocol(format!("unreadable `{}` event: {error}", event.event))
        })?;
        match wire {
            Wire::MessageStart { message } => self.usage(message.usage),
            Wire::ContentBlockStart {
                index,
                content_block: WireBlock::ToolUse { id, name },
            } => {
                let arguments = String::new();
                self.tools.insert(
                    index,
                    LlmToolCall {
                        id,
                        name,
                        arguments,
                    },
                );
            }
            Wire::ContentBlockStart {
                content_block: WireBlock::Text { text },
                ..
            }
            | Wire::ContentBlockDelta {
                delta: WireDelta::TextDelta { text },
                ..
            } if !text.is_empty() => out.push(LlmEvent::TextDelta(text)),
            Wire::ContentBlockDelta {
                index,
                delta: WireDelta::InputJsonDelta { partial_json },
            } => match self.tools.get_mut(&index) {
                Some(call) => call.arguments.push_str(&partial_json),
                None => {
                    return Err(LlmError::Protocol(format!(
                        "input_json_delta for block {index}, which is not a started tool_use"
                    )));
                }
            },
            Wire::ContentBlockStop { index } => {
                if let Some(mut call) = self.tools.remove(&index) {
                    if call.arguments.trim().is_empty() {
                        call.arguments = "{}".to_owned();
                    }
                    out.push(LlmEvent::ToolCall(call));
                }
            }
            Wire::MessageDelta { delta, usage } => {
                self.stop = delta.stop_reason.as_deref().map(stop_reason).or(self.stop);
                self.usage(usage);
            }
            Wire::MessageStop => {
                out.push(LlmEvent::Usage {
                    input_tokens: self.input_tokens,
                    output_tokens: self.output_tokens,
                });
                out.push(LlmEvent::Stop(self.stop.unwrap_or(StopReason::Other)));
                return Ok(true);
            }
            Wire::Error { error } => {
                let message = format!("{}: {}", error.kind, error.message);
                return Err(match error.kind.as_str() {
                    "overloaded_error" | "rate_limit_error" | "api_error" => {
                        LlmError::Unavailable {
                            message,
                            retry_after: None,
                        }
                    }
                    _ => LlmError::Upstream(message),
                });
            }
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut Vec<LlmEvent>) -> Result<(), LlmError> {
        Err(LlmError::Protocol(
            "the stream ended before message_stop".to_owned(),
        ))
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}
