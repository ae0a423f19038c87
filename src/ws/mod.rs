//! The realtime edge: Socket.IO (Engine.IO v4, Socket.IO v5) over actix-ws, WebSocket transport
//! only. Translates events to domain calls and domain events to the user's sockets; no business
//! rules here.

pub mod fanout;
pub mod hub;
pub mod packet;
pub mod queue;
mod socket;

use std::sync::Arc;

use actix_web::web;
use tokio_util::sync::CancellationToken;

use crate::auth::TokenVerifier;
use crate::config::RealtimeConfig;
use crate::domain::Domain;
use hub::Hub;

/// What every connection shares.
pub struct Realtime {
    pub hub: Arc<Hub>,
    pub domain: Domain,
    pub verifier: Arc<dyn TokenVerifier>,
    pub config: RealtimeConfig,
    /// Cancelled at shutdown: sockets get a Socket.IO DISCONNECT and close.
    pub closing: CancellationToken,
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/socket.io/", web::to(socket::entry))
        .route("/socket.io", web::to(socket::entry));
}
