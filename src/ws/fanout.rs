//! Fan-out: how a domain event reaches the sockets of its user, on this instance and, with
//! several instances behind a load balancer, on the others.

use std::sync::Arc;

use serde_json::value::RawValue;
use tokio::sync::broadcast;

use super::hub::Hub;
use crate::domain::UserId;
use crate::domain::bus::{DomainEvent, EventBus, InProcessBus};
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

/// One instance: the hub of this process is the whole world.
pub struct LocalFanout {
    hub: Arc<Hub>,
    turns: Arc<Turns>,
}

impl LocalFanout {
    pub fn new(hub: Arc<Hub>, turns: Arc<Turns>) -> Self {
        Self { hub, turns }
    }
}

/// Applies an envelope to this instance: delivery to its sockets, or a cancel of its turn.
pub fn apply(hub: &Hub, turns: &Turns, envelope: &Envelope) {
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
    }
}

impl Fanout for LocalFanout {
    fn publish(&self, envelope: Envelope) {
        apply(&self.hub, &self.turns, &envelope);
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
            fanout.publish(Envelope::Event {
                user: event.user_id.as_str().to_owned(),
                name: event.change.name().to_owned(),
                payload: event.change.payload(),
                origin: event.origin.as_deref().map(str::to_owned),
            });
        }
        self.local.publish(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.local.subscribe()
    }
}
