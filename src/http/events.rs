//! `/v1/events`

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
use crate::domain::event::{Event, EventPatch, EventQuery, EventRange, NewEvent};
use crate::domain::page::{MAX_LIMIT, Page, PageRequest};

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
    /// With `to`: the events and occurrences overlapping [from, to).
    from: Option<DateTime<Utc>>,
    /// With `from`.
    to: Option<DateTime<Utc>>,
    /// Page size.
    limit: Option<u32>,
    /// `nextCursor` of the previous page.
    cursor: Option<String>,
}

/// List events by start; with a range, recurring events expand into their occurrences
#[utoipa::path(
    tag = "events",
    params(ListQuery),
    responses((status = 200, description = "A page of events and occurrences", body = Page<Event>), ApiErrors),
    security(("bearer" = []))
)]
#[get("/events")]
async fn list(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<HttpResponse> {
    let query = EventQuery {
        range: EventRange::parse(q.from, q.to)?,
        page: PageRequest::parse(q.limit, q.cursor.as_deref(), MAX_LIMIT)?,
    };
    Ok(HttpResponse::Ok().json(state.domain.list_events(&user.0, query).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = EventCreate)]
struct CreateBody {
    title: String,
    description: Option<String>,
    location: Option<String>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    #[serde(default)]
    is_all_day: bool,
    recurrence: Option<String>,
    /// Minutes before each occurrence's start to remind at (at most 5, each 0 to 40,320).
    #[serde(default)]
    #[schema(max_items = 5)]
    alerts: Vec<u32>,
}

/// Create an event
#[utoipa::path(
    tag = "events",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = Event), ApiErrors),
    security(("bearer" = []))
)]
#[post("/events")]
async fn create(
    user: AuthUser,
    state: web::Data<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<HttpResponse> {
    let new = NewEvent {
        title: body.title,
        description: body.description,
        location: body.location,
        start_at: body.start_at,
        end_at: body.end_at,
        is_all_day: body.is_all_day,
        recurrence: body.recurrence,
        alerts: body.alerts,
    };
    let event = state.domain.create_event(&user.0, new).await?;
    Ok(HttpResponse::Created().json(event))
}

/// Get an event
#[utoipa::path(
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The event's id")),
    responses((status = 200, description = "The event", body = Event), ApiErrors),
    security(("bearer" = []))
)]
#[get("/events/{id}")]
async fn show(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.get_event(&user.0, id.0).await?))
}

/// A partial update: an absent field is kept, `null` clears a nullable one.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[schema(as = EventPatch)]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = String)]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    location: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = DateTime<Utc>)]
    start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = DateTime<Utc>)]
    end_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = bool)]
    is_all_day: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    recurrence: Option<Option<String>>,
    /// Replaces the alerts (`[]`: none).
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Vec<u32>, max_items = 5)]
    alerts: Option<Option<Vec<u32>>>,
}

impl TryFrom<PatchBody> for EventPatch {
    type Error = ApiError;
    fn try_from(body: PatchBody) -> Result<Self, ApiError> {
        let mut errors = FieldErrors::new();
        let patch = EventPatch {
            title: not_null("title", body.title, &mut errors),
            start_at: not_null("startAt", body.start_at, &mut errors),
            end_at: not_null("endAt", body.end_at, &mut errors),
            is_all_day: not_null("isAllDay", body.is_all_day, &mut errors),
            description: body.description,
            location: body.location,
            recurrence: body.recurrence,
            alerts: not_null("alerts", body.alerts, &mut errors),
        };
        errors.into_result()?;
        Ok(patch)
    }
}

/// Update an event
#[utoipa::path(
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The event's id")),
    request_body = PatchBody,
    responses((status = 200, description = "Updated", body = Event), ApiErrors),
    security(("bearer" = []))
)]
#[patch("/events/{id}")]
async fn update(
    user: AuthUser,
    state: web::Data<AppState>,
    id: IdPath,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<HttpResponse> {
    let event = state
        .domain
        .update_event(&user.0, id.0, body.try_into()?)
        .await?;
    Ok(HttpResponse::Ok().json(event))
}

/// Delete an event (every occurrence of a series)
#[utoipa::path(
    tag = "events",
    params(("id" = uuid::Uuid, Path, description = "The event's id")),
    responses((status = 204, description = "Deleted"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/events/{id}")]
async fn remove(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_event(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
