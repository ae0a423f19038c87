//! `/v1/push`: Web Push subscriptions (the VAPID key a page subscribes with, and the
//! subscriptions fired reminders are pushed to).

use actix_web::{HttpResponse, delete, get, post, web};
use serde::Serialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::ApiJson;
use super::{AppState, IdPath};
use crate::domain::push::{NewPushSubscription, PushSubscription};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(vapid_public_key)
        .service(list)
        .service(subscribe)
        .service(unsubscribe);
}

#[derive(Serialize, utoipa::ToSchema)]
struct VapidKey {
    /// The server's VAPID public key (uncompressed P-256, base64url): the
    /// `applicationServerKey` of `PushManager.subscribe`.
    key: String,
}

/// The VAPID public key to subscribe with
#[utoipa::path(
    tag = "push",
    responses((status = 200, description = "The key", body = VapidKey), ApiErrors),
    security(("bearer" = []))
)]
#[get("/push/vapid-public-key")]
async fn vapid_public_key(_user: AuthUser, state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(VapidKey {
        key: state.domain.vapid_public_key(),
    })
}

/// List the user's push subscriptions
#[utoipa::path(
    tag = "push",
    responses((status = 200, description = "Oldest first", body = Vec<PushSubscription>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/push/subscriptions")]
async fn list(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.push_subscriptions(&user.0).await?))
}

/// Store a push subscription
///
/// The body is what `PushSubscription.toJSON()` gives. The endpoint must be an `https` URL of
/// a public address (in dev mode, `http` on loopback too). The same endpoint again replaces its
/// keys and answers with the first subscription's id.
#[utoipa::path(
    tag = "push",
    request_body = NewPushSubscription,
    responses((status = 201, description = "Stored", body = PushSubscription), ApiErrors),
    security(("bearer" = []))
)]
#[post("/push/subscriptions")]
async fn subscribe(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<NewPushSubscription>,
) -> ApiResult<HttpResponse> {
    let stored = state.domain.subscribe_push(&user.0, body).await?;
    Ok(HttpResponse::Created().json(stored))
}

/// Remove a push subscription
#[utoipa::path(
    tag = "push",
    params(("id" = uuid::Uuid, Path, description = "The subscription's id")),
    responses((status = 204, description = "Removed"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/push/subscriptions/{id}")]
async fn unsubscribe(
    user: AuthUser,
    state: web::Data<AppState>,
    id: IdPath,
) -> ApiResult<HttpResponse> {
    state.domain.unsubscribe_push(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
