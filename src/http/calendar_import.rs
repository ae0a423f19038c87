//! Reading an iCalendar file (RFC 5545) for `POST /v1/calendar/import`: the `icalendar`
//! crate's parser does the syntax, this module what the events mean. Lines are unfolded here
//! (so that an error names the line of the file, not of the unfolded text), nesting is
//! bounded before the recursive parser sees it, and every TZID is resolved to an IANA zone:
//! an IANA name (also with a vendor prefix), or a Windows name (Outlook) by CLDR's mapping.
//!
//! A RECURRENCE-ID override is kept: it becomes an event of its own, and the occurrence it
//! replaces becomes an EXDATE of its series (a cancelled one is only the EXDATE).

use std::collections::HashMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Utc};
use chrono_tz::Tz;
use icalendar::parser::{Component, Property};
use icalendar::{CalendarDateTime, DatePerhapsTime};

use crate::domain::FieldErrors;
use crate::domain::calendar::{ImportedEvent, SkippedItem};
use crate::domain::event::{
    ALERT_MINUTES_MAX, ALERTS_MAX, DESCRIPTION_MAX, LOCATION_MAX, NewEvent, TITLE_MAX,
};

/// Components nest this deep at most (VCALENDAR > VEVENT > VALARM is 3).
const MAX_DEPTH: usize = 8;

/// What a file holds for the domain.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub events: Vec<ImportedEvent>,
    pub skipped: Vec<SkippedItem>,
}

/// Why a file cannot be imported: the line of the file, and the problem.
fn at_line(line: usize, problem: impl std::fmt::Display) -> FieldErrors {
    let mut errors = FieldErrors::new();
    errors.add("body", format!("line {line}: {problem}"));
    errors.add("line", line.to_string());
    errors
}

/// The file's content lines, unfolded, each with the number of the file's line it began on.
fn content_lines(text: &str) -> Vec<(String, usize)> {
    let mut lines: Vec<(String, usize)> = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        match (raw.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some((line, _))) => line.push_str(rest),
            _ if raw.is_empty() => {}
            _ => lines.push((raw.to_owned(), index + 1)),
        }
    }
    lines
}

fn begins(line: &str) -> Option<&str> {
    let (key, value) = line.split_once(':')?;
    key.eq_ignore_ascii_case("BEGIN").then_some(value)
}

fn ends(line: &str) -> Option<&str> {
    let (key, value) = line.split_once(':')?;
    key.eq_ignore_ascii_case("END").then_some(value)
}

/// Whether a content line has RFC 5545's shape, `NAME *(;PARAM=value) :value`: the crate's
/// parser reports a failure at the component around it, this names the line itself.
fn check_line(line: &str) -> Result<(), &'static str> {
    let is_name =
        |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let bytes = line.as_bytes();
    let name_end = bytes
        .iter()
        .position(|b| *b == b';' || *b == b':')
        .ok_or("expected NAME:value")?;
    if !is_name(&line[..name_end]) {
        return Err("a property name is letters, digits and dashes");
    }
    let mut at = name_end;
    while bytes.get(at) == Some(&b';') {
        let key_end = at
            + 1
            + bytes[at + 1..]
                .iter()
                .position(|b| *b == b'=')
                .ok_or("a parameter is NAME=value")?;
        if !is_name(&line[at + 1..key_end]) {
            return Err("a parameter name is letters, digits and dashes");
        }
        at = key_end + 1;
        loop {
            if bytes.get(at) == Some(&b'"') {
                let close = bytes[at + 1..]
                    .iter()
                    .position(|b| *b == b'"')
                    .ok_or("a quoted parameter value is not closed")?;
                at += close + 2;
            } else {
                while let Some(b) = bytes.get(at) {
                    match b {
                        b';' | b':' | b',' => break,
                        b'"' => return Err("a quote inside a parameter value"),
                        _ => at += 1,
                    }
                }
            }
            if bytes.get(at) == Some(&b',') {
                at += 1;
            } else {
                break;
            }
        }
    }
    match bytes.get(at) {
        Some(b':') => Ok(()),
        _ => Err("expected ':' before the value"),
    }
}

/// Parses a whole file. `zone` is the server's: floating times and all-day dates are on its
/// wall clock.
pub fn parse(text: &str, zone: Tz) -> Result<ParsedFile, FieldErrors> {
    let lines = content_lines(text);
    let Some((first, first_line)) = lines.first() else {
        return Err(at_line(1, "the file is empty; expected BEGIN:VCALENDAR"));
    };
    if !begins(first).is_some_and(|name| name.eq_ignore_ascii_case("VCALENDAR")) {
        return Err(at_line(*first_line, "expected BEGIN:VCALENDAR"));
    }
    // The line each component directly inside a VCALENDAR begins on, in order: the parser
    // keeps no positions, and its components come in the same order.
    let mut open: Vec<&str> = Vec::new();
    let mut starts = Vec::new();
    for (line, number) in &lines {
        let shown = || line.chars().take(80).collect::<String>();
        check_line(line)
            .map_err(|problem| at_line(*number, format!("{problem}: {:?}", shown())))?;
        if let Some(name) = begins(line) {
            open.push(name);
            let depth = open.len();
            if depth > MAX_DEPTH {
                return Err(at_line(
                    *number,
                    format!("components nest deeper than {MAX_DEPTH} levels"),
                ));
            }
            if depth == 1 && *number != *first_line {
                return Err(at_line(*number, "a file holds one VCALENDAR"));
            }
            if depth == 2 {
                starts.push(*number);
            }
        } else if let Some(name) = ends(line) {
            match open.pop() {
                Some(begun) if begun.eq_ignore_ascii_case(name) => {}
                Some(begun) => {
                    return Err(at_line(
                        *number,
                        format!("END:{name} where END:{begun} was due"),
                    ));
                }
                None => return Err(at_line(*number, format!("END:{name} without its BEGIN"))),
            }
        }
    }
    if let Some(name) = open.last() {
        return Err(at_line(
            lines.last().map_or(1, |(_, n)| *n),
            format!("the file ends before END:{name}"),
        ));
    }
    let mut unfolded = String::with_capacity(text.len());
    let mut offsets = Vec::with_capacity(lines.len());
    for (line, _) in &lines {
        offsets.push(unfolded.len());
        unfolded.push_str(line);
        unfolded.push('\n');
    }
    let calendar = icalendar::parser::read_calendar(&unfolded).map_err(|message| {
        // The parser's verbose error names lines of the unfolded text (one per content line),
        // the innermost failure first.
        let index = message
            .split("at line ")
            .nth(1)
            .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(0, |n| n.saturating_sub(1));
        let (line, number) = lines.get(index).map_or(("", 1), |(l, n)| (l.as_str(), *n));
        let shown: String = line.chars().take(80).collect();
        at_line(number, format!("is not valid iCalendar: {shown:?}"))
    })?;
    // One VCALENDAR (checked above): its components, with the lines they begin on.
    let mut next_start = starts.iter().copied();
    let children: Vec<(&Component, usize)> = calendar
        .components
        .iter()
        .map(|child| (child, next_start.next().unwrap_or(*first_line)))
        .collect();
    Reader { zone }.read(children)
}

struct Reader {
    zone: Tz,
}

/// A VEVENT as read, before overrides are folded into their series.
struct Read {
    event: ImportedEvent,
    cancelled: bool,
}

fn prop<'a>(component: &'a Component, name: &str) -> Option<&'a Property<'a>> {
    component
        .properties
        .iter()
        .find(|p| p.name.as_str().eq_ignore_ascii_case(name))
}

fn param<'a>(property: &'a Property, name: &str) -> Option<&'a str> {
    property
        .params
        .iter()
        .find(|p| p.key.as_str().eq_ignore_ascii_case(name))
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

fn text(property: &Property) -> String {
    property.val.clone().unescape_text().as_str().to_owned()
}

/// At most `max` characters, and whether anything was cut.
fn bounded(mut text: String, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => {
            text.truncate(at);
            (text, true)
        }
        None => (text, false),
    }
}

/// The IANA zone a TZID names: an IANA name, one with a vendor prefix
/// (`/mozilla.org/20050126_1/Europe/Berlin`), or a Windows name.
pub fn resolve_zone(tzid: &str) -> Option<Tz> {
    let tzid = tzid.trim().trim_matches('"');
    if let Ok(tz) = tzid.parse::<Tz>() {
        return Some(tz);
    }
    if let Ok(windows) = tzid.parse::<windows_timezones::WindowsTimezone>() {
        return windows.tzdb_id().parse().ok();
    }
    let parts: Vec<&str> = tzid.split('/').filter(|p| !p.is_empty()).collect();
    (2..=3)
        .filter_map(|n| {
            parts
                .len()
                .checked_sub(n)
                .map(|from| parts[from..].join("/"))
        })
        .find_map(|name| name.parse().ok())
}

/// A local time on a zone's wall clock; one in a gap (a spring-forward hour) moves past it.
fn on_wall_clock(local: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&local)
        .earliest()
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
}

/// A DATE-TIME or DATE value, with the zone it is on.
enum When {
    At(DateTime<Utc>, Option<Tz>),
    Day(NaiveDate),
}

impl Reader {
    fn when(&self, property: &Property) -> Result<When, String> {
        let value = DatePerhapsTime::try_from(property)
            .map_err(|_| format!("{} is not a date or date-time", property.name.as_str()))?;
        if param(property, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
            && let DatePerhapsTime::DateTime(CalendarDateTime::Floating(at)) = value
        {
            return Ok(When::Day(at.date()));
        }
        match value {
            DatePerhapsTime::Date(day) => Ok(When::Day(day)),
            DatePerhapsTime::DateTime(CalendarDateTime::Utc(at)) => Ok(When::At(at, None)),
            DatePerhapsTime::DateTime(CalendarDateTime::Floating(local)) => {
                let at = on_wall_clock(local, self.zone).ok_or("a time that does not exist")?;
                Ok(When::At(at, None))
            }
            DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone { date_time, tzid }) => {
                let tz = resolve_zone(&tzid)
                    .ok_or_else(|| format!("the time zone {tzid:?} is not known"))?;
                let at = on_wall_clock(date_time, tz).ok_or("a time that does not exist")?;
                Ok(When::At(at, Some(tz)))
            }
        }
    }

    fn midnight(&self, day: NaiveDate) -> Option<DateTime<Utc>> {
        on_wall_clock(day.and_time(NaiveTime::MIN), self.zone)
    }

    /// The instants of an EXDATE (or RECURRENCE-ID) property: a list of values sharing its
    /// parameters. A DATE names the occurrence on that day, at the series' time of day.
    fn instants(
        &self,
        property: &Property,
        series_start: DateTime<Utc>,
        series_zone: Tz,
    ) -> Result<Vec<DateTime<Utc>>, String> {
        let mut out = Vec::new();
        for value in property.val.as_str().split(',') {
            let single = Property {
                name: property.name.clone(),
                val: value.trim().into(),
                params: property.params.clone(),
            };
            out.push(match self.when(&single)? {
                When::At(at, _) => at,
                When::Day(day) => {
                    let time = series_start.with_timezone(&series_zone).time();
                    on_wall_clock(day.and_time(time), series_zone)
                        .ok_or("a time that does not exist")?
                }
            });
        }
        Ok(out)
    }

    fn read(&self, children: Vec<(&Component, usize)>) -> Result<ParsedFile, FieldErrors> {
        let mut file = ParsedFile::default();
        let mut read: Vec<Read> = Vec::new();
        for (component, line) in children {
            let name = component.name.as_str().to_ascii_uppercase();
            match name.as_str() {
                "VEVENT" => {
                    if let Some(event) = self.vevent(component, line, &mut file.skipped)? {
                        read.push(event);
                    }
                }
                // Used through the TZIDs that name them.
                "VTIMEZONE" => {}
                _ => file.skipped.push(SkippedItem {
                    uid: prop(component, "UID").map(text),
                    line,
                    reason: format!("{name} is not imported: only VEVENTs are"),
                }),
            }
        }
        // The last VEVENT of a UID (and RECURRENCE-ID) wins.
        let mut last: HashMap<(String, Option<DateTime<Utc>>), usize> = HashMap::new();
        for (i, r) in read.iter().enumerate() {
            let key = (r.event.uid.clone(), r.event.recurrence_id);
            if let Some(earlier) = last.insert(key, i) {
                file.skipped.push(SkippedItem {
                    uid: Some(read[earlier].event.uid.clone()),
                    line: read[earlier].event.line,
                    reason: "a later VEVENT has the same UID and replaces it".into(),
                });
            }
        }
        let mut keep: Vec<usize> = last.into_values().collect();
        keep.sort_unstable();
        let mut masters: HashMap<String, usize> = HashMap::new();
        let mut events: Vec<Option<ImportedEvent>> = Vec::new();
        let mut overrides = Vec::new();
        for i in keep {
            let r = &read[i];
            if r.event.recurrence_id.is_some() {
                overrides.push(i);
            } else if r.cancelled {
                file.skipped.push(SkippedItem {
                    uid: Some(r.event.uid.clone()),
                    line: r.event.line,
                    reason: "the event is cancelled (STATUS:CANCELLED)".into(),
                });
            } else {
                masters.insert(r.event.uid.clone(), events.len());
                events.push(Some(r.event.clone()));
            }
        }
        for i in overrides {
            let r = &read[i];
            let Some(rid) = r.event.recurrence_id else {
                continue;
            };
            let series = masters
                .get(&r.event.uid)
                .and_then(|m| events.get_mut(*m))
                .and_then(Option::as_mut)
                .filter(|m| m.event.recurrence.is_some());
            if let Some(series) = series {
                series.exdates.push(rid);
            }
            if !r.cancelled {
                events.push(Some(r.event.clone()));
            }
        }
        file.events = events.into_iter().flatten().collect();
        Ok(file)
    }

    fn vevent(
        &self,
        c: &Component,
        line: usize,
        skipped: &mut Vec<SkippedItem>,
    ) -> Result<Option<Read>, FieldErrors> {
        let uid = prop(c, "UID").map(text).filter(|u| !u.trim().is_empty());
        let skip = |skipped: &mut Vec<SkippedItem>, reason: String| {
            skipped.push(SkippedItem {
                uid: uid.clone(),
                line,
                reason,
            });
            Ok(None)
        };
        let Some(uid) = uid.clone() else {
            return skip(
                skipped,
                "the VEVENT has no UID (importing it again could not find it)".into(),
            );
        };
        let Some(dtstart) = prop(c, "DTSTART") else {
            return Err(at_line(line, "the VEVENT has no DTSTART"));
        };
        let (start_at, zone, is_all_day) = match self.when(dtstart) {
            Ok(When::At(at, zone)) => (at, zone, false),
            Ok(When::Day(day)) => match self.midnight(day) {
                Some(at) => (at, None, true),
                None => return Err(at_line(line, "DTSTART is not a date")),
            },
            Err(problem) if problem.contains("time zone") => return skip(skipped, problem),
            Err(problem) => return Err(at_line(line, problem)),
        };
        let end_at = if let Some(dtend) = prop(c, "DTEND") {
            match self.when(dtend) {
                Ok(When::At(at, _)) => at,
                Ok(When::Day(day)) => match self.midnight(day) {
                    Some(at) => at,
                    None => return Err(at_line(line, "DTEND is not a date")),
                },
                Err(problem) if problem.contains("time zone") => return skip(skipped, problem),
                Err(problem) => return Err(at_line(line, problem)),
            }
        } else if let Some(duration) = prop(c, "DURATION") {
            match duration_of(duration.val.as_str()) {
                Some(d) if d > Duration::zero() => start_at + d,
                _ => return Err(at_line(line, "DURATION is not a positive duration")),
            }
        } else if is_all_day {
            start_at + Duration::days(1)
        } else {
            return skip(
                skipped,
                "the VEVENT has no DTEND or DURATION: events here last a while".into(),
            );
        };
        let recurrence_id = match prop(c, "RECURRENCE-ID") {
            Some(rid) => {
                if param(rid, "RANGE").is_some_and(|r| r.eq_ignore_ascii_case("THISANDFUTURE")) {
                    return skip(
                        skipped,
                        "a RECURRENCE-ID with RANGE=THISANDFUTURE is not imported".into(),
                    );
                }
                match self.instants(rid, start_at, zone.unwrap_or(self.zone)) {
                    Ok(at) => at.first().copied(),
                    Err(problem) => return Err(at_line(line, problem)),
                }
            }
            None => None,
        };
        let recurrence = match recurrence_id {
            Some(_) => None,
            None => prop(c, "RRULE").map(|r| r.val.as_str().to_owned()),
        };
        let mut exdates = Vec::new();
        if recurrence.is_some() {
            let series_zone = zone.unwrap_or(self.zone);
            for p in c
                .properties
                .iter()
                .filter(|p| p.name.as_str().eq_ignore_ascii_case("EXDATE"))
            {
                match self.instants(p, start_at, series_zone) {
                    Ok(at) => exdates.extend(at),
                    Err(problem) => return Err(at_line(line, problem)),
                }
            }
        }
        if prop(c, "RDATE").is_some() {
            skipped.push(SkippedItem {
                uid: Some(uid.clone()),
                line,
                reason: "its RDATE dates are not imported (RRULE and EXDATE are)".into(),
            });
        }
        let title = prop(c, "SUMMARY")
            .map(text)
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| "(No title)".to_owned());
        let mut cut = Vec::new();
        let (title, title_cut) = bounded(title, TITLE_MAX);
        if title_cut {
            cut.push("SUMMARY");
        }
        let description = prop(c, "DESCRIPTION").map(text).map(|d| {
            let (d, was_cut) = bounded(d, DESCRIPTION_MAX);
            if was_cut {
                cut.push("DESCRIPTION");
            }
            d
        });
        let location = prop(c, "LOCATION").map(text).map(|l| {
            let (l, was_cut) = bounded(l, LOCATION_MAX);
            if was_cut {
                cut.push("LOCATION");
            }
            l
        });
        if !cut.is_empty() {
            skipped.push(SkippedItem {
                uid: Some(uid.clone()),
                line,
                reason: format!("its {} was cut to this server's limit", cut.join(", ")),
            });
        }
        let (alerts, alarms_dropped) = alerts_of(c);
        if alarms_dropped > 0 {
            skipped.push(SkippedItem {
                uid: Some(uid.clone()),
                line,
                reason: format!(
                    "{alarms_dropped} of its VALARMs not imported: alerts here are 0 to \
                     {ALERT_MINUTES_MAX} minutes before the start, at most {ALERTS_MAX}"
                ),
            });
        }
        let cancelled =
            prop(c, "STATUS").is_some_and(|s| s.val.as_str().eq_ignore_ascii_case("CANCELLED"));
        // A series repeats on its own zone's wall clock; the server's zone needs no mention.
        let timezone = zone.filter(|z| recurrence.is_some() && *z != self.zone);
        Ok(Some(Read {
            event: ImportedEvent {
                uid,
                recurrence_id,
                line,
                event: NewEvent {
                    title,
                    description,
                    location,
                    start_at,
                    end_at,
                    is_all_day,
                    recurrence,
                    alerts,
                },
                timezone,
                exdates,
            },
            cancelled,
        }))
    }
}

/// An RFC 5545 duration (`P1D`, `PT1H30M`, `-PT15M`, `P2W`).
fn duration_of(value: &str) -> Option<Duration> {
    let value = value.trim();
    let (negative, rest) = match value.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, value.strip_prefix('+').unwrap_or(value)),
    };
    let std: std::time::Duration = iso8601::duration(rest).ok()?.into();
    let d = Duration::from_std(std).ok()?;
    Some(if negative { -d } else { d })
}

/// The alerts of a VEVENT's VALARMs: triggers relative to its start, before it. Returns how
/// many alarms could not be kept (after the start, absolute, relative to the end, too many).
fn alerts_of(c: &Component) -> (Vec<u32>, usize) {
    let mut alerts = Vec::new();
    let mut dropped = 0;
    for alarm in c
        .components
        .iter()
        .filter(|a| a.name.as_str().eq_ignore_ascii_case("VALARM"))
    {
        let minutes = prop(alarm, "TRIGGER")
            .filter(|t| !param(t, "RELATED").is_some_and(|r| r.eq_ignore_ascii_case("END")))
            .filter(|t| !param(t, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE-TIME")))
            .and_then(|t| duration_of(t.val.as_str()))
            .filter(|d| *d <= Duration::zero())
            .and_then(|d| u32::try_from(-d.num_minutes()).ok())
            .filter(|m| *m <= ALERT_MINUTES_MAX);
        match minutes {
            Some(m) if !alerts.contains(&m) => alerts.push(m),
            Some(_) => {}
            None => dropped += 1,
        }
    }
    alerts.sort_unstable();
    if alerts.len() > ALERTS_MAX {
        dropped += alerts.len() - ALERTS_MAX;
        alerts.truncate(ALERTS_MAX);
    }
    (alerts, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_lines_keep_the_number_of_the_line_they_began_on() {
        let lines = content_lines("A:1\r\nB:2\r\n  more\r\n\tand more\r\nC:3\r\n");
        assert_eq!(
            lines,
            vec![
                ("A:1".to_owned(), 1),
                ("B:2 moreand more".to_owned(), 2),
                ("C:3".to_owned(), 5)
            ]
        );
    }

    #[test]
    fn zones_are_found_by_iana_windows_and_prefixed_names() {
        assert_eq!(
            resolve_zone("Europe/Berlin"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            resolve_zone("W. Europe Standard Time"),
            Some(chrono_tz::Europe::Berlin)
        );
        assert_eq!(
            resolve_zone("/mozilla.org/20050126_1/America/New_York"),
            Some(chrono_tz::America::New_York)
        );
        assert_eq!(resolve_zone("Mars/Olympus_Mons"), None);
    }

    #[test]
    fn durations_read_as_rfc_5545_writes_them() {
        assert_eq!(duration_of("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(duration_of("-PT15M"), Some(Duration::minutes(-15)));
        assert_eq!(duration_of("P1D"), Some(Duration::days(1)));
        assert_eq!(duration_of("P2W"), Some(Duration::weeks(2)));
        assert_eq!(duration_of("soon"), None);
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_recurses() {
        let mut text = String::from("BEGIN:VCALENDAR\r\n");
        for _ in 0..100_000 {
            text.push_str("BEGIN:X\r\n");
        }
        let errors = parse(&text, chrono_tz::UTC).unwrap_err();
        assert!(errors.to_string().contains("line 9"), "{errors}");
    }

    #[test]
    fn a_broken_line_is_named_by_its_number_in_the_file() {
        let text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\n no colon \
                    here\r\nDTSTART:20261201T090000Z\r\nTHIS LINE IS BROKEN\r\nEND:VEVENT\r\n\
                    END:VCALENDAR\r\n";
        let errors = parse(text, chrono_tz::UTC).unwrap_err();
        assert!(errors.to_string().contains("line 7"), "{errors}");
        let two = "BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\nBEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n";
        let errors = parse(two, chrono_tz::UTC).unwrap_err();
        assert!(errors.to_string().contains("line 3"), "{errors}");
    }
}
