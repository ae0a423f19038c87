//! `/v1/me`

use actix_web::{HttpResponse, web};

use super::AppState;
use super::auth::AuthUser;
use super::error::ApiResult;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/me").get(get).delete(erase));
}

async fn get(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.me(&user.0, user.1).await?))
}

/// Erases the user: every row now, every vector through the outbox.
async fn erase(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.domain.erase_user(&user.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
