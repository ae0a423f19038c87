//! `/v1/memories`

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, post};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, IdPath};
use crate::domain::memory::{Memory, MemoryKind, MemoryQuery, NewMemory};
use crate::domain::page::{MAX_LIMIT, Page, PageRequest};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list).service(create).service(remove);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// List memories, newest first
#[utoipa::path(
    tag = "memories",
    params(ListQuery),
    responses((status = 200, description = "A page of memories", body = Page<Memory>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/memories")]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = MemoryCreate)]
struct CreateBody {
    content: String,
    #[serde(rename = "type")]
    kind: Option<MemoryKind>,
}

/// Remember a fact
#[utoipa::path(
    tag = "memories",
    request_body = CreateBody,
    responses((status = 201, description = "Remembered", body = Memory), ApiErrors),
    security(("bearer" = []))
)]
#[post("/memories")]
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

/// Forget a memory
#[utoipa::path(
    tag = "memories",
    params(("id" = uuid::Uuid, Path, description = "The memory's id")),
    responses((status = 204, description = "Forgotten"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/memories/{id}")]
async fn remove(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_memory(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
