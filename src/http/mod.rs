//! The REST edge: translates HTTP to domain calls and back. No business rules here.

mod auth;
mod calendar;
pub mod calendar_import;
mod chat;
mod conversations;
pub mod cors;
pub mod error;
mod events;
pub mod extract;
mod health;
mod me;
mod memories;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod playground;
mod push;
mod reminders;
mod search;
mod tasks;
mod webhooks;

use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use uuid::Uuid;

use crate::auth::TokenVerifier;
use crate::domain::ports::HealthCheck;
use crate::domain::{Domain, DomainError};
pub use auth::AuthUser;
use error::ApiError;
pub use webhooks::WebhookSecret;

/// What handlers share, injected at start.
pub struct AppState {
    pub domain: Domain,
    pub verifier: Arc<dyn TokenVerifier>,
    pub health: Vec<Arc<dyn HealthCheck>>,
    /// A model provider with a key (`llm: "ok"` in `/readyz`), or the offline parser
    /// (`"unconfigured"`, which does not make the server unready).
    pub llm_configured: bool,
    /// `CLERK_WEBHOOK_SECRET`; unset = the webhook route answers 404.
    pub webhook_secret: Option<WebhookSecret>,
}

/// Every REST route of the server (the playground and the Socket.IO endpoint are added apart).
pub fn routes(cfg: &mut web::ServiceConfig) {
    api(&mut utoipa_actix_web::service_config::ServiceConfig::new(
        cfg,
    ));
}

/// The REST routes, each registered with its OpenAPI description (`openapi::DOCUMENT` is
/// built from this same function).
pub fn api(cfg: &mut utoipa_actix_web::service_config::ServiceConfig) {
    health::routes(cfg);
    cfg.service(metrics::render).service(openapi::serve);
    webhooks::routes(cfg);
    calendar::feed_routes(cfg);
    cfg.service(
        utoipa_actix_web::scope("/v1")
            .configure(me::routes)
            .configure(tasks::routes)
            .configure(events::routes)
            .configure(reminders::routes)
            .configure(push::routes)
            .configure(calendar::routes)
            .configure(memories::routes)
            .configure(conversations::routes)
            .configure(chat::routes)
            .configure(search::routes),
    );
}

/// The `{id}` of a route, which must be a UUID.
pub struct IdPath(pub Uuid);

impl FromRequest for IdPath {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .match_info()
            .get("id")
            .and_then(|id| Uuid::parse_str(id).ok())
            .map(IdPath)
            .ok_or_else(|| DomainError::invalid("id", "must be a UUID").into());
        std::future::ready(id)
    }
}
