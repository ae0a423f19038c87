//! `GET /v1/search`: search by meaning and by words over the user's own tasks, events,
//! memories and messages.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::auth::AuthUser;
use super::error::ApiResult;
use super::extract::ApiQuery;
use crate::domain::DomainError;
use crate::domain::assistant::DocKind;

const DEFAULT_LIMIT: u32 = 10;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/search").get(search));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchQuery {
    q: Option<String>,
    /// Comma-separated kinds; all when absent.
    kinds: Option<String>,
    limit: Option<u32>,
}

fn kinds(text: Option<&str>) -> Result<Vec<DocKind>, DomainError> {
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut kinds = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let kind = DocKind::parse(part).ok_or_else(|| {
            DomainError::invalid(
                "kinds",
                format!("unknown kind {part:?} (use task, event, memory, message)"),
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

async fn search(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> ApiResult<HttpResponse> {
    let text =
        q.q.ok_or_else(|| DomainError::invalid("q", "is required"))?;
    let kinds = kinds(q.kinds.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT) as usize;
    let items = state
        .domain
        .search(&user.0, &text, &kinds, limit, None)
        .await?;
    Ok(HttpResponse::Ok().json(json!({ "items": items })))
}
