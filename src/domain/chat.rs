//! Chat turns: the user's message is stored (idempotently), the assistant runs with the user's
//! context and tools, and its answer is stored. The same code serves `/v1/chat` (JSON and
//! SSE) and the realtime edge; each edge turns [`ChatEvent`]s into its own wire format.

use std::sync::{Arc, Mutex};

use chrono::Duration;
use serde_json::value::RawValue;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::assistant::{RecalledText, TurnContext, TurnObserver, TurnOutput, TurnProgress};
use super::bus::Change;
use super::conversation::{Conversation, Message, NewMessage, Role, ToolCall};
use super::error::{DomainError, DomainResult, ErrorCode};
use super::event::EventRange;
use super::page::{Page, PageRequest};
use super::ports::{Meter, RangeQuery, TurnOutcome, TurnReads, TurnRows};
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

/// What happens during a turn, in order, as clients see it (`chat:*` events). The wire
/// payload is this type serialized: each variant's fields, camelCase.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged, rename_all_fields = "camelCase")]
pub enum ChatEvent {
    /// A turn was scheduled: its answer will be stored under `message_id`. Not sent to
    /// clients (the realtime edge follows it, so that `chat:resume` knows of a turn from
    /// the moment it is scheduled; see [`ChatEvent::is_internal`]).
    Started {
        conversation_id: Uuid,
        message_id: Uuid,
    },
    /// A message was stored: the user's, or the assistant's (just before `Done`).
    Message { message: Message },
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
        /// The id the answer would have been stored under.
        message_id: Uuid,
        client_message_id: Option<String>,
        code: ErrorCode,
        message: String,
        retryable: bool,
    },
}

/// How far a turn got, as the realtime edge follows it (for `chat:resume`), read from the
/// typed events on this instance and carried with them to the others.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TurnStep {
    /// Scheduled; its answer will be stored under this id.
    Started { conversation: Uuid, answer: Uuid },
    /// Streamed this text (a tool call streams none).
    Streamed {
        conversation: Uuid,
        answer: Uuid,
        text: String,
    },
    /// Ended, with `chat:done` or `chat:error`.
    Ended { conversation: Uuid, answer: Uuid },
}

impl ChatEvent {
    /// The event name (`chat:delta`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Started { .. } => "chat:started",
            Self::Message { .. } => "chat:message",
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

    /// Whether this event ends its turn.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Done { .. } | Self::Error { .. })
    }

    /// How far the turn got with this event; `None` for a stored message.
    pub fn step(&self) -> Option<TurnStep> {
        Some(match self {
            Self::Started {
                conversation_id,
                message_id,
            } => TurnStep::Started {
                conversation: *conversation_id,
                answer: *message_id,
            },
            Self::Delta {
                conversation_id,
                message_id,
                text,
            } => TurnStep::Streamed {
                conversation: *conversation_id,
                answer: *message_id,
                text: text.clone(),
            },
            Self::Tool {
                conversation_id,
                message_id,
                ..
            } => TurnStep::Streamed {
                conversation: *conversation_id,
                answer: *message_id,
                text: String::new(),
            },
            Self::Done {
                conversation_id,
                message,
            } => TurnStep::Ended {
                conversation: *conversation_id,
                answer: message.id,
            },
            Self::Error {
                conversation_id,
                message_id,
                ..
            } => TurnStep::Ended {
                conversation: *conversation_id,
                answer: *message_id,
            },
            Self::Message { .. } => return None,
        })
    }

    /// The event payload as JSON text, written straight from the event: a turn sends
    /// several of these, and a `serde_json::Value` tree for each would only be built to be
    /// written out again.
    pub fn payload(&self) -> Box<RawValue> {
        super::bus::json_text(self)
    }
}

/// Hears a turn's events as they happen (they also go on the bus, to every socket of the
/// user). Must not block.
pub trait ChatListener: Send + Sync {
    /// An event, and its payload as JSON text (written once, for every edge).
    fn event(&self, event: &ChatEvent, payload: &RawValue);
    /// The turn ended: its stored answer, or why it failed (after its `chat:done` or
    /// `chat:error` event). Called exactly once per scheduled turn.
    fn ended(&self, outcome: DomainResult<Message>) {
        let _ = outcome;
    }
}

/// Ignores every event (an edge that follows the turn on the bus).
pub struct NoListener;

impl ChatListener for NoListener {
    fn event(&self, _: &ChatEvent, _: &RawValue) {}
}

/// What became of a chat message that was accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The user's message as stored.
    pub message: Message,
    /// False when it was stored by an earlier request with the same client id (a retry).
    pub fresh: bool,
    pub turn: TurnState,
}

#[derive(Debug, Clone)]
pub enum TurnState {
    /// Its turn was scheduled: the listener and the bus hear its events, and exactly one of
    /// them ends it (`chat:done` or `chat:error`); its answer will be stored under this id.
    Scheduled { answer: Uuid },
    /// A retry of a turn that finished: its stored answer (no turn runs).
    Answered(Message),
    /// A retry of a message whose turn is queued or running: that turn goes on, and its
    /// events reach the bus (not this request's listener).
    Running,
}

/// A user message stored for a turn.
struct Accepted {
    user_message: Message,
    /// The stored answer when this is a retry of a turn that already finished.
    answer: Option<Message>,
    /// False when the message was stored by an earlier request with the same client id.
    fresh: bool,
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

/// Forwards progress to the turn's ending and keeps what was produced, so that a failed
/// turn can still store the tools it ran.
struct Progress<'a> {
    ending: &'a Ending,
    produced: Mutex<TurnOutput>,
}

impl TurnObserver for Progress<'_> {
    fn progress(&self, progress: TurnProgress) {
        let (conversation_id, message_id) = (self.ending.conversation_id, self.ending.message_id);
        let event = {
            let mut produced = self.produced.lock().unwrap_or_else(|e| e.into_inner());
            match progress {
                TurnProgress::Delta(text) => {
                    produced.text.push_str(&text);
                    ChatEvent::Delta {
                        conversation_id,
                        message_id,
                        text,
                    }
                }
                TurnProgress::Tool(call) => {
                    produced.tool_calls.push(call.clone());
                    ChatEvent::Tool {
                        conversation_id,
                        message_id,
                        call,
                    }
                }
            }
        };
        self.ending.event(event);
    }
}

type Publish = Box<dyn Fn(ChatEvent, Box<RawValue>) + Send + Sync>;

/// A scheduled turn's events, and its promise of exactly one terminal event: `done` and
/// `fail` send it and consume the ending; an ending dropped without either (a failure
/// nobody handled, a panic, a task dropped at shutdown) sends `chat:error` itself. Every
/// event goes to the listener and on the bus.
struct Ending {
    /// Where events go besides the listener: the bus, for the user's sockets.
    publish: Publish,
    conversation_id: Uuid,
    /// The id the answer will be stored under.
    message_id: Uuid,
    client_message_id: Option<String>,
    listener: Arc<dyn ChatListener>,
    meter: Arc<dyn Meter>,
    ended: bool,
}

impl Ending {
    /// A turn scheduled for the message: `chat:started` goes out at once.
    fn begin(
        domain: &Domain,
        user: &UserId,
        message: &Message,
        listener: Arc<dyn ChatListener>,
    ) -> Self {
        let domain_meter = domain.ports.meter.clone();
        let (domain, user) = (domain.clone(), user.clone());
        let publish: Publish = Box::new(move |event, payload| {
            domain.publish_written(&user, Change::Chat(event), None, payload)
        });
        Self::with(publish, message, listener, domain_meter)
    }

    fn with(
        publish: Publish,
        message: &Message,
        listener: Arc<dyn ChatListener>,
        meter: Arc<dyn Meter>,
    ) -> Self {
        let ending = Self {
            publish,
            conversation_id: message.conversation_id,
            message_id: Uuid::now_v7(),
            client_message_id: message.client_message_id.clone(),
            listener,
            meter,
            ended: false,
        };
        ending.event(ChatEvent::Started {
            conversation_id: ending.conversation_id,
            message_id: ending.message_id,
        });
        ending
    }

    fn event(&self, event: ChatEvent) {
        let payload = event.payload();
        self.listener.event(&event, &payload);
        (self.publish)(event, payload);
    }

    fn done(mut self, message: Message) {
        self.ended = true;
        self.meter.turn_ended(TurnOutcome::Answered);
        self.event(ChatEvent::Done {
            conversation_id: self.conversation_id,
            message: message.clone(),
        });
        self.listener.ended(Ok(message));
    }

    fn fail(mut self, error: DomainError) {
        self.ended = true;
        self.meter.turn_ended(TurnOutcome::Failed(error.code()));
        self.send_error(&error);
        self.listener.ended(Err(error));
    }

    fn send_error(&self, error: &DomainError) {
        tracing::warn!(error = %error, conversation = %self.conversation_id, "chat turn failed");
        let problem = error.problem();
        self.event(ChatEvent::Error {
            conversation_id: self.conversation_id,
            message_id: self.message_id,
            client_message_id: self.client_message_id.clone(),
            code: problem.code,
            message: problem.message,
            retryable: error.is_retryable(),
        });
    }
}

impl Drop for Ending {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        tracing::error!(conversation = %self.conversation_id, "a chat turn stopped without ending (a panic, or its task was dropped)");
        self.meter.turn_ended(TurnOutcome::Abandoned);
        let error = DomainError::Unavailable(
            "the turn stopped before it ended; send the message again".into(),
        );
        self.send_error(&error);
        self.listener.ended(Err(error));
    }
}

/// Hands a waiting caller the turn's outcome.
struct Waiter(Mutex<Option<oneshot::Sender<DomainResult<Message>>>>);

impl ChatListener for Waiter {
    fn event(&self, _: &ChatEvent, _: &RawValue) {}

    fn ended(&self, outcome: DomainResult<Message>) {
        let sender = self.0.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(sender) = sender {
            // The caller went away: the turn was stored all the same.
            let _ = sender.send(outcome);
        }
    }
}

impl Domain {
    /// A chat message from any edge, from request to the end of its turn: its text and client
    /// id are validated, the user's send quota is charged, the message is stored
    /// (idempotently on its client id), and then either its stored answer is returned (a
    /// retry of a finished turn), or its turn is scheduled after the turns before it in the
    /// conversation. Returns once the message is stored; the turn's events go to `listener`
    /// and on the bus, and exactly one `chat:done` or `chat:error` ends it.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    pub async fn send(
        &self,
        user: &UserId,
        request: ChatRequest,
        listener: Arc<dyn ChatListener>,
    ) -> DomainResult<Sent> {
        if self.turns.is_closed() {
            return Err(refusal(Refused::Closed));
        }
        let Accepted {
            user_message: message,
            answer,
            fresh,
        } = self.accept_message(user, &request).await?;
        if fresh {
            // The other sockets of the user see the message; the one it came from has its ack.
            let echo = ChatEvent::Message {
                message: message.clone(),
            };
            let payload = echo.payload();
            listener.event(&echo, &payload);
            self.publish_written(user, Change::Chat(echo), request.origin, payload);
        }
        if let Some(answer) = answer {
            return Ok(Sent {
                message,
                fresh,
                turn: TurnState::Answered(answer),
            });
        }
        let mut ticket = match self
            .turns
            .reserve(user, message.conversation_id, message.id)
        {
            Ok(ticket) => ticket,
            Err(Refused::Pending) => {
                return Ok(Sent {
                    message,
                    fresh,
                    turn: TurnState::Running,
                });
            }
            // Stored, not answered: a retry with the same client id schedules it.
            Err(refused @ Refused::Closed) => return Err(refusal(refused)),
        };
        let ending = Ending::begin(self, user, &message, listener);
        let answer = ending.message_id;
        let (domain, user, user_message) = (self.clone(), user.clone(), message.clone());
        // A child of the request or socket event that scheduled it.
        let span = tracing::info_span!(
            "chat_turn",
            conversation = %message.conversation_id,
            answer = %answer
        );
        self.turns.spawn(tracing::Instrument::instrument(
            async move {
                let cancel = ticket.start().await;
                if ticket.is_withdrawn() {
                    ending.fail(DomainError::Erased);
                    return;
                }
                match domain.run_turn(&user, &user_message, &ending, cancel).await {
                    Ok(answer) => ending.done(answer),
                    Err(e) => ending.fail(e),
                }
                // The next turn of the conversation starts after this one's last event.
                drop(ticket);
            },
            span,
        ));
        Ok(Sent {
            message,
            fresh,
            turn: TurnState::Scheduled { answer },
        })
    }

    /// A whole turn, waited for: [`Self::send`], then the turn's outcome.
    pub async fn chat(&self, user: &UserId, request: ChatRequest) -> DomainResult<ChatTurn> {
        let (sender, outcome) = oneshot::channel();
        let waiter = Arc::new(Waiter(Mutex::new(Some(sender))));
        let sent = self.send(user, request, waiter).await?;
        let assistant_message = match sent.turn {
            TurnState::Answered(answer) => answer,
            TurnState::Running => return Err(refusal(Refused::Pending)),
            TurnState::Scheduled { .. } => outcome.await.map_err(|_| {
                DomainError::Internal(anyhow::anyhow!("a chat turn ended without an outcome"))
            })??,
        };
        Ok(ChatTurn {
            conversation_id: sent.message.conversation_id,
            user_message: sent.message,
            assistant_message,
        })
    }

    /// Stores the user's message, idempotently on its client id: a retry with the same id
    /// and text returns the stored message (and its answer, if the turn finished); the same
    /// id with another text is a conflict. The message's limits and the user's send quota
    /// (charged once the message is valid) apply here, whatever the edge.
    async fn accept_message(&self, user: &UserId, request: &ChatRequest) -> DomainResult<Accepted> {
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

    /// Runs the assistant on an accepted message and stores its answer. Progress goes to the
    /// ending (the listener and the bus); on failure the user's message stays stored (and
    /// the tools that ran are kept in a partial assistant message). The caller ends the turn.
    #[tracing::instrument(level = "debug", skip_all, fields(user = %user))]
    async fn run_turn(
        &self,
        user: &UserId,
        user_message: &Message,
        ending: &Ending,
        cancel: CancellationToken,
    ) -> DomainResult<Message> {
        let conversation_id = user_message.conversation_id;
        let context = self.context(user, user_message).await?;
        let tools = DomainTools::for_turn(self, user.clone(), user_message.id, conversation_id);
        let progress = Progress {
            ending,
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
            return Err(e.clone().into());
        }
        let answer = NewMessage {
            role: Role::Assistant,
            content: output.text,
            tool_calls: output.tool_calls,
            client_message_id: None,
            reply_to: failure.is_none().then_some(user_message.id),
        }
        .validate(ending.message_id, conversation_id, self.ports.clock.now())
        // What the model wrote is not the client's request: a refusal here is the server's.
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("the answer is not storable: {e}")))?;
        let message = self
            .ports
            .conversations
            .append_message(user, &answer)
            .await
            .and_then(|m| m.ok_or(DomainError::NotFound))
            .inspect_err(
                |e| tracing::warn!(error = %e, "the assistant's answer could not be stored"),
            )?;
        self.signal_index();
        ending.event(ChatEvent::Message {
            message: message.clone(),
        });
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(message),
        }
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
        let (upcoming_events, _) =
            expand_range(events, reads.events, self.settings.timezone).await?;
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
        if self.settings.recall_limit == 0 || !self.ports.assistant.reads_memories() {
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

    /// What a turn told its listener and its bus.
    #[derive(Default)]
    struct Heard {
        events: Mutex<Vec<&'static str>>,
        published: Arc<Mutex<Vec<&'static str>>>,
        outcomes: Mutex<Vec<bool>>,
    }

    impl ChatListener for Heard {
        fn event(&self, event: &ChatEvent, _: &RawValue) {
            self.events.lock().unwrap().push(event.name());
        }

        fn ended(&self, outcome: DomainResult<Message>) {
            self.outcomes.lock().unwrap().push(outcome.is_ok());
        }
    }

    fn message() -> Message {
        Message {
            id: Uuid::now_v7(),
            conversation_id: Uuid::now_v7(),
            role: Role::User,
            content: "hello".into(),
            tool_calls: Vec::new(),
            client_message_id: Some("c".into()),
            created_at: chrono::Utc::now(),
            reply_to: None,
        }
    }

    fn ending(heard: &Arc<Heard>) -> Ending {
        let published = heard.published.clone();
        let publish: Publish = Box::new(move |e, _| published.lock().unwrap().push(e.name()));
        Ending::with(
            publish,
            &message(),
            heard.clone(),
            Arc::new(crate::domain::ports::NoMeter),
        )
    }

    #[test]
    fn an_ended_turn_sends_its_one_terminal_event() {
        let heard = Arc::new(Heard::default());
        ending(&heard).done(message());
        ending(&heard).fail(DomainError::Unavailable("down".into()));
        let expected = ["chat:started", "chat:done", "chat:started", "chat:error"];
        assert_eq!(*heard.events.lock().unwrap(), expected);
        assert_eq!(*heard.published.lock().unwrap(), expected);
        assert_eq!(*heard.outcomes.lock().unwrap(), [true, false]);
    }

    #[tokio::test]
    async fn a_turn_that_panics_or_is_dropped_still_ends_once() {
        let heard = Arc::new(Heard::default());
        let held = ending(&heard);
        let task = tokio::spawn(async move {
            let _held = held;
            panic!("a bug in a turn");
        });
        assert!(task.await.is_err());
        drop(ending(&heard));
        let expected = ["chat:started", "chat:error", "chat:started", "chat:error"];
        assert_eq!(*heard.events.lock().unwrap(), expected);
        assert_eq!(*heard.published.lock().unwrap(), expected);
        assert_eq!(*heard.outcomes.lock().unwrap(), [false, false]);
    }

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
