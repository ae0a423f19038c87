//! `/v1/conversations` and their messages.

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, post};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use super::extract::{ApiJson, ApiQuery};
use super::{AppState, IdPath};
use crate::domain::DomainError;
use crate::domain::conversation::{
    Conversation, ConversationQuery, Message, MessageQuery, NewConversation,
};
use crate::domain::page::{DEFAULT_LIMIT, MAX_LIMIT, Page, PageRequest};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(remove)
        .service(messages);
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

/// List conversations, most recent activity first
#[utoipa::path(
    tag = "conversations",
    params(ListQuery),
    responses((status = 200, description = "A page of conversations", body = Page<Conversation>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/conversations")]
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

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ConversationCreate)]
struct CreateBody {
    title: Option<String>,
}

/// Start a conversation
#[utoipa::path(
    tag = "conversations",
    request_body = CreateBody,
    responses((status = 201, description = "Started", body = Conversation), ApiErrors),
    security(("bearer" = []))
)]
#[post("/conversations")]
async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewConversation { title: body.title };
    Ok(HttpResponse::Created().json(state.domain.create_conversation(&user.0, new).await?))
}

/// Delete a conversation, its messages and their vectors
#[utoipa::path(
    tag = "conversations",
    params(("id" = uuid::Uuid, Path, description = "The conversation's id")),
    responses((status = 204, description = "Deleted"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/conversations/{id}")]
async fn remove(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_conversation(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct MessagesQuery {
    /// Only messages older than this one (a message id).
    #[param(format = Uuid)]
    before: Option<String>,
    /// Page size.
    limit: Option<u32>,
}

/// A conversation's messages, oldest to newest; `nextCursor` is the `before` of the older page
#[utoipa::path(
    tag = "conversations",
    params(("id" = uuid::Uuid, Path, description = "The conversation's id"), MessagesQuery),
    responses((status = 200, description = "A page of messages", body = Page<Message>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/conversations/{id}/messages")]
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
