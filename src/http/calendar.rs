//! `/v1/calendar.ics`: the user's calendar as iCalendar (RFC 5545), written with the
//! `icalendar` crate: events (a recurring one as its series, RRULE kept, on the wall clock of
//! the server's zone, as listings expand it), alerts as VALARM, open tasks with a due time as
//! VTODO. UIDs are the ids, so a calendar app re-reading the export updates, never duplicates.

use actix_web::http::header::{self, Header as _};
use actix_web::{HttpRequest, HttpResponse, delete, get, post, web};
use chrono::{DateTime, Datelike as _, NaiveDate, Timelike as _, Utc};
use icalendar::{
    Alarm, Calendar, CalendarDateTime, Component, EventLike, Todo, TodoStatus, Trigger,
};
use utoipa_actix_web::service_config::ServiceConfig;

use super::AppState;
use super::auth::AuthUser;
use super::calendar_import;
use super::error::{ApiError, ApiErrors, ApiResult};
use super::extract::{media_type, read_body};
use crate::domain::FieldErrors;
use crate::domain::calendar::{CalendarExport, ImportReport};
use crate::domain::event::Event;
use crate::domain::task::{Task, TaskStatus};

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(calendar_ics)
        .service(import)
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

/// Import an iCalendar file's events
///
/// The body is an RFC 5545 file (`Content-Type: text/calendar`, within `server.max_body_bytes`,
/// at most 2,000 events). VEVENTs are imported with their RRULE, EXDATEs, all-day dates, time
/// zones (TZID: IANA or Windows names) and alerts (VALARMs before the start). A RECURRENCE-ID
/// override is kept as an event of its own, and its series skips the occurrence it replaces.
/// Importing is idempotent on UID: importing a file again updates its events (and an export of
/// this server updates the events it came from). All or nothing: a malformed file is 400 with
/// the failing line in `details.line`, and nothing is written. What was not imported (other
/// components, events without a UID, unknown zones) is listed in `skippedItems`.
#[utoipa::path(
    tag = "calendar",
    request_body(content = String, content_type = "text/calendar"),
    responses((status = 200, description = "What was imported", body = ImportReport), ApiErrors),
    security(("bearer" = []))
)]
#[post("/calendar/import")]
async fn import(
    user: AuthUser,
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> ApiResult<HttpResponse> {
    let is_calendar = media_type(&req).is_some_and(|mime| mime == "text/calendar");
    let body = read_body(&req, payload.into_inner()).await?;
    if !is_calendar {
        return Err(ApiError::validation(FieldErrors::single(
            "Content-Type",
            "must be text/calendar",
        )));
    }
    let zone = state.domain.settings.timezone;
    // Parsing is CPU work in proportion to the body: off the request workers (the body moves
    // there, it is not copied).
    let parsed = web::block(move || {
        let text = std::str::from_utf8(&body).map_err(|e| {
            FieldErrors::single(
                "body",
                format!("is not UTF-8 text (at byte {})", e.valid_up_to()),
            )
        })?;
        calendar_import::parse(text.strip_prefix('\u{feff}').unwrap_or(text), zone)
    })
    .await
    .map_err(|e| ApiError::Domain(anyhow::anyhow!("import parser: {e}").into()))?
    .map_err(ApiError::validation)?;
    let report = state
        .domain
        .import_calendar(&user.0, parsed.events, parsed.skipped)
        .await?;
    Ok(HttpResponse::Ok().json(report))
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
    // Every TZID used gets its VTIMEZONE (RFC 5545 §3.6.5), from the earliest year it is used.
    let mut zones: std::collections::BTreeMap<&'static str, (chrono_tz::Tz, i32)> =
        std::collections::BTreeMap::new();
    for event in export
        .events
        .iter()
        .filter(|e| e.recurrence.is_some() && !e.is_all_day)
    {
        let zone = event.timezone.unwrap_or(tz);
        let year = event.start_at.with_timezone(&zone).year();
        let entry = zones.entry(zone.name()).or_insert((zone, year));
        entry.1 = entry.1.min(year);
    }
    for event in &export.events {
        calendar.push(vevent(event, tz));
    }
    for task in &export.tasks {
        calendar.push(vtodo(task));
    }
    let mut text = calendar.done().to_string();
    // The crate writes no VTIMEZONE: they go in before the first component (their lines are
    // short, with nothing to fold or escape).
    let this_year = Utc::now().year();
    let zones: String = zones
        .values()
        .filter_map(|(zone, from)| vtimezone(*zone, *from, this_year + ZONE_YEARS_AHEAD))
        .collect();
    let at = text
        .find("\r\nBEGIN:")
        .or_else(|| text.find("\r\nEND:VCALENDAR"))
        .map_or(text.len(), |i| i + 2);
    text.insert_str(at, &zones);
    text
}

/// How many years past this one a VTIMEZONE spells out the zone's changes.
const ZONE_YEARS_AHEAD: i32 = 10;

fn offset_text(seconds: i32) -> String {
    let sign = if seconds < 0 { '-' } else { '+' };
    let s = seconds.unsigned_abs();
    format!("{sign}{:02}{:02}", s / 3600, (s / 60) % 60)
}

/// A zone's VTIMEZONE: its offset at the start of `from`, and each change of offset up to the
/// end of `to`, as the zone database (chrono-tz) has them. Found by stepping a day at a time
/// and narrowing each change to the second.
fn vtimezone(zone: chrono_tz::Tz, from: i32, to: i32) -> Option<String> {
    use chrono::{Offset as _, TimeZone as _};
    use chrono_tz::{OffsetComponents as _, OffsetName as _};
    let offset = |at: DateTime<Utc>| zone.offset_from_utc_datetime(&at.naive_utc());
    let start = Utc.with_ymd_and_hms(from, 1, 1, 0, 0, 0).single()?;
    let end = Utc.with_ymd_and_hms(to + 1, 1, 1, 0, 0, 0).single()?;
    let observance = |at: DateTime<Utc>, before: i32, after: &chrono_tz::TzOffset| {
        let kind = if after.dst_offset().is_zero() {
            "STANDARD"
        } else {
            "DAYLIGHT"
        };
        let local = at.naive_utc() + chrono::Duration::seconds(i64::from(before));
        format!(
            "BEGIN:{kind}\r\nDTSTART:{}\r\nTZOFFSETFROM:{}\r\nTZOFFSETTO:{}\r\nTZNAME:{}\r\nEND:{kind}\r\n",
            local.format("%Y%m%dT%H%M%S"),
            offset_text(before),
            offset_text(after.fix().local_minus_utc()),
            after.abbreviation().unwrap_or(zone.name()),
        )
    };
    let first = offset(start);
    let first_seconds = first.fix().local_minus_utc();
    let mut text = format!("BEGIN:VTIMEZONE\r\nTZID:{}\r\n", zone.name());
    text.push_str(&observance(start, first_seconds, &first));
    let mut at = start;
    let mut current = first_seconds;
    while at < end {
        let next = at + chrono::Duration::days(1);
        let seconds = offset(next).fix().local_minus_utc();
        if seconds != current {
            // The change is in (at, next]: narrow it down.
            let (mut low, mut high) = (at, next);
            while high - low > chrono::Duration::seconds(1) {
                let mid = low + (high - low) / 2;
                if offset(mid).fix().local_minus_utc() == current {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            text.push_str(&observance(high, current, &offset(high)));
            current = seconds;
        }
        at = next;
    }
    text.push_str("END:VTIMEZONE\r\n");
    Some(text)
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
        let tz = event.timezone.unwrap_or(tz);
        let at =
            |t: DateTime<Utc>| CalendarDateTime::from((t.with_timezone(&tz).naive_local(), tz));
        out.starts(at(event.start_at)).ends(at(event.end_at));
    } else {
        out.starts(event.start_at).ends(event.end_at);
    }
    if let Some(rule) = &event.recurrence {
        out.add_property("RRULE", rule);
        let zone = event.timezone.unwrap_or(tz);
        for skipped in &event.exdates {
            let local = skipped.with_timezone(&zone);
            let property = if event.is_all_day {
                icalendar::Property::new("EXDATE", local.format("%Y%m%d").to_string())
                    .add_parameter("VALUE", "DATE")
                    .done()
            } else {
                icalendar::Property::new("EXDATE", local.format("%Y%m%dT%H%M%S").to_string())
                    .add_parameter("TZID", zone.name())
                    .done()
            };
            out.append_multi_property(property);
        }
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
