//! Domain events: every change to a task or an event is published here, so that the realtime
//! edge can fan it out to the user's sockets (and other instances, through their own bus).

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::chat::{ChatEvent, TurnStep};
use super::event::Event;
use super::reminder::Reminder;
use super::task::Task;
use super::values::UserId;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    TaskCreated(Task),
    TaskUpdated(Task),
    TaskDeleted(Uuid),
    EventCreated(Event),
    EventUpdated(Event),
    EventDeleted(Uuid),
    /// A reminder fired: every device of the user shows it.
    ReminderDue(Reminder),
    /// A reminder was snoozed, dismissed, cancelled or changed (or missed while the server
    /// was down).
    ReminderUpdated(Reminder),
    /// A chat message was stored, or a turn made progress (`chat:*`).
    Chat(ChatEvent),
    /// The user was erased: every session of theirs ends.
    UserErased,
    /// The user asked to stop the turn running in this conversation, wherever it runs.
    CancelTurn(Uuid),
}

impl Change {
    /// The event name clients see (`task:created`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Self::TaskCreated(_) => "task:created",
            Self::TaskUpdated(_) => "task:updated",
            Self::TaskDeleted(_) => "task:deleted",
            Self::EventCreated(_) => "event:created",
            Self::EventUpdated(_) => "event:updated",
            Self::EventDeleted(_) => "event:deleted",
            Self::ReminderDue(_) => "reminder:due",
            Self::ReminderUpdated(_) => "reminder:updated",
            Self::Chat(event) => event.name(),
            Self::UserErased => "user:erased",
            Self::CancelTurn(_) => "chat:cancel",
        }
    }

    /// The payload clients see, as JSON text: `{task}`, `{event}`, `{reminder}` or `{id}`.
    pub fn payload(&self) -> Box<RawValue> {
        #[derive(Serialize)]
        #[serde(untagged)]
        enum Body<'a> {
            Task { task: &'a Task },
            Event { event: &'a Event },
            Reminder { reminder: &'a Reminder },
            Gone { id: Uuid },
            Empty {},
        }
        let body = match self {
            Self::TaskCreated(task) | Self::TaskUpdated(task) => Body::Task { task },
            Self::EventCreated(event) | Self::EventUpdated(event) => Body::Event { event },
            Self::ReminderDue(reminder) | Self::ReminderUpdated(reminder) => {
                Body::Reminder { reminder }
            }
            Self::TaskDeleted(id) | Self::EventDeleted(id) => Body::Gone { id: *id },
            Self::Chat(event) => return event.payload(),
            Self::UserErased | Self::CancelTurn(_) => Body::Empty {},
        };
        json_text(&body)
    }
}

/// A payload written once as JSON text (no tree, and not parsed again to be wrapped); `null`
/// if its Serialize code fails, which these types' derived code does not.
pub(super) fn json_text(body: &impl Serialize) -> Box<RawValue> {
    serde_json::value::to_raw_value(body).unwrap_or_else(|_| RawValue::NULL.to_owned())
}

#[derive(Debug, Clone)]
pub struct DomainEvent {
    /// Whose data changed: only this user's sockets may see the event.
    pub user_id: UserId,
    pub change: Change,
    /// The connection that caused the change, when it already knows (its own chat message
    /// is not echoed back to it). Opaque to the domain.
    pub origin: Option<Arc<str>>,
    /// The change's payload (`Change::payload`), when the publisher has written it already.
    pub written: Option<Box<RawValue>>,
}

impl PartialEq for DomainEvent {
    fn eq(&self, other: &Self) -> bool {
        self.user_id == other.user_id && self.change == other.change && self.origin == other.origin
    }
}

pub trait EventBus: Send + Sync {
    /// Publishes after the change was committed. Never blocks; with no subscriber it is a no-op.
    fn publish(&self, event: DomainEvent);
    /// Every event published from now on. A subscriber that falls behind by more than the bus
    /// capacity is told how many it missed (`RecvError::Lagged`).
    fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>>;
}

/// The bus of one process.
pub struct InProcessBus {
    sender: broadcast::Sender<Arc<DomainEvent>>,
}

impl InProcessBus {
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Self { sender }
    }
}

impl Default for InProcessBus {
    fn default() -> Self {
        Self::new(4096)
    }
}

impl EventBus for InProcessBus {
    fn publish(&self, event: DomainEvent) {
        tracing::debug!(user = %event.user_id, change = event.change.name(), "domain event");
        // An error only means that nobody listens right now.
        let _ = self.sender.send(Arc::new(event));
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.sender.subscribe()
    }
}

/// What every instance of the server acts on, as it crosses between them (see
/// [`super::ports::Relay`]): an event for a user's sockets, a turn to cancel, an erased
/// user. Externally tagged, so that a payload from another instance is read once, as it was
/// written, straight into its `RawValue`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    Event(Delivery),
    Cancel {
        user: UserId,
        conversation: Uuid,
    },
    /// Their sockets are disconnected and their turns cancelled.
    Erased {
        user: UserId,
    },
}

/// An event for the sockets of a user.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub user: UserId,
    pub name: Cow<'static, str>,
    /// The event's payload, JSON written once and passed on as is; none for an event the
    /// edges only follow (`chat:started`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Box<RawValue>>,
    /// The step of a turn the event is (for `chat:resume`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<TurnStep>,
    /// The connection the change came from (not echoed back to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Arc<str>>,
}

impl Signal {
    /// A domain event as the edges act on it, its payload written once: the one its
    /// publisher wrote (taken from the event), or written now.
    pub fn of(event: &mut DomainEvent) -> Self {
        let written = event.written.take();
        let written = |event: &DomainEvent| written.unwrap_or_else(|| event.change.payload());
        let user = event.user_id.clone();
        let (payload, step) = match &event.change {
            Change::UserErased => return Self::Erased { user },
            Change::CancelTurn(conversation) => {
                return Self::Cancel {
                    user,
                    conversation: *conversation,
                };
            }
            Change::Chat(chat) if chat.is_internal() => (None, chat.step()),
            Change::Chat(chat) => (Some(written(event)), chat.step()),
            _ => (Some(written(event)), None),
        };
        Self::Event(Delivery {
            user,
            name: Cow::Borrowed(event.change.name()),
            payload,
            step,
            origin: event.origin.clone(),
        })
    }
}
