//! Fan-out: how a domain event reaches the sockets of its user, on this instance and, with
//! several instances behind a load balancer, on the others.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::hub::Hub;
use super::queue::SessionEnd;
use crate::domain::UserId;
use crate::domain::bus::{Change, DomainEvent, EventBus, InProcessBus};
use crate::domain::service::SignIns;
use crate::domain::turns::Turns;

/// What crosses between instances: an event for a user's sockets, or a request to cancel a
/// turn that may be running elsewhere.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Envelope {
    Event {
        user: String,
        name: String,
        /// The event's payload, JSON written once by the publisher and passed on as is.
        #[serde(deserialize_with = "raw_payload")]
        payload: Box<RawValue>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
    },
    Cancel {
        user: String,
        conversation: uuid::Uuid,
    },
    /// The user was erased: their sockets are disconnected and their turns cancelled.
    Erased { user: String },
}

/// Reads a payload from another instance. The envelope is internally tagged, so serde buffers
/// it before this runs, and a raw value cannot be taken from that buffer: the payload is read
/// as a tree and written out again (on this path only; local delivery never parses it).
fn raw_payload<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Box<RawValue>, D::Error> {
    let value = <serde_json::Value as serde::Deserialize>::deserialize(d)?;
    serde_json::value::to_raw_value(&value).map_err(serde::de::Error::custom)
}

/// Carries events to every instance's hub.
pub trait Fanout: Send + Sync {
    /// Delivers to the user's sockets here (at once) and on every other instance.
    fn publish(&self, envelope: Envelope);
    /// `local` or `postgres`.
    fn name(&self) -> &'static str;
}

/// What an envelope acts on in this process.
#[derive(Clone)]
pub struct Local {
    pub hub: Arc<Hub>,
    pub turns: Arc<Turns>,
    pub sign_ins: Arc<SignIns>,
}

/// One instance: the hub of this process is the whole world.
pub struct LocalFanout {
    local: Local,
}

impl LocalFanout {
    pub fn new(local: Local) -> Self {
        Self { local }
    }
}

/// Applies an envelope to this instance: delivery to its sockets, a cancel of its turn, or
/// the end of an erased user's sessions.
pub fn apply(local: &Local, envelope: &Envelope) {
    let Local {
        hub,
        turns,
        sign_ins,
    } = local;
    match envelope {
        Envelope::Event {
            user,
            name,
            payload,
            origin,
        } => {
            if let Ok(user) = UserId::parse(user) {
                hub.deliver(&user, name, payload.get(), origin.as_deref());
            }
        }
        Envelope::Cancel { user, conversation } => {
            if let Ok(user) = UserId::parse(user) {
                turns.cancel(&user, *conversation);
            }
        }
        Envelope::Erased { user } => {
            if let Ok(user) = UserId::parse(user) {
                sign_ins.remove(&user);
                let sockets = hub.end_sessions(&user, SessionEnd::UserErased);
                let turns = turns.cancel_user(&user);
                tracing::info!(user = %user, sockets, turns, "erased user's sessions ended here");
            }
        }
    }
}

impl Fanout for LocalFanout {
    fn publish(&self, envelope: Envelope) {
        apply(&self.local, &envelope);
    }

    fn name(&self) -> &'static str {
        "local"
    }
}

/// The domain's event bus as the server runs it: every event goes to the fan-out (and so to
/// the user's sockets everywhere) and to in-process subscribers.
pub struct RealtimeBus {
    local: InProcessBus,
    fanout: std::sync::OnceLock<Arc<dyn Fanout>>,
}

impl RealtimeBus {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            local: InProcessBus::default(),
            fanout: std::sync::OnceLock::new(),
        })
    }

    /// Connects the fan-out (made after the domain, whose turns it cancels).
    pub fn connect(&self, fanout: Arc<dyn Fanout>) {
        let _ = self.fanout.set(fanout);
    }
}

impl EventBus for RealtimeBus {
    fn publish(&self, event: DomainEvent) {
        if let Some(fanout) = self.fanout.get() {
            let user = event.user_id.as_str().to_owned();
            fanout.publish(match &event.change {
                Change::UserErased => Envelope::Erased { user },
                change => Envelope::Event {
                    user,
                    name: change.name().to_owned(),
                    payload: change.payload(),
                    origin: event.origin.as_deref().map(str::to_owned),
                },
            });
        }
        self.local.publish(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.local.subscribe()
    }
}
