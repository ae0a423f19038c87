//! OpenAI's Chat Completions API (`POST {base_url}/chat/completions`, `stream: true`), as
//! spoken by OpenAI and by local servers (Ollama, vLLM, llama.cpp, LM Studio).
//!
//! Answers are `data:` lines of JSON chunks, then `data: [DONE]`. Text arrives in
//! `choices[0].delta.content`; tool calls arrive in fragments (`delta.tool_calls[]`, keyed by
//! `index`: id and name first, then pieces of the `arguments` string), which are reassembled
//! and emitted whole. With `stream_options.include_usage`, a last chunk carries the usage.
//!
//! Compatible servers differ in small ways, tolerated here: a whole call in one fragment, no
//! `index`, one `index` reused for several calls (told apart by their ids), `finish_reason:
//! "stop"` after tool calls (OpenAI does this too when a tool is forced), no `[DONE]` after a
//! `finish_reason`.

use async_trait::async_trait;
use eventsource_stream::Event;
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Decoder, HttpSettings, Transport, bearer, endpoint, provider_message};
use crate::ai::llm::{
    LlmError, LlmEvent, LlmMessage, LlmProvider, LlmRequest, LlmStream, LlmToolCall, StopReason,
};

#[derive(Clone)]
pub struct OpenAiSettings {
    /// Up to and including the version: `https://api.openai.com/v1`,
    /// `http://localhost:11434/v1` (Ollama), …
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer` when set; local servers usually need none.
    pub api_key: Option<String>,
    pub http: HttpSettings,
}

impl Default for OpenAiSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "gpt-4o-mini".to_owned(),
            api_key: None,
            http: HttpSettings::default(),
        }
    }
}

pub struct OpenAiProvider {
    transport: Transport,
    url: String,
    model: String,
}

impl OpenAiProvider {
    pub fn new(settings: OpenAiSettings) -> anyhow::Result<Self> {
        Ok(Self {
            transport: Transport::new(settings.http, bearer(settings.api_key.as_deref())?)?,
            url: endpoint(&settings.base_url, "chat/completions")?,
            model: settings.model,
        })
    }

    /// `max_tokens` rather than the newer `max_completion_tokens`: every compatible server
    /// knows it, and so do OpenAI's non-reasoning models.
    fn body(&self, request: &LlmRequest) -> Value {
        let mut body = json!({
            "model": self.model,
            "messages": messages(request),
            "max_tokens": request.max_tokens,
            "stream": true,
            "stream_options": { "include_usage": true },
        });
        // Never `tools: []`: several servers reject an empty list. `tool_choice` defaults to
        // "auto" when tools are given, so it is never sent.
        if !request.tools.is_empty() {
            body["tools"] = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function",
                        "function": {
                            "name": tool.name,
                            "description": tool.description,
                            "parameters": tool.parameters,
                        },
                    })
                })
                .collect();
        }
        body
    }
}

#[async_trait]
impl LlmProvider for OpenAiProvider {
    fn name(&self) -> &'static str {
        "openai"
    }

    #[tracing::instrument(name = "openai", skip_all, fields(model = %self.model))]
    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let response = self
            .transport
            .post_json(&self.url, &self.body(request))
            .await?;
        Ok(self.transport.decode(response, Answer::default()))
    }
}

fn messages(request: &LlmRequest) -> Vec<Value> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if !request.system.is_empty() {
        messages.push(json!({ "role": "system", "content": request.system }));
    }
    for message in &request.messages {
        match message {
            LlmMessage::User(text) => messages.push(json!({ "role": "user", "content": text })),
            // An answer cancelled before its first word: nothing to replay.
            LlmMessage::Assistant { text, tool_calls }
                if text.is_empty() && tool_calls.is_empty() => {}
            LlmMessage::Assistant { text, tool_calls } => {
                let mut message = json!({
                    "role": "assistant",
                    "content": (!text.is_empty()).then_some(text),
                });
                if !tool_calls.is_empty() {
                    message["tool_calls"] = tool_calls
                        .iter()
                        .map(|call| {
                            json!({
                                "id": call.id,
                                "type": "function",
                                "function": { "name": call.name, "arguments": call.arguments },
                            })
                        })
                        .collect();
                }
                messages.push(message);
            }
            LlmMessage::ToolResults(results) => {
                messages.extend(results.iter().map(|result| {
                    json!({
                        "role": "tool",
                        "tool_call_id": result.call_id,
                        "content": result.content,
                    })
                }));
            }
        }
    }
    messages
}

#[derive(Deserialize)]
struct Chunk {
    choices: Option<Vec<Choice>>,
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Choice {
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    content: Option<String>,
    tool_calls: Option<Vec<ToolCallDelta>>,
}

#[derive(Deserialize)]
struct ToolCallDelta {
    index: Option<usize>,
    id: Option<String>,
    function: Option<FunctionDelta>,
}

#[derive(Deserialize)]
struct FunctionDelta {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

/// The state of one streamed answer.
#[derive(Default)]
struct Answer {
    /// Tool calls being reassembled, in order of their first fragment, with their `index`.
    calls: Vec<(Option<usize>, LlmToolCall)>,
    made_tool_calls: bool,
    finish: Option<StopReason>,
    usage: Option<WireUsage>,
}

impl Answer {
    fn merge(&mut self, fragment: ToolCallDelta) {
        let id = fragment.id.filter(|id| !id.is_empty());
        // The call this fragment continues: the latest with its index (the latest at all when
        // there is no index), unless the fragment brings another call's id.
        let slot = self
            .calls
            .iter()
            .rposition(|(index, _)| fragment.index.is_none() || *index == fragment.index)
            .filter(|&slot| {
                let known = &self.calls[slot].1.id;
                id.as_ref().is_none_or(|id| known.is_empty() || known == id)
            });
        let slot = slot.unwrap_or_else(|| {
            let call = LlmToolCall {
                id: String::new(),
                name: String::new(),
                arguments: String::new(),
            };
            self.calls.push((fragment.index, call));
            self.calls.len() - 1
        });
        let call = &mut self.calls[slot].1;
        if let Some(id) = id {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            // The name comes whole in the first fragment; some servers repeat it later.
            if let Some(name) = function.name
                && call.name.is_empty()
            {
                call.name = name;
            }
            call.arguments
                .push_str(function.arguments.as_deref().unwrap_or_default());
        }
    }

    /// Emits the reassembled tool calls; a call without arguments gets `{}`, one without an
    /// id (some local servers) a made-up one, since results are matched to calls by id.
    fn flush_calls(&mut self, out: &mut Vec<LlmEvent>) {
        for (number, (_, mut call)) in self.calls.drain(..).enumerate() {
            if call.arguments.trim().is_empty() {
                call.arguments = "{}".to_owned();
            }
            if call.id.is_empty() {
                call.id = format!("call_{number}");
            }
            self.made_tool_calls = true;
            out.push(LlmEvent::ToolCall(call));
        }
    }

    fn complete(&mut self, out: &mut Vec<LlmEvent>) {
        self.flush_calls(out);
        if let Some(usage) = self.usage.take() {
            out.push(LlmEvent::Usage {
                input_tokens: usage.prompt_tokens,
                output_tokens: usage.completion_tokens,
            });
        }
        let stop = match self.finish {
            Some(StopReason::EndTurn) | None if self.made_tool_calls => StopReason::ToolUse,
            Some(stop) => stop,
            None => StopReason::EndTurn,
        };
        out.push(LlmEvent::Stop(stop));
    }
}

impl Decoder for Answer {
    fn event(&mut self, event: &Event, out: &mut Vec<LlmEvent>) -> Result<bool, LlmError> {
        if event.data.trim() == "[DONE]" {
            self.complete(out);
            return Ok(true);
        }
        let json: Value = serde_json::from_str(&event.data)
            .map_err(|error| LlmError::Protocol(format!("a chunk is not JSON: {error}")))?;
        if let Some(message) = provider_message(&json) {
            return Err(LlmError::Upstream(message));
        }
        let chunk: Chunk = serde_json::from_value(json)
            .map_err(|error| LlmError::Protocol(format!("unexpected chunk: {error}")))?;
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choices.and_then(|choices| choices.into_iter().next()) else {
            return Ok(false);
        };
        if let Some(delta) = choice.delta {
            if let Some(text) = delta.content.filter(|text| !text.is_empty()) {
                out.push(LlmEvent::TextDelta(text));
            }
            for fragment in delta.tool_calls.into_iter().flatten() {
                self.merge(fragment);
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish = Some(stop_reason(&reason));
            self.flush_calls(out);
        }
        Ok(false)
    }

    fn end(&mut self, out: &mut Vec<LlmEvent>) -> Result<(), LlmError> {
        if self.finish.is_none() {
            return Err(LlmError::Protocol(
                "the stream ended before [DONE] or a finish_reason".to_owned(),
            ));
        }
        self.complete(out);
        Ok(())
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        _ => StopReason::Other,
    }
}
