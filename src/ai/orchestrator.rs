//! The tool loop: one chat turn as a conversation between the model and the domain's tools.
//!
//! Each round streams one model call: text goes to the observer as it comes; tool calls are
//! collected, then run one by one through the domain's `ToolExecutor`, and their results go
//! back to the model in the next round. Arguments that are not a JSON object, unknown tools
//! and refused calls become error results the model can read and correct. After
//! `max_tool_rounds` rounds that used tools, one last call without tools makes the model
//! answer in words.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono_tz::Tz;
use futures_util::StreamExt;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::llm::{
    LlmError, LlmEvent, LlmMessage, LlmProvider, LlmRequest, LlmToolCall, ToolResult, ToolSpec,
};
use crate::domain::ErrorCode;
use crate::domain::assistant::{
    Assistant, AssistantError, ToolExecutor, ToolFailure, TurnContext, TurnObserver, TurnOutput,
    TurnProgress,
};
use crate::domain::conversation::{Message, Role, ToolCall, ToolCallStatus};

#[derive(Debug, Clone)]
pub struct OrchestratorSettings {
    pub max_tool_rounds: usize,
    pub max_tokens: u32,
    pub timezone: Tz,
    /// Characters of context (history, tasks, events, memories) given to the model at most.
    pub context_budget_chars: usize,
}

impl Default for OrchestratorSettings {
    fn default() -> Self {
        Self {
            max_tool_rounds: 5,
            max_tokens: 1024,
            timezone: chrono_tz::UTC,
            context_budget_chars: 24_000,
        }
    }
}

pub struct Orchestrator {
    provider: Arc<dyn LlmProvider>,
    tools: std::sync::Arc<[ToolSpec]>,
    settings: OrchestratorSettings,
}

impl Orchestrator {
    pub fn new(provider: Arc<dyn LlmProvider>, settings: OrchestratorSettings) -> Self {
        Self {
            provider,
            tools: super::tools::all().into(),
            settings,
        }
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }
}

fn unavailable(e: LlmError) -> AssistantError {
    match e {
        LlmError::Unavailable { message, .. } => {
            AssistantError::Unavailable(format!("the model provider is unavailable: {message}"))
        }
        other => AssistantError::BadGateway(other.to_string()),
    }
}

/// Cuts `text` to at most `max` characters, on a character boundary.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The system prompt: who the assistant is, the time, and the user's world, within budget.
pub fn system_prompt(context: &TurnContext, tz: Tz, budget: usize) -> String {
    let now = context.now.with_timezone(&tz);
    let mut prompt = format!(
        "You are Pixie, a personal assistant. You manage the user's tasks and calendar with \
         the tools you have, and remember facts for them. Act only through the tools; never \
         claim to have done something a tool did not confirm. Be brief.\n\
         Now: {} ({}), time zone {tz}. Give tool times in RFC 3339.\n",
        now.format("%A %-d %B %Y, %H:%M"),
        now.to_rfc3339(),
    );
    let mut left = budget;
    let mut section = |prompt: &mut String, title: &str, lines: Vec<String>| {
        if lines.is_empty() {
            return;
        }
        prompt.push_str(&format!("\n{title}:\n"));
        for line in lines {
            let line = clip(&line, 500);
            if line.len() + 3 > left {
                prompt.push_str("- …\n");
                left = 0;
                return;
            }
            left -= line.len() + 3;
            prompt.push_str(&format!("- {line}\n"));
        }
    };
    let when = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%a %-d %b %H:%M");
    section(
        &mut prompt,
        "Open tasks",
        context
            .open_tasks
            .iter()
            .map(|t| match t.due_at {
                Some(due) => format!("{} (due {}, id {})", t.title, when(due), t.id),
                None => format!("{} (id {})", t.title, t.id),
            })
            .collect(),
    );
    section(
        &mut prompt,
        "Calendar, next 7 days",
        context
            .upcoming_events
            .iter()
            .map(|e| {
                format!(
                    "{}: {} (id {})",
                    when(e.start_at),
                    e.title,
                    e.occurrence_of.unwrap_or(e.id)
                )
            })
            .collect(),
    );
    section(
        &mut prompt,
        "Possibly relevant things the user said or stored before",
        context
            .memories
            .iter()
            .map(|m| format!("[{}] {}", m.kind.as_str(), m.text))
            .collect(),
    );
    prompt
}

/// Earlier messages as the model sees them, newest kept when over budget.
fn history(messages: &[Message], budget: usize) -> Vec<LlmMessage> {
    let mut left = budget;
    let mut out = Vec::new();
    for message in messages.iter().rev() {
        let text = match message.role {
            Role::User => message.content.clone(),
            Role::Assistant if message.tool_calls.is_empty() => message.content.clone(),
            Role::Assistant => {
                let names: Vec<&str> = message.tool_calls.iter().map(|c| c.name.as_str()).collect();
                format!("{}\n(used tools: {})", message.content, names.join(", "))
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        if text.len() > left {
            break;
        }
        left -= text.len();
        out.push(match message.role {
            Role::User => LlmMessage::User(text),
            Role::Assistant => LlmMessage::Assistant {
                text,
                tool_calls: Vec::new(),
            },
        });
    }
    out.reverse();
    // A model conversation starts with the user.
    while matches!(out.first(), Some(LlmMessage::Assistant { .. })) {
        out.remove(0);
    }
    out
}

/// One model call, streamed: returns the round's text and tool calls, or `None` if cancelled.
async fn round(
    provider: &dyn LlmProvider,
    request: &LlmRequest,
    observer: &dyn TurnObserver,
    cancel: &CancellationToken,
    output: &mut TurnOutput,
) -> Result<Option<(String, Vec<LlmToolCall>)>, AssistantError> {
    let stream = tokio::select! {
        () = cancel.cancelled() => return Ok(None),
        stream = provider.stream(request) => stream.map_err(unavailable)?,
    };
    tokio::pin!(stream);
    let mut text = String::new();
    let mut calls = Vec::new();
    let mut stopped = false;
    // Several rounds' texts read as one answer.
    let mut separator = (!output.text.is_empty()).then_some("\n\n");
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return Ok(None),
            event = stream.next() => event,
        };
        match event {
            None => break,
            Some(Err(e)) => return Err(unavailable(e)),
            Some(Ok(LlmEvent::TextDelta(delta))) if !delta.is_empty() => {
                let delta = match separator.take() {
                    Some(sep) => format!("{sep}{delta}"),
                    None => delta,
                };
                text.push_str(&delta);
                output.text.push_str(&delta);
                observer.progress(TurnProgress::Delta(delta));
            }
            Some(Ok(LlmEvent::TextDelta(_))) => {}
            Some(Ok(LlmEvent::ToolCall(call))) => calls.push(call),
            Some(Ok(LlmEvent::Usage {
                input_tokens,
                output_tokens,
            })) => {
                tracing::debug!(input_tokens, output_tokens, "model usage");
            }
            Some(Ok(LlmEvent::Stop(reason))) => {
                tracing::debug!(?reason, "model stopped");
                stopped = true;
                break;
            }
        }
    }
    if !stopped {
        return Err(AssistantError::BadGateway(
            "the model's answer ended before it was complete".into(),
        ));
    }
    Ok(Some((text, calls)))
}

async fn run_tool(tools: &dyn ToolExecutor, known: &[ToolSpec], call: &LlmToolCall) -> ToolCall {
    let parsed: Result<Value, ToolFailure> = if call.arguments.trim().is_empty() {
        Ok(Value::Object(Default::default()))
    } else {
        serde_json::from_str(&call.arguments).map_err(|e| {
            ToolFailure::new(
                ErrorCode::ValidationFailed,
                format!("the arguments are not valid JSON: {e}"),
            )
        })
    };
    // Stored arguments are always an object; what the model sent otherwise is kept as `raw`.
    let arguments = match &parsed {
        Ok(value @ Value::Object(_)) => value.clone(),
        _ => serde_json::json!({ "raw": call.arguments }),
    };
    let outcome = match parsed {
        Err(e) => Err(e),
        Ok(_) if !known.iter().any(|t| t.name == call.name) => Err(ToolFailure::new(
            ErrorCode::NotFound,
            format!("there is no tool named {:?}", call.name),
        )),
        Ok(args) => tools.execute(&call.name, &args).await,
    };
    let (status, result, error, error_code) = match outcome {
        Ok(result) => (ToolCallStatus::Ok, Some(result), None, None),
        Err(e) => (ToolCallStatus::Error, None, Some(e.message), Some(e.code)),
    };
    ToolCall {
        id: call.id.clone(),
        name: call.name.clone(),
        arguments,
        status,
        result,
        error,
        error_code,
    }
}

/// The answer of a turn whose model used tools but never answered in words.
const GAVE_UP: &str = "I ran the steps listed above but could not put together an answer. \
                       Please check them, or ask again in other words.";

#[async_trait]
impl Assistant for Orchestrator {
    fn reads_memories(&self) -> bool {
        self.provider.reads_system_prompt()
    }

    async fn run_turn(
        &self,
        context: TurnContext,
        tools: &dyn ToolExecutor,
        observer: &dyn TurnObserver,
        cancel: CancellationToken,
    ) -> Result<TurnOutput, AssistantError> {
        let budget = self.settings.context_budget_chars;
        let mut messages = history(&context.history, budget / 2);
        messages.push(LlmMessage::User(context.text.clone()));
        let mut request = LlmRequest {
            system: system_prompt(&context, self.settings.timezone, budget / 2),
            messages,
            tools: self.tools.clone(),
            max_tokens: self.settings.max_tokens,
        };
        let mut output = TurnOutput::default();
        let started = Instant::now();
        for rounds in 0.. {
            if rounds >= self.settings.max_tool_rounds {
                // Enough tools: the model must answer with what it has.
                request.tools = std::sync::Arc::from([]);
            }
            let Some((text, calls)) = round(
                self.provider.as_ref(),
                &request,
                observer,
                &cancel,
                &mut output,
            )
            .await?
            else {
                output.cancelled = true;
                break;
            };
            if calls.is_empty() || request.tools.is_empty() {
                break;
            }
            let mut results = Vec::with_capacity(calls.len());
            for call in &calls {
                let record = run_tool(tools, &self.tools, call).await;
                results.push(ToolResult {
                    call_id: call.id.clone(),
                    content: match (&record.result, &record.error) {
                        (Some(result), _) => result.to_string(),
                        (None, Some(error)) => {
                            serde_json::json!({ "error": error, "code": record.error_code })
                                .to_string()
                        }
                        (None, None) => "null".to_owned(),
                    },
                    is_error: record.status == ToolCallStatus::Error,
                });
                observer.progress(TurnProgress::Tool(record.clone()));
                // A store that is down is not something the model can work around, and its
                // apology would end the turn for good: the turn fails, retryably, and the
                // client's retry runs it again (what its tools made is found, not remade).
                if record.error_code == Some(ErrorCode::Unavailable) {
                    return Err(AssistantError::Unavailable(format!(
                        "the {} tool could not reach its data; send the message again",
                        record.name
                    )));
                }
                output.tool_calls.push(record);
            }
            request.messages.push(LlmMessage::Assistant {
                text,
                tool_calls: calls,
            });
            request.messages.push(LlmMessage::ToolResults(results));
            if cancel.is_cancelled() {
                output.cancelled = true;
                break;
            }
        }
        if !output.cancelled && output.text.trim().is_empty() && !output.tool_calls.is_empty() {
            // A model that only ever called tools (even when none were offered) would leave
            // the user an empty answer: say what happened instead.
            tracing::warn!(
                provider = self.provider.name(),
                tool_calls = output.tool_calls.len(),
                "the model ended the turn without an answer in words"
            );
            let text = GAVE_UP.to_owned();
            observer.progress(TurnProgress::Delta(text.clone()));
            output.text = text;
        }
        tracing::debug!(
            provider = self.provider.name(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "turn finished"
        );
        Ok(output)
    }
}
