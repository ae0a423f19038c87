//! Fan-out: how a domain event reaches the sockets of its user, on this instance at once and,
//! with several instances behind a load balancer, on the others through the relay.

use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::hub::Hub;
use crate::domain::Domain;
use crate::domain::bus::{DomainEvent, EventBus, InProcessBus, Signal};
use crate::domain::ports::Relay;

/// The domain's event bus as the server runs it: every event goes to this instance's hub,
/// to the other instances (through the relay) and to in-process subscribers.
pub struct RealtimeBus {
    local: InProcessBus,
    hub: Arc<Hub>,
    relay: Arc<dyn Relay>,
}

impl RealtimeBus {
    pub fn new(hub: Arc<Hub>, relay: Arc<dyn Relay>) -> Arc<Self> {
        Arc::new(Self {
            local: InProcessBus::default(),
            hub,
            relay,
        })
    }
}

impl EventBus for RealtimeBus {
    fn publish(&self, mut event: DomainEvent) {
        let signal = Signal::of(&mut event);
        self.hub.apply(&signal);
        self.relay.send(&signal);
        self.local.publish(event);
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<DomainEvent>> {
        self.local.subscribe()
    }
}

/// Acts on the other instances' signals here, as they arrive: the domain's part (a turn to
/// cancel, an erased user's sign-ins and turns), then the sockets'. Runs until the relay
/// stops.
pub async fn receive(mut incoming: mpsc::Receiver<Signal>, domain: Domain, hub: Arc<Hub>) {
    while let Some(signal) = incoming.recv().await {
        domain.receive(&signal);
        hub.apply(&signal);
    }
}
