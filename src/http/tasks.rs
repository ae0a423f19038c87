//! `/v1/tasks`

use actix_web::{HttpResponse, web};
use actix_web::{delete, get, patch, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use super::auth::AuthUser;
use super::error::{ApiError, ApiErrors, ApiResult};
use super::extract::{ApiJson, ApiQuery, not_null, nullable};
use super::{AppState, IdPath};
use crate::domain::FieldErrors;
use crate::domain::page::Page;
use crate::domain::page::{MAX_LIMIT, PageRequest};
use crate::domain::task::{NewTask, Priority, Task, TaskFilter, TaskPatch, TaskQuery, TaskStatus};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(list)
        .service(create)
        .service(show)
        .service(update)
        .service(remove);
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only tasks with this status.
    status: Option<TaskStatus>,
    /// Only tasks of this project.
    project: Option<String>,
    /// Due strictly before.
    due_before: Option<DateTime<Utc>>,
    /// Due strictly after.
    due_after: Option<DateTime<Utc>>,
    /// Page size.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// List tasks, newest first
#[utoipa::path(
    tag = "tasks",
    params(ListQuery),
    responses((status = 200, description = "A page of tasks", body = Page<Task>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/tasks")]
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

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = TaskCreate)]
struct CreateBody {
    title: String,
    description: Option<String>,
    project: Option<String>,
    status: Option<TaskStatus>,
    priority: Option<Priority>,
    due_at: Option<DateTime<Utc>>,
}

/// Create a task
#[utoipa::path(
    tag = "tasks",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Task), ApiErrors),
    security(("bearer" = []))
)]
#[post("/tasks")]
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

/// Get a task
#[utoipa::path(
    tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's id")),
    responses((status = 200, description = "The task", body = Task), ApiErrors),
    security(("bearer" = []))
)]
#[get("/tasks/{id}")]
async fn show(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.get_task(&user.0, id.0).await?))
}

/// A partial update: an absent field is kept, `null` clears a nullable one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = TaskPatch)]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    project: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = TaskStatus)]
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

/// Update a task
#[utoipa::path(
    tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's id")),
    request_body = PatchBody,
    responses((status = 200, description = "Updated", body = Task), ApiErrors),
    security(("bearer" = []))
)]
#[patch("/tasks/{id}")]
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

/// Delete a task
#[utoipa::path(
    tag = "tasks",
    params(("id" = uuid::Uuid, Path, description = "The task's id")),
    responses((status = 204, description = "Deleted"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/tasks/{id}")]
async fn remove(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_task(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
