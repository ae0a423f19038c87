//! `/v1/memories`

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::auth::AuthUser;
use super::error::ApiResult;
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, IdPath};
use crate::domain::memory::{MemoryKind, MemoryQuery, NewMemory};
use crate::domain::page::{MAX_LIMIT, PageRequest};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/memories").get(list).post(create))
        .service(web::resource("/memories/{id}").delete(delete));
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    let query = MemoryQuery {
        page: PageRequest::parse(q.limit, q.cursor.as_deref(), MAX_LIMIT)?,
    };
    Ok(HttpResponse::Ok().json(state.domain.list_memories(&user.0, query).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    content: String,
    #[serde(rename = "type")]
    kind: Option<MemoryKind>,
}

async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewMemory {
        content: body.content,
        kind: body.kind,
    };
    Ok(HttpResponse::Created().json(state.domain.create_memory(&user.0, new).await?))
}

async fn delete(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_memory(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
