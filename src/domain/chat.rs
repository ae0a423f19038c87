//! Chat turns: the user's message is stored (idempotently), the assistant runs with the user's
//! context and tools, and its answer is stored. The same code serves `/v1/chat` (JSON and
//! SSE) and the realtime edge; each edge turns [`ChatEvent`]s into its own wire format.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::assistant::{RecalledText, TurnContext, TurnObserver, TurnOutput, TurnProgress};
use super::bus::Change;
use super::conversation::{Conversation, Message, NewMessage, Role, ToolCall};
use super::error::{DomainError, DomainResult};
use super::event::EventRange;
use super::page::{Page, PageRequest};
use super::ports::{RangeQuery, TurnReads, TurnRows};
use super::recall::{Legs, RecallQuery};
use super::service::{CONTEXT_ITEMS_MAX, Domain, MAX_SERIES_PER_LISTING, expand_range};
use super::task::{Task, TaskFilter, TaskQuery, TaskStatus};
use super::tools::DomainTools;
use super::turns::Refused;
use super::values::UserId;

/// Conversation titles made from the first message are cut to about this many characters.
const TITLE_FROM_TEXT_MAX: usize = 60;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub conversation_id: Option<Uuid>,
    pub client_message_id: Option<String>,
    pub text: String,
    /// The connection the message came from (it is not echoed back there); opaque here.
    pub origin: Option<Arc<str>>,
}

/// What happens during a turn, in order, as clients see it (`chat:*` events).
#[derive(Debug, Clone, PartialEq)]
pub enum ChatEvent {
    /// A turn began: its answer will be stored under `message_id`. Not sent to clients (the
    /// realtime edge follows it, so that `chat:resume` knows of a turn before its first
    /// token; see [`ChatEvent::is_internal`]).
    Started {
        conversation_id: Uuid,
        message_id: Uuid,
    },
    /// A message was stored: the user's, or the assistant's (just before `Done`).
    Message(Message),
    Delta {
        conversation_id: Uuid,
        message_id: Uuid,
        text: String,
    },
    Tool {
        conversation_id: Uuid,
        message_id: Uuid,
        call: ToolCall,
    },
    Done {
        conversation_id: Uuid,
        message: Message,
    },
    Error {
        conversation_id: Uuid,
        client_message_id: Option<String>,
        code: &'static str,
        message: String,
        retryable: bool,
    },
}

impl ChatEvent {
    /// The event name (`chat:delta`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "chat:started",
            Self::Message(_) => "chat:message",
            Self::Delta { .. } => "chat:delta",
            Self::Tool { .. } => "chat:tool",
            Self::Done { .. } => "chat:done",
            Self::Error { .. } => "chat:error",
        }
    }

    /// Whether the event is for the server's own edges only, never written to a client.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Started { .. })
    }

    /// Whether an event name is that of an internal event (see [`Self::is_internal`]).
    pub fn is_internal_name(name: &str) -> bool {
        name == "chat:started"
    }

    /// The event payload as JSON text, camelCase as clients expect. Written straight from
    /// the event: a turn sends several of these, and a `serde_json::Value` tree for each
    /// would only be built to be written out again.
    pub fn payload(&self) -> Box<RawValue> {
        super::bus::json_text(&ChatPayload::of(self))
    }
}

/// The wire shape of a [`ChatEvent`]'s payload.
#[derive(serde::Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
enum ChatPayload<'a> {
    Started {
        conversation_id: Uuid,
        message_id: Uuid,
    },
    Message {
        message: &'a Message,
    },
    Delta {
        conversation_id: Uuid,
        message_id: Uuid,
        text: &'a str,
    },
    Tool {
        conversation_id: Uuid,
        message_id: Uuid,
        call: &'a ToolCall,
    },
    Done {
        conversation_id: Uuid,
        message: &'a Message,
    },
    Error {
        conversation_id: Uuid,
        client_message_id: Option<&'a str>,
        code: &'a str,
        message: &'a str,
        retryable: bool,
    },
}

impl<'a> ChatPayload<'a> {
    fn of(event: &'a ChatEvent) -> Self {
        match event {
            ChatEvent::Started {
                conversation_id,
                message_id,
            } => Self::Started {
                conversation_id: *conversation_id,
                message_id: *message_id,
            },
            ChatEvent::Message(message) => Self::Message { message },
            ChatEvent::Delta {
                conversation_id,
                message_id,
                text,
            } => Self::Delta {
                conversation_id: *conversation_id,
                message_id: *message_id,
                text,
            },
            ChatEvent::Tool {
                conversation_id,
                message_id,
                call,
            } => Self::Tool {
                conversation_id: *conversation_id,
                message_id: *message_id,
                call,
            },
            ChatEvent::Done {
                conversation_id,
                message,
            } => Self::Done {
                conversation_id: *conversation_id,
                message,
            },
            ChatEvent::Error {
                conversation_id,
                client_message_id,
                code,
                message,
                retryable,
            } => Self::Error {
                conversation_id: *conversation_id,
                client_message_id: client_message_id.as_deref(),
                code,
                message,
                retryable: *retryable,
            },
        }
    }
}

/// Receives a turn's events as they happen. Must not block.
pub trait ChatListener: Send + Sync {
    fn event(&self, event: ChatEvent);
}

/// Ignores every event (a caller that only wants the final result).
pub struct NoListener;

impl ChatListener for NoListener {
    fn event(&self, _: ChatEvent) {}
}

/// Publishes a turn's events on the bus (every socket of the user sees them), then hands
/// them to the caller's listener.
struct Publish<'a> {
    domain: &'a Domain,
    user: &'a UserId,
    inner: &'a dyn ChatListener,
}

impl ChatListener for Publish<'_> {
    fn event(&self, event: ChatEvent) {
        self.domain.publish(self.user, Change::Chat(event.clone()));
        self.inner.event(event);
    }
}

/// A user message accepted for a turn.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub user_message: Message,
    /// The stored answer when this is a retry of a turn that already finished.
    pub answer: Option<Message>,
    /// False when the message was stored by an earlier request with the same client id.
    pub fresh: bool,
}

/// A finished turn.
#[derive(Debug, Clone)]
pub struct ChatTurn {
    pub conversation_id: Uuid,
    pub user_message: Message,
    pub assistant_message: Message,
}

fn title_from(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if line.chars().count() <= TITLE_FROM_TEXT_MAX {
        return line.to_owned();
    }
    let cut: String = line.chars().take(TITLE_FROM_TEXT_MAX).collect();
    let cut = match cut.rfind(' ') {
        Some(space) if space > TITLE_FROM_TEXT_MAX / 2 => &cut[..space],
        _ => &cut,
    };
    format!("{}…", cut.trim_end())
}

/// Forwards progress to the listener and keeps what was produced, so that a failed turn can
/// still store the tools it ran.
struct Progress<'a> {
    listener: &'a dyn ChatListener,
    conversation_id: Uuid,
    message_id: Uuid,
    produced: Mutex<TurnOutput>,
}

impl TurnObserver for Progress<'_> {
    fn progress(&self, progress: TurnProgress) {
        let event = {
            let mut produced = self.produced.lock().unwrap_or_else(|e| e.into_inner());
            match progress {
                TurnProgress::Delta(text) => {
                    produced.text.push_str(&text);
                    ChatEvent::Delta {
                        conversation_id: self.conversation_id,
                        message_id: self.message_id,
                        text,
                    }
                }
                TurnProgress::Tool(call) => {
                    produced.tool_calls.push(call.clone());
                    ChatEvent::Tool {
                        conversation_id: self.conversation_id,
                        message_id: self.message_id,
                        call,
                    }
                }
            }
        };
        self.listener.event(event);
    }
}

impl Domain {
    /// Stores the user's message, idempotently on its client id: a retry with the same id
    /// and text returns the stored message (and its answer, if the turn finished); the same
    /// id with another text is a conflict. Every edge comes through here, so the message's
    /// limits and the user's send quota (charged once the message is valid) apply to all.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn accept_message(
        &self,
        user: &UserId,
        request: &ChatRequest,
    ) -> DomainResult<Accepted> {
        // A retry is found by the unique client id when the insert fails: a fresh message
        // costs no lookup.
        let now = self.ports.clock.now();
        let new = NewMessage {
            role: Role::User,
            content: request.text.clone(),
            tool_calls: Vec::new(),
            client_message_id: request.client_message_id.clone(),
            reply_to: None,
        };
        let max = self.settings.max_text_chars;
        if request.text.chars().count() > max {
            return Err(DomainError::invalid(
                "text",
                format!("must be at most {max} characters"),
            ));
        }
        let mut message = new.validate(Uuid::now_v7(), Uuid::nil(), now)?;
        self.sends
            .check(user)
            .map_err(|wait| DomainError::RateLimited {
                retry_after_secs: (wait.as_secs_f64().ceil() as u64).max(1),
            })?;
        let stored = match request.conversation_id {
            Some(conversation) => {
                message.conversation_id = conversation;
                self.ports
                    .conversations
                    .append_message(user, &message)
                    .await
                    .and_then(|m| m.ok_or(DomainError::NotFound))
            }
            None => {
                let conversation = Conversation {
                    id: Uuid::now_v7(),
                    title: Some(title_from(&request.text)).filter(|t| !t.is_empty()),
                    created_at: now,
                    updated_at: now,
                    last_message_at: Some(now),
                };
                message.conversation_id = conversation.id;
                self.ports
                    .conversations
                    .insert_with_message(user, &conversation, &message)
                    .await
                    .map(|()| message)
            }
        };
        match stored {
            Ok(user_message) => {
                self.signal_index();
                self.publish_from(
                    user,
                    Change::Chat(ChatEvent::Message(user_message.clone())),
                    request.origin.clone(),
                );
                Ok(Accepted {
                    user_message,
                    answer: None,
                    fresh: true,
                })
            }
            // This client id was stored before (a retry), or by a request racing this one.
            Err(DomainError::Conflict(_)) => self
                .replay(user, request)
                .await?
                .ok_or_else(|| DomainError::Conflict("clientMessageId is in use".into())),
            Err(e) => Err(e),
        }
    }

    async fn replay(&self, user: &UserId, request: &ChatRequest) -> DomainResult<Option<Accepted>> {
        let Some(client_id) = request.client_message_id.as_deref() else {
            return Ok(None);
        };
        let Some((sent, answer)) = self.ports.conversations.find_turn(user, client_id).await?
        else {
            return Ok(None);
        };
        let same_conversation = request
            .conversation_id
            .is_none_or(|c| c == sent.conversation_id);
        if sent.content != request.text || !same_conversation {
            return Err(DomainError::Conflict(
                "this clientMessageId was already used for another message".into(),
            ));
        }
        Ok(Some(Accepted {
            user_message: sent,
            answer,
            fresh: false,
        }))
    }

    /// Answers an accepted message: its stored answer if it has one, else a turn, run after
    /// the turns before it in the conversation. Progress goes to the listener and to the bus.
    pub async fn answer(
        &self,
        user: &UserId,
        accepted: &Accepted,
        listener: &dyn ChatListener,
    ) -> DomainResult<Message> {
        let message = &accepted.user_message;
        if let Some(answer) = &accepted.answer {
            listener.event(ChatEvent::Done {
                conversation_id: message.conversation_id,
                message: answer.clone(),
            });
            return Ok(answer.clone());
        }
        let mut ticket = match self
            .turns
            .reserve(user, message.conversation_id, message.id)
        {
            Ok(ticket) => ticket,
            Err(refused) => {
                let (code, text) = match refused {
                    Refused::Pending => ("conflict", "a turn for this message is already running"),
                    Refused::Closed => ("unavailable", "the server is shutting down"),
                };
                listener.event(ChatEvent::Error {
                    conversation_id: message.conversation_id,
                    client_message_id: message.client_message_id.clone(),
                    code,
                    message: text.to_owned(),
                    retryable: true,
                });
                return Err(refusal(refused));
            }
        };
        let cancel = ticket.start().await;
        if ticket.is_withdrawn() {
            return Err(DomainError::Erased);
        }
        self.run_turn(user, message, listener, cancel).await
    }

    /// Schedules the turn of an accepted message in the background, unless it has its answer
    /// or a turn already (a retry); the turn's progress goes to the bus only.
    pub fn schedule(&self, user: &UserId, accepted: &Accepted) {
        if accepted.answer.is_some() {
            return;
        }
        let message = accepted.user_message.clone();
        match self
            .turns
            .reserve(user, message.conversation_id, message.id)
        {
            Ok(mut ticket) => {
                let domain = self.clone();
                let user = user.clone();
                self.turns.spawn(async move {
                    let cancel = ticket.start().await;
                    if ticket.is_withdrawn() {
                        return;
                    }
                    // Failures went out as `chat:error`.
                    let _ = domain.run_turn(&user, &message, &NoListener, cancel).await;
                    drop(ticket);
                });
            }
            // A retry of a message whose turn is under way: the one turn goes on.
            Err(Refused::Pending) => {}
            Err(Refused::Closed) => self.publish(
                user,
                Change::Chat(ChatEvent::Error {
                    conversation_id: message.conversation_id,
                    client_message_id: message.client_message_id.clone(),
                    code: "unavailable",
                    message: "the server is shutting down; send the message again later".into(),
                    retryable: true,
                }),
            ),
        }
    }

    /// Runs the assistant on an accepted message and stores its answer. Progress goes to the
    /// listener and the bus; on failure the user's message stays stored (and the tools that
    /// ran are kept in a partial assistant message).
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    async fn run_turn(
        &self,
        user: &UserId,
        user_message: &Message,
        listener: &dyn ChatListener,
        cancel: CancellationToken,
    ) -> DomainResult<Message> {
        let listener = &Publish {
            domain: self,
            user,
            inner: listener,
        };
        let conversation_id = user_message.conversation_id;
        let message_id = Uuid::now_v7();
        listener.event(ChatEvent::Started {
            conversation_id,
            message_id,
        });
        // A turn that fails before the model runs still ends, with `chat:error`.
        let context = match self.context(user, user_message).await {
            Ok(context) => context,
            Err(e) => return Err(self.turn_failed(listener, user_message, e)),
        };
        let tools = DomainTools {
            domain: self.clone(),
            user: user.clone(),
            tz: self.settings.timezone,
            message: Some(user_message.id),
        };
        let progress = Progress {
            listener,
            conversation_id,
            message_id,
            produced: Mutex::new(TurnOutput::default()),
        };
        let started = std::time::Instant::now();
        let outcome = self
            .ports
            .assistant
            .run_turn(context, &tools, &progress, cancel)
            .await;
        let produced = progress
            .produced
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        let (output, failure) = match outcome {
            Ok(output) => (output, None),
            Err(e) => (produced, Some(e)),
        };
        tracing::info!(
            conversation = %conversation_id,
            elapsed_ms = started.elapsed().as_millis() as u64,
            tools = output.tool_calls.len(),
            cancelled = output.cancelled,
            failed = failure.is_some(),
            "chat turn"
        );
        // A failed turn that already changed something keeps a record of it; it does not
        // count as the answer, so a retry runs the turn again.
        if let Some(e) = failure.as_ref().filter(|_| output.tool_calls.is_empty()) {
            return Err(self.turn_failed(listener, user_message, e.clone().into()));
        }
        let answer = NewMessage {
            role: Role::Assistant,
            content: output.text,
            tool_calls: output.tool_calls,
            client_message_id: None,
            reply_to: failure.is_none().then_some(user_message.id),
        }
        .validate(message_id, conversation_id, self.ports.clock.now());
        let answer = match answer {
            Ok(answer) => answer,
            Err(e) => return Err(self.turn_failed(listener, user_message, e)),
        };
        let stored = self
            .ports
            .conversations
            .append_message(user, &answer)
            .await
            .and_then(|m| m.ok_or(DomainError::NotFound));
        let message = match stored {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(error = %e, "the assistant's answer could not be stored");
                return Err(self.turn_failed(listener, user_message, e));
            }
        };
        self.signal_index();
        listener.event(ChatEvent::Message(message.clone()));
        if let Some(e) = failure {
            return Err(self.turn_failed(listener, user_message, e.into()));
        }
        listener.event(ChatEvent::Done {
            conversation_id,
            message: message.clone(),
        });
        Ok(message)
    }

    /// Tells the listener the turn failed; the user's message stays stored.
    fn turn_failed(
        &self,
        listener: &dyn ChatListener,
        user_message: &Message,
        error: DomainError,
    ) -> DomainError {
        tracing::warn!(error = %error, "chat turn failed");
        let (code, message) = match &error {
            DomainError::Unavailable(m) => ("unavailable", m.clone()),
            DomainError::BadGateway(m) => ("bad_gateway", m.clone()),
            _ => ("internal", "the turn failed".to_owned()),
        };
        listener.event(ChatEvent::Error {
            conversation_id: user_message.conversation_id,
            client_message_id: user_message.client_message_id.clone(),
            code,
            message,
            retryable: matches!(error, DomainError::Unavailable(_)),
        });
        error
    }

    /// A whole turn, waited for: accept, then answer.
    pub async fn chat(
        &self,
        user: &UserId,
        request: ChatRequest,
        listener: &dyn ChatListener,
    ) -> DomainResult<ChatTurn> {
        let accepted = self.accept_message(user, &request).await?;
        if accepted.fresh {
            listener.event(ChatEvent::Message(accepted.user_message.clone()));
        }
        let assistant_message = self.answer(user, &accepted, listener).await?;
        let user_message = accepted.user_message;
        Ok(ChatTurn {
            conversation_id: user_message.conversation_id,
            user_message,
            assistant_message,
        })
    }

    /// What the model sees besides the message: recent history, open tasks, the coming
    /// week's events and the memories closest to the message. Recall is best-effort: a
    /// vector store that is down costs the turn its memories, not the turn.
    async fn context(&self, user: &UserId, user_message: &Message) -> DomainResult<TurnContext> {
        let now = self.ports.clock.now();
        let reads = TurnReads {
            conversation_id: user_message.conversation_id,
            before: (user_message.created_at, user_message.id),
            history_limit: self.settings.history_messages,
            open_tasks: TaskQuery {
                filter: TaskFilter {
                    open: true,
                    ..Default::default()
                },
                page: PageRequest::parse(
                    Some(self.settings.context_items),
                    None,
                    CONTEXT_ITEMS_MAX,
                )?,
            },
            events: RangeQuery {
                range: EventRange {
                    from: now,
                    to: now + Duration::days(7),
                },
                page: PageRequest::parse(
                    Some(self.settings.context_items),
                    None,
                    CONTEXT_ITEMS_MAX,
                )?,
                max_series: MAX_SERIES_PER_LISTING,
            },
        };
        let rows = self.ports.turn_reads.turn_reads(user, &reads);
        let recalled = self.recall_texts(user, user_message);
        let (rows, memories) = tokio::join!(rows, recalled);
        let TurnRows {
            history,
            open_tasks,
            events,
        } = rows?;
        // A series too costly to expand is left out of the context (and logged), not the turn.
        let (upcoming_events, _) = expand_range(events, reads.events).await?;
        // The newest open tasks, those in progress first.
        let mut open_tasks =
            Page::from_rows(open_tasks, reads.open_tasks.page.limit, Task::cursor).items;
        open_tasks.sort_by_key(|t| t.status != TaskStatus::InProgress);
        Ok(TurnContext {
            user: user.clone(),
            now,
            history,
            text: user_message.content.clone(),
            open_tasks,
            upcoming_events: upcoming_events.items,
            memories,
        })
    }

    /// What the user's data says about their message (the message itself left out).
    async fn recall_texts(&self, user: &UserId, message: &Message) -> Vec<RecalledText> {
        if self.settings.recall_limit == 0 {
            return Vec::new();
        }
        let query = RecallQuery {
            text: &message.content,
            kinds: &[],
            limit: self.settings.recall_limit,
            exclude: Some(message.id),
            legs: Legs::Both,
            fusion: None,
        };
        match self.recall(user, query).await {
            Ok(hits) => hits
                .into_iter()
                .map(|h| RecalledText {
                    kind: h.kind,
                    id: h.id,
                    text: h.snippet,
                    created_at: Some(h.created_at),
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "recall failed; the turn goes on without memories");
                Vec::new()
            }
        }
    }
}

fn refusal(refused: Refused) -> DomainError {
    match refused {
        Refused::Pending => DomainError::Conflict(
            "a turn for this message is already running; its answer will be stored".into(),
        ),
        Refused::Closed => DomainError::Unavailable("the server is shutting down".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_come_from_the_first_line() {
        assert_eq!(title_from("  add milk \nmore"), "add milk");
        let long = "please remind me to call the plumber about the leaking kitchen sink tomorrow";
        let title = title_from(long);
        assert!(title.ends_with('…') && title.chars().count() <= TITLE_FROM_TEXT_MAX + 1);
        assert!(long.starts_with(title.trim_end_matches('…')));
        assert_eq!(title_from("   "), "");
    }
}
