//! `/v1/events`

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::AuthUser;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, ApiQuery, not_null, nullable};
use super::{AppState, IdPath};
use crate::domain::FieldErrors;
use crate::domain::event::{EventPatch, EventQuery, EventRange, NewEvent};
use crate::domain::page::{MAX_LIMIT, PageRequest};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/events").get(list).post(create))
        .service(
            web::resource("/events/{id}")
                .get(get)
                .patch(update)
                .delete(delete),
        );
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ListQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    limit: Option<u32>,
    cursor: Option<String>,
}

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

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    title: String,
    description: Option<String>,
    location: Option<String>,
    start_at: DateTime<Utc>,
    end_at: DateTime<Utc>,
    #[serde(default)]
    is_all_day: bool,
    recurrence: Option<String>,
}

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
    };
    let event = state.domain.create_event(&user.0, new).await?;
    Ok(HttpResponse::Created().json(event))
}

async fn get(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(state.domain.get_event(&user.0, id.0).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    title: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    description: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    location: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    start_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    end_at: Option<Option<DateTime<Utc>>>,
    #[serde(default, deserialize_with = "nullable")]
    is_all_day: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    recurrence: Option<Option<String>>,
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
    let event = state
        .domain
        .update_event(&user.0, id.0, body.try_into()?)
        .await?;
    Ok(HttpResponse::Ok().json(event))
}

async fn delete(user: AuthUser, state: web::Data<AppState>, id: IdPath) -> ApiResult<HttpResponse> {
    state.domain.delete_event(&user.0, id.0).await?;
    Ok(HttpResponse::NoContent().finish())
}
