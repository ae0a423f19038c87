//! `/v1/calendar.ics`: the user's calendar as iCalendar (RFC 5545), written with the
//! `icalendar` crate: events (a recurring one as its series, RRULE kept, on the wall clock of
//! the server's zone, as listings expand it), alerts as VALARM, open tasks with a due time as
//! VTODO. UIDs are the ids, so a calendar app re-reading the export updates, never duplicates.

use actix_web::http::header;
use actix_web::{HttpResponse, get, web};
use chrono::{DateTime, NaiveDate, Utc};
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
    cfg.service(calendar_ics);
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
        out.alarm(Alarm::display(&event.title, Trigger::before_start(before)));
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
