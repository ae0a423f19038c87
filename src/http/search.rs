//! `GET /v1/search`: search by meaning and by words over the user's own tasks, events,
//! memories and messages.

use actix_web::get;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::ApiQuery;
use crate::domain::DomainError;
use crate::domain::assistant::DocKind;
use crate::domain::recall::SearchHit;

const DEFAULT_LIMIT: u32 = 10;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(search);
}

/// What a search answers.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = SearchResults)]
struct Results {
    /// Best first; `score` is comparable within one response only.
    items: Vec<SearchHit>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// What to look for.
    #[param(required = true)]
    q: Option<String>,
    /// Comma-separated kinds (`task,event,memory,message`); all when absent.
    kinds: Option<String>,
    /// How many results at most.
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

/// Search the user's own tasks, events, memories and messages, by meaning and by words
#[utoipa::path(
    tag = "search",
    params(SearchQuery),
    responses((status = 200, description = "The best matches", body = Results), ApiErrors),
    security(("bearer" = []))
)]
#[get("/search")]
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
    Ok(HttpResponse::Ok().json(Results { items }))
}
