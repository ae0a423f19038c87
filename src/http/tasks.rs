//! `/v1/tasks`

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::AuthUser;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery, not_null, nullable};
use super::{AppState, IdPath};
use crate::domain::FieldErrors;
use crate::domain::page::{MAX_LIMIT, PageRequest};
use crate::domain::task::{NewTask, Priority, TaskFilter, TaskPatch, TaskQuery, TaskStatus};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/tasks").get(list).post(create))
        .service(
            web::resource("/tasks/{id}")
                .get(get)
                .patch(update)
                .delete(delete),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    status: Option<TaskStatus>,
    project: Option<String>,
    due_before: Option<DateTime<Utc>>,
    due_after: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    let query = TaskQuery {
        filter: TaskFilter {
            status: q.status,
            open: false,
            project: q.project,
            due_before: q.due_before,
            due_after: q.due_after,
        },
        page: PageRequest::parse(q.limit, q.cursor.as_deref(), MAX_LIMIT)?,
    };
    Ok(HttpResponse::Ok().json(state.domain.list_tasks(&user.0, query).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    title: String,
    description: Option<String>,
    project: Option<String>,
    status: Option<TaskStatus>,
    priority: Option<Priority>,
    due_at: Option<DateTime<Utc>>,
}

async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewTask {
        title: body.title,
        description: body.description,
        project: body.project,
        status: body.status,
        priority: body.priority,
        due_at: body.due_at,
    };
    let task = state.domain.create_task(&user.0, new).await?;
    Ok(HttpResponse::Created().json(task))
}

async fn get(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.get_task(&user.0, id.0).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    project: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    status: Option<Option<TaskStatus>>,
    #[serde(default, deserialize_with = "nullable")]
    priority: Option<Option<Priority>>,
    #[serde(default, deserialize_with = "nullable")]
    due_at: Option<Option<DateTime<Utc>>>,
}

impl TryFrom<PatchBody> for TaskPatch {
    type Error = ApiError;
    fn try_from(body: PatchBody) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let patch = TaskPatch {
            title: not_null("title", body.title, &mut errors),
            status: not_null("status", body.status, &mut errors),
            description: body.description,
            project: body.project,
            priority: body.priority,
            due_at: body.due_at,
        };
        errors.into_result()?;
        Ok(patch)
    }
}

async fn update(
    user: AuthUser,
    state: web::Data<AppState>,
    id: IdPath,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<HttpResponse> {
    let task = state
        .domain
        .update_task(&user.0, id.0, body.try_into()?)
        .await?;
    Ok(HttpResponse::Ok().json(task))
}

async fn delete(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_task(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
