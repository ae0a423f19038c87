//! `/v1/calendar.ics`: the user's calendar as iCalendar (RFC 5545), written with the
//! `icalendar` crate: events (a recurring one as its series, RRULE kept, on the wall clock of
//! the server's zone, as listings expand it), alerts as VALARM, open tasks with a due time as
//! VTODO. UIDs are the ids, so a calendar app re-reading the export updates, never duplicates.

use actix_web::http::header::{self, Header as _};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, NaiveDate, Timelike as _, Utc};
use icalendar::{
    Alarm, Calendar, CalendarDateTime, Component, EventLike, Todo, TodoStatus, Trigger,
};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::auth::AuthUser;
use super::error::{ApiErrors, ApiResult};
use crate::domain::calendar::CalendarExport;
use crate::domain::event::Event;
use crate::domain::task::{Task, TaskStatus};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(calendar_ics)
        .service(create_feed)
        .service(revoke_feed);
}

/// The feed itself: outside `/v1`, read by calendar apps with the token in the URL.
pub fn feed_routes(cfg: &mut ServiceConfig) {
    cfg.service(feed);
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct FeedUrl {
    /// The secret subscription URL (`webcal:` apps take it as is, or with `webcal://`).
    url: String,
}

/// Make a secret feed URL for calendar apps (replacing the previous one)
#[utoipa::path(
    tag = "calendar",
    responses((status = 201, description = "The feed's URL, shown once", body = FeedUrl), ApiErrors),
    security(("bearer" = []))
)]
#[post("/calendar/feed")]
async fn create_feed(
    user: AuthUser,
    state: web::Data<AppState>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let token = state.domain.create_calendar_feed(&user.0).await?;
    let info = req.connection_info();
    let url = format!("{}://{}/ics/{}.ics", info.scheme(), info.host(), token.0);
    Ok(HttpResponse::Created()
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .json(FeedUrl { url }))
}

/// Revoke the feed URL
#[utoipa::path(
    tag = "calendar",
    responses((status = 204, description = "Revoked"), ApiErrors),
    security(("bearer" = []))
)]
#[delete("/calendar/feed")]
async fn revoke_feed(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    state.domain.revoke_calendar_feed(&user.0).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The calendar behind a feed URL (no Authorization header: the token is the secret)
///
/// Sends `ETag` and `Last-Modified`, and answers `If-None-Match` / `If-Modified-Since` with
/// 304 when the calendar is unchanged. An unknown or revoked token is 404. Rate-limited per
/// feed.
#[utoipa::path(
    tag = "calendar",
    params(("token" = String, Path, description = "The feed's token")),
    responses(
        (status = 200, description = "An RFC 5545 calendar", content_type = "text/calendar", body = String),
        (status = 304, description = "Unchanged"),
        ApiErrors
    )
)]
#[get("/ics/{token}.ics")]
async fn feed(
    state: web::Data<AppState>,
    token: web::Path<String>,
    req: HttpRequest,
) -> ApiResult<HttpResponse> {
    let (feed, export) = state.domain.calendar_feed(&token).await?;
    let body = render(&export);
    let (tag, changed) = state
        .domain
        .calendar_feed_changed(feed, body.as_bytes())
        .await?;
    let etag = header::EntityTag::new_strong(tag);
    let modified = header::HttpDate::from(std::time::SystemTime::from(changed));
    // With If-None-Match, it alone decides; otherwise If-Modified-Since, to the second
    // (RFC 9110 §13.1.3). A missing header parses as an empty list: look for it first.
    let fresh = if req.headers().contains_key(header::IF_NONE_MATCH) {
        match header::IfNoneMatch::parse(&req) {
            Ok(header::IfNoneMatch::Any) => true,
            Ok(header::IfNoneMatch::Items(tags)) => tags.iter().any(|t| t.weak_eq(&etag)),
            Err(_) => false,
        }
    } else {
        header::IfModifiedSince::parse(&req).is_ok_and(|since| {
            std::time::SystemTime::from(since.0)
                >= std::time::SystemTime::from(changed.with_nanosecond(0).unwrap_or(changed))
        })
    };
    let mut res = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header(header::ETag(etag))
        .insert_header(header::LastModified(modified))
        .insert_header(header::CacheControl(vec![
            header::CacheDirective::Private,
            header::CacheDirective::NoCache,
        ]));
    if fresh {
        return Ok(res.finish());
    }
    Ok(res
        .insert_header((header::CONTENT_TYPE, "text/calendar; charset=utf-8"))
        .body(body))
}

/// The user's calendar, as iCalendar
///
/// Events with their RRULE (repeating on the wall clock of the server's time zone, given as
/// TZID), all-day events as dates, alerts as VALARM, and open tasks with a due time as VTODO.
/// UIDs are stable (`<id>@pixie`).
#[utoipa::path(
    tag = "calendar",
    responses(
        (status = 200, description = "An RFC 5545 calendar", content_type = "text/calendar", body = String),
        ApiErrors
    ),
    security(("bearer" = []))
)]
#[get("/calendar.ics")]
async fn calendar_ics(user: AuthUser, state: web::Data<AppState>) -> ApiResult<HttpResponse> {
    let export = state.domain.calendar_export(&user.0).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/calendar; charset=utf-8"))
        .insert_header((
            header::CONTENT_DISPOSITION,
            "inline; filename=\"pixie.ics\"",
        ))
        .insert_header(header::CacheControl(vec![header::CacheDirective::NoStore]))
        .body(render(&export)))
}

fn uid(id: uuid::Uuid) -> String {
    format!("{id}@pixie")
}

/// The export as iCalendar text (CRLF lines, folded at 75 octets by the crate).
pub fn render(export: &CalendarExport) -> String {
    let tz = export.timezone;
    // Empty, not new(): new() brings a PRODID of the crate's, and there must be one.
    let mut calendar = Calendar::empty();
    calendar
        .append_property(icalendar::Property::new("VERSION", "2.0"))
        .append_property(icalendar::Property::new(
            "PRODID",
            "-//Pixie//Pixie server//EN",
        ))
        .append_property(icalendar::Property::new("CALSCALE", "GREGORIAN"))
        .name("Pixie")
        .timezone(tz.name());
    for event in &export.events {
        calendar.push(vevent(event, tz));
    }
    for task in &export.tasks {
        calendar.push(vtodo(task));
    }
    calendar.done().to_string()
}

fn local_date(at: DateTime<Utc>, tz: chrono_tz::Tz) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

fn vevent(event: &Event, tz: chrono_tz::Tz) -> icalendar::Event {
    let mut out = icalendar::Event::new();
    out.uid(&uid(event.id))
        .summary(&event.title)
        .timestamp(event.updated_at)
        .created(event.created_at)
        .last_modified(event.updated_at);
    if event.is_all_day {
        let start = local_date(event.start_at, tz);
        // DTEND of a date is exclusive: an event ending at a local midnight ends that day.
        let end_local = event.end_at.with_timezone(&tz);
        let mut end = end_local.date_naive();
        if end_local.time() != chrono::NaiveTime::MIN || end <= start {
            end = end.succ_opt().unwrap_or(end);
        }
        out.starts(start).ends(end);
    } else if event.recurrence.is_some() {
        // The rule repeats on the zone's wall clock: DTSTART carries the zone.
        let at =
            |t: DateTime<Utc>| CalendarDateTime::from((t.with_timezone(&tz).naive_local(), tz));
        out.starts(at(event.start_at)).ends(at(event.end_at));
    } else {
        out.starts(event.start_at).ends(event.end_at);
    }
    if let Some(rule) = &event.recurrence {
        out.add_property("RRULE", rule);
    }
    if let Some(description) = &event.description {
        out.description(description);
    }
    if let Some(location) = &event.location {
        out.location(location);
    }
    for minutes in &event.alerts {
        let before = chrono::Duration::minutes(i64::from(*minutes));
        // A fixed UID and DTSTAMP: the same calendar renders to the same bytes (the ETag).
        let mut alarm = Alarm::display(&event.title, Trigger::before_start(before));
        alarm
            .uid(&format!("{}-alert-{minutes}@pixie", event.id))
            .timestamp(event.updated_at);
        out.alarm(alarm);
    }
    out.done()
}

fn vtodo(task: &Task) -> Todo {
    let mut out = Todo::new();
    out.uid(&uid(task.id))
        .summary(&task.title)
        .timestamp(task.updated_at)
        .created(task.created_at)
        .last_modified(task.updated_at)
        .status(match task.status {
            TaskStatus::InProgress => TodoStatus::InProcess,
            _ => TodoStatus::NeedsAction,
        });
    if let Some(due) = task.due_at {
        out.due(due);
    }
    if let Some(description) = &task.description {
        out.description(description);
    }
    out.done()
}
