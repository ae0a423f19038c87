//! `/v1/me`

use actix_web::{HttpResponse, web};
use actix_web::{delete, get};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use crate::domain::user::User;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(show).service(erase);
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
