//! `/v1/conversations` and their messages.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use uuid::Uuid;

use super::auth::AuthUser;
use super::error::ApiResult;
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, IdPath};
use crate::domain::DomainError;
use crate::domain::conversation::{ConversationQuery, MessageQuery, NewConversation};
use crate::domain::page::{DEFAULT_LIMIT, MAX_LIMIT, PageRequest};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/conversations").get(list).post(create))
        .service(web::resource("/conversations/{id}").delete(delete))
        .service(web::resource("/conversations/{id}/messages").get(messages));
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
    let query = ConversationQuery {
        page: PageRequest::parse(q.limit, q.cursor.as_deref(), MAX_LIMIT)?,
    };
    Ok(HttpResponse::Ok().json(state.domain.list_conversations(&user.0, query).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    title: Option<String>,
}

async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewConversation { title: body.title };
    Ok(HttpResponse::Created().json(state.domain.create_conversation(&user.0, new).await?))
}

async fn delete(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_conversation(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesQuery {
    before: Option<String>,
    limit: Option<u32>,
}

async fn messages(
    user: AuthUser,
    state: web::Data<AppState>,
    id: IdPath,
    ApiQuery(q): ApiQuery<MessagesQuery>,
) -> ApiResult<HttpResponse> {
    let before = q
        .before
        .map(|b| Uuid::parse_str(&b))
        .transpose()
        .map_err(|_| DomainError::invalid("before", "must be a message id"))?;
    let limit = PageRequest::parse(Some(q.limit.unwrap_or(DEFAULT_LIMIT)), None, MAX_LIMIT)?.limit;
    let page = state
        .domain
        .list_messages(&user.0, id.0, MessageQuery { before, limit })
        .await?;
    Ok(HttpResponse::Ok().json(page))
}
