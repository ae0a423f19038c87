//! `/v1/reminders`

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
use crate::domain::page::{MAX_LIMIT, Page, PageRequest};
use crate::domain::reminder::{
    NewReminder, Reminder, ReminderPatch, ReminderQuery, ReminderStatus,
};

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
    /// Only reminders with this status.
    status: Option<ReminderStatus>,
    /// Due at or after.
    from: Option<DateTime<Utc>>,
    /// Due before.
    to: Option<DateTime<Utc>>,
    /// Page size.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// List reminders, by due time
#[utoipa::path(
    tag = "reminders",
    params(ListQuery),
    responses((status = 200, description = "A page of reminders", body = Page<Reminder>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/reminders")]
async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    let query = ReminderQuery {
        status: q.status,
        from: q.from,
        to: q.to,
        page: PageRequest::parse(q.limit, q.cursor.as_deref(), MAX_LIMIT)?,
    };
    Ok(HttpResponse::Ok().json(state.domain.list_reminders(&user.0, query).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ReminderCreate)]
struct CreateBody {
    text: String,
    due_at: DateTime<Utc>,
    task_id: Option<uuid::Uuid>,
    event_id: Option<uuid::Uuid>,
}

/// Create a reminder
#[utoipa::path(
    tag = "reminders",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Reminder), ApiErrors),
    security(("bearer" = []))
)]
#[post("/reminders")]
async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewReminder {
        text: body.text,
        due_at: body.due_at,
        task_id: body.task_id,
        event_id: body.event_id,
        conversation_id: None,
    };
    let reminder = state.domain.create_reminder(&user.0, new).await?;
    Ok(HttpResponse::Created().json(reminder))
}

/// Get a reminder
#[utoipa::path(
    tag = "reminders",
    params(("id" = uuid::Uuid, Path, description = "The reminder's id")),
    responses((status = 200, description = "The reminder", body = Reminder), ApiErrors),
    security(("bearer" = []))
)]
#[get("/reminders/{id}")]
async fn show(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.get_reminder(&user.0, id.0).await?))
}

/// `{dueAt}` snoozes a fired or scheduled reminder; `{status: "dismissed"}` dismisses it,
/// `{status: "cancelled"}` cancels one still to fire.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = ReminderPatch)]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String)]
    text: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = DateTime<Utc>)]
    due_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = ReminderStatus)]
    status: Option<Option<ReminderStatus>>,
}

impl TryFrom<PatchBody> for ReminderPatch {
    type Error = ApiError;
    fn try_from(body: PatchBody) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let patch = ReminderPatch {
            text: not_null("text", body.text, &mut errors),
            due_at: not_null("dueAt", body.due_at, &mut errors),
            status: not_null("status", body.status, &mut errors),
        };
        errors.into_result()?;
        Ok(patch)
    }
}

/// Snooze, dismiss, cancel or rename a reminder
#[utoipa::path(
    tag = "reminders",
    params(("id" = uuid::Uuid, Path, description = "The reminder's id")),
    request_body = PatchBody,
    responses((status = 200, description = "Updated", body = Reminder), ApiErrors),
    security(("bearer" = []))
)]
#[patch("/reminders/{id}")]
async fn update(
    user: AuthUser,
    state: web::Data<AppState>,
    id: IdPath,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<HttpResponse> {
    let reminder = state
        .domain
        .update_reminder(&user.0, id.0, body.try_into()?, None)
        .await?;
    Ok(HttpResponse::Ok().json(reminder))
}

/// Delete a reminder
#[utoipa::path(
    tag = "reminders",
    params(("id" = uuid::Uuid, Path, description = "The reminder's id")),
    responses((status = 204, description = "Deleted"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/reminders/{id}")]
async fn remove(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_reminder(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
