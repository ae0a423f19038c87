//! `/v1/me`

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::{ApiJson, nullable};
use crate::domain::user::{MePatch, User};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show).service(update).service(erase);
}

/// Each field absent (unchanged), `null` (cleared) or a value.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = MePatch)]
struct PatchBody {
    /// An IANA time zone (`Europe/Paris`); `null`: the server's.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, max_length = 64)]
    timezone: Option<Option<String>>,
    /// The daily agenda's local time, `HH:MM`; `null` turns the agenda off.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<String>, pattern = "^[0-2][0-9]:[0-5][0-9]$")]
    agenda_at: Option<Option<String>>,
}

/// Change the user's settings: time zone and daily agenda
///
/// With `agendaAt` set, one reminder a day at that local time lists the day's events and the
/// tasks due, delivered like any reminder (sockets, Web Push).
#[utoipa::path(
    tag = "me",
    request_body = PatchBody,
    responses((status = 200, description = "The user", body = User), ApiErrors),
    security(("bearer" = []))
)]
#[patch("/me")]
async fn update(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<HttpResponse> {
    let patch = MePatch {
        timezone: body.timezone,
        agenda_at: body.agenda_at,
    };
    Ok(HttpResponse::Ok().json(state.domain.update_me(&user.0, user.1, patch).await?))
}

/// The signed-in user (created on first sight)
#[utoipa::path(
    tag = "me",
    responses((status = 200, description = "The user", body = User), ApiErrors),
    security(("bearer" = []))
)]
#[get("/me")]
async fn show(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.me(&user.0, user.1).await?))
}

/// Erase the user: every row now, every vector through the outbox
#[utoipa::path(
    tag = "me",
    responses((status = 204, description = "Erased"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/me")]
async fn erase(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.domain.erase_user(&user.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
