//! Calendar events, with RFC 5545 recurrence rules expanded over a range.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};
use rrule::{Frequency, RRule, Unvalidated};
use serde::Serialize;
use uuid::Uuid;

use super::error::{DomainError, DomainResult, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::values::{optional_text, required_text};

pub const TITLE_MAX: usize = 500;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const LOCATION_MAX: usize = 500;
pub const RECURRENCE_MAX: usize = 1_000;
/// Alerts of one event at most, and how far ahead of its start one may be (four weeks).
pub const ALERTS_MAX: usize = 5;
pub const ALERT_MINUTES_MAX: u32 = 40_320;
/// The longest range a listing may expand recurring events over.
pub const MAX_RANGE_DAYS: i64 = 3_660;
/// The longest COUNT a rule may have: a counted series is walked from its start.
pub const MAX_COUNT: u32 = 1_000;
/// At most this many occurrences (of all series) are looked at to make one listing: enough
/// for 1,000 series with a page each and a counted series walked in full, and some tens of
/// milliseconds of work.
pub const MAX_EXAMINED_PER_LISTING: usize = 200_000;
/// And at most this long: expansion runs off the request workers, but a listing still ends.
pub const EXPANSION_TIME: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub is_all_day: bool,
    pub recurrence: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Minutes before each occurrence's start at which the user is reminded.
    pub alerts: Vec<u32>,
    /// The IANA zone a recurring event repeats in, when it is not the server's
    /// (`ai.timezone`): set by an iCalendar import from the file's TZID.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "zone_name")]
    #[schema(value_type = Option<String>, example = "America/New_York")]
    pub timezone: Option<chrono_tz::Tz>,
    /// Starts of occurrences the series skips (EXDATE), in order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exdates: Vec<DateTime<Utc>>,
    /// Set on an occurrence of a recurring event in a range listing: the series' id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence_of: Option<Uuid>,
}

fn zone_name<S: serde::Serializer>(
    tz: &Option<chrono_tz::Tz>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match tz {
        Some(tz) => serializer.serialize_str(tz.name()),
        None => serializer.serialize_none(),
    }
}

/// The most EXDATEs one series keeps.
pub const EXDATES_MAX: usize = 1_000;

impl Event {
    /// Position in the listing ordered by start time.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.start_at,
            id: self.id,
        }
    }

    fn validate(self) -> DomainResult<Self> {
        let mut errors = FieldErrors::new();
        if self.end_at <= self.start_at {
            errors.add("endAt", "must be after startAt");
        }
        if let Some(rule) = &self.recurrence
            && let Err(problem) = check_rule(rule, self.start_at)
        {
            errors.add("recurrence", problem);
        }
        errors.into_result()?;
        Ok(self)
    }

    /// Sorted, without repeats; at most [`ALERTS_MAX`], each at most [`ALERT_MINUTES_MAX`].
    fn set_alerts(&mut self, mut alerts: Vec<u32>, errors: &mut FieldErrors) {
        alerts.sort_unstable();
        alerts.dedup();
        if alerts.len() > ALERTS_MAX {
            errors.add("alerts", format!("at most {ALERTS_MAX} alerts"));
        } else if alerts.iter().any(|m| *m > ALERT_MINUTES_MAX) {
            errors.add(
                "alerts",
                format!("each alert is 0 to {ALERT_MINUTES_MAX} minutes before the start"),
            );
        } else {
            self.alerts = alerts;
        }
    }

    /// When the event, or its first occurrence on the wall clock of `tz`, starts strictly after
    /// `after`; None when none is ahead within a listing's range and budget.
    pub fn next_start_after(
        &self,
        tz: chrono_tz::Tz,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let to = after + Duration::days(MAX_RANGE_DAYS);
        // Occurrences still running at `after` come first: a few more are walked past them.
        match self.occurrences(tz, after, to, None, 10, &mut Budget::for_listing()) {
            Ok(found) => found.into_iter().map(|o| o.start_at).find(|s| *s > after),
            Err(TooCostly(id)) => {
                tracing::warn!(event = %id, "the next occurrence is too costly to find");
                None
            }
        }
    }

    /// The occurrences of this series that overlap `[from, to)` and come after `cursor`, in
    /// start order, at most `limit` of them; or the event itself when it does not recur and
    /// overlaps the range. The walk starts a period or two before the range (not at the series
    /// start), and every occurrence it looks at counts against `budget`.
    pub fn occurrences(
        &self,
        tz: chrono_tz::Tz,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<Cursor>,
        limit: usize,
        budget: &mut Budget,
    ) -> Result<Vec<Event>, TooCostly> {
        let after_cursor =
            |start: DateTime<Utc>| cursor.is_none_or(|c| (start, self.id) > (c.at, c.id));
        let tz = self.timezone.unwrap_or(tz);
        let Some(rule) = &self.recurrence else {
            let overlaps = self.start_at < to && self.end_at > from;
            return Ok(if overlaps && after_cursor(self.start_at) && limit > 0 {
                vec![self.clone()]
            } else {
                Vec::new()
            });
        };
        let Ok(parsed) = parse_text(rule) else {
            // Stored rules were validated on write; a rule that no longer parses shows the
            // series' first instance rather than failing the whole listing.
            let single = Event {
                recurrence: None,
                ..self.clone()
            };
            return single.occurrences(tz, from, to, cursor, limit, budget);
        };
        let duration = self.end_at - self.start_at;
        // An occurrence overlaps when it starts in (from - duration, to); occurrences before
        // the cursor are not wanted either.
        let lowest = match cursor {
            Some(c) if c.at > from - duration => c.at - Duration::microseconds(1),
            _ => from - duration,
        };
        if parsed.get_until().is_some_and(|until| *until <= lowest) || limit == 0 {
            return Ok(Vec::new());
        }
        // The rule repeats on the user's wall clock: a 09:00 series stays at 09:00 across a
        // daylight-saving change.
        let zone = rrule::Tz::Tz(tz);
        // The rule is walked in whole seconds (its iterator would drop a first occurrence
        // that a start with milliseconds makes "earlier" than the start); each occurrence gets
        // the series' fraction of a second back.
        let whole = self.start_at.with_nanosecond(0).unwrap_or(self.start_at);
        let fraction = self.start_at - whole;
        let anchor = walk_start(&parsed, whole, lowest - fraction, tz);
        let set = match parsed.clone().build(anchor.with_timezone(&zone)) {
            Ok(set) => set,
            Err(_) => match parsed.build(whole.with_timezone(&zone)) {
                Ok(set) => set,
                Err(_) => return Ok(Vec::new()),
            },
        };
        let mut found = Vec::new();
        for start in &set.limit() {
            budget.spend(self.id)?;
            let start_at = start.with_timezone(&Utc) + fraction;
            if start_at >= to {
                break;
            }
            if start_at <= lowest
                || !after_cursor(start_at)
                || self.exdates.binary_search(&start_at).is_ok()
            {
                continue;
            }
            found.push(Event {
                start_at,
                end_at: start_at + duration,
                occurrence_of: Some(self.id),
                ..self.clone()
            });
            if found.len() >= limit {
                break;
            }
        }
        Ok(found)
    }
}

/// What one listing may spend expanding recurring events: occurrences looked at, and time.
#[derive(Debug)]
pub struct Budget {
    examined: usize,
    max_examined: usize,
    deadline: std::time::Instant,
}

/// A series needed more than the listing's budget to expand over its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooCostly(pub Uuid);

impl Budget {
    pub fn new(max_examined: usize, time: std::time::Duration) -> Self {
        Self {
            examined: 0,
            max_examined,
            deadline: std::time::Instant::now() + time,
        }
    }

    /// The budget of one listing.
    pub fn for_listing() -> Self {
        Self::new(MAX_EXAMINED_PER_LISTING, EXPANSION_TIME)
    }

    /// Occurrences looked at so far.
    pub fn examined(&self) -> usize {
        self.examined
    }

    fn spend(&mut self, series: Uuid) -> Result<(), TooCostly> {
        self.examined += 1;
        // The clock is read now and then: it costs more than an occurrence.
        let late = self.examined.is_multiple_of(256) && std::time::Instant::now() > self.deadline;
        if self.examined > self.max_examined || late {
            return Err(TooCostly(series));
        }
        Ok(())
    }
}

/// Where to start walking a rule so that its occurrences after `lowest` are the same as when
/// walking from `start`: a whole number of the rule's periods after `start`, at least one
/// period before `lowest`. A rule with COUNT is walked from its start (the count runs from
/// there); so is one whose shifted start would not land on the same day of the month.
fn walk_start(
    rule: &RRule<Unvalidated>,
    start: DateTime<Utc>,
    lowest: DateTime<Utc>,
    tz: chrono_tz::Tz,
) -> DateTime<Utc> {
    if rule.get_count().is_some() || lowest <= start {
        return start;
    }
    let interval = i64::from(rule.get_interval().max(1));
    // Whole days and weeks are stepped on the wall clock of the zone the rule repeats in (a
    // day is not 24 hours across a daylight-saving change); hours in absolute time.
    let fixed = |period: Duration, wall: bool| {
        let periods = (lowest - start).num_seconds() / period.num_seconds().max(1);
        let steps = i32::try_from(periods - 1).unwrap_or(0).max(0);
        if !wall {
            return start + period * steps;
        }
        let local = start.with_timezone(&tz).naive_local() + period * steps;
        tz.from_local_datetime(&local)
            .earliest()
            .map_or(start, |t| t.with_timezone(&Utc))
    };
    let months = |per_step: i64| {
        let gap = i64::from(lowest.year() - start.year()) * 12 + i64::from(lowest.month())
            - i64::from(start.month());
        let mut steps = gap / per_step - 1;
        // A month without the start's day (the 31st, 29 February) would move the series'
        // day: step back to one that has it.
        for _ in 0..12 {
            if steps <= 0 {
                break;
            }
            let local = start.with_timezone(&tz).naive_local();
            let shifted = u32::try_from(steps * per_step)
                .ok()
                .and_then(|m| local.checked_add_months(chrono::Months::new(m)));
            if let Some(shifted) = shifted
                && shifted.day() == local.day()
                && let Some(at) = tz.from_local_datetime(&shifted).earliest()
            {
                return at.with_timezone(&Utc);
            }
            steps -= 1;
        }
        start
    };
    match rule.get_freq() {
        Frequency::Hourly => fixed(Duration::hours(interval), false),
        Frequency::Daily => fixed(Duration::days(interval), true),
        Frequency::Weekly => fixed(Duration::weeks(interval), true),
        Frequency::Monthly => months(interval),
        Frequency::Yearly => months(12 * interval),
        Frequency::Minutely | Frequency::Secondly => start,
    }
}

/// Parses a rule's text (without DTSTART), as stored or submitted.
fn parse_text(rule: &str) -> Result<RRule<Unvalidated>, String> {
    let text = rule.strip_prefix("RRULE:").unwrap_or(rule);
    // The grammar is ASCII, and the parser slices the text by bytes: other characters panic
    // it (found by fuzzing).
    if !text.is_ascii() {
        return Err("must be ASCII, as RFC 5545 writes it".into());
    }
    if text.contains(['\n', '\r']) || text.to_ascii_uppercase().contains("DTSTART") {
        return Err("must be a single RRULE without DTSTART (startAt is the series start)".into());
    }
    let parsed: RRule<Unvalidated> = text
        .parse()
        .map_err(|e: rrule::RRuleError| format!("is not a valid RRULE: {e}"))?;
    if parsed.get_interval() == 0 {
        return Err("INTERVAL must be at least 1".into());
    }
    if matches!(parsed.get_freq(), Frequency::Secondly | Frequency::Minutely) {
        return Err("FREQ must be HOURLY or slower for calendar events".into());
    }
    Ok(parsed)
}

/// Checks a submitted rule: it parses, and every listing can expand it cheaply. Occurrences
/// are at most hourly (no BYSECOND list, no BYMINUTE list with FREQ=HOURLY, at most 24 times
/// a day), and COUNT is bounded (a counted series is walked from its start).
fn check_rule(rule: &str, start_at: DateTime<Utc>) -> Result<(), String> {
    let parsed = parse_text(rule)?;
    if parsed.get_count().is_some_and(|count| count > MAX_COUNT) {
        return Err(format!("COUNT must be at most {MAX_COUNT}"));
    }
    let rule = parsed
        .validate(start_at.with_timezone(&rrule::Tz::UTC))
        .map_err(|e| format!("is not a valid RRULE: {e}"))?;
    if rule.get_by_second().len() > 1 {
        return Err("BYSECOND may name one second: events repeat at most hourly".into());
    }
    if rule.get_freq() == Frequency::Hourly && rule.get_by_minute().len() > 1 {
        return Err(
            "BYMINUTE may name one minute with FREQ=HOURLY: events repeat at most hourly".into(),
        );
    }
    let hours = rule.get_by_hour().len().max(1);
    let minutes = rule.get_by_minute().len().max(1);
    if rule.get_freq() != Frequency::Hourly && hours * minutes > 24 {
        return Err("BYHOUR and BYMINUTE may give at most 24 times a day".into());
    }
    Ok(())
}

/// Normalises a submitted rule: trims it and drops an `RRULE:` prefix.
fn normalise_rule(rule: Option<&str>) -> Result<Option<String>, String> {
    let Some(rule) = optional_text(rule, RECURRENCE_MAX)? else {
        return Ok(None);
    };
    Ok(Some(
        rule.strip_prefix("RRULE:").unwrap_or(&rule).to_owned(),
    ))
}

#[derive(Debug, Clone)]
pub struct NewEvent {
    pub title: String,
    pub description: Option<String>,
    pub location: Option<String>,
    pub start_at: DateTime<Utc>,
    pub end_at: DateTime<Utc>,
    pub is_all_day: bool,
    pub recurrence: Option<String>,
    pub alerts: Vec<u32>,
}

impl NewEvent {
    pub fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Event> {
        let mut errors = FieldErrors::new();
        let title = errors.check("title", required_text(&self.title, TITLE_MAX));
        let description = errors.check(
            "description",
            optional_text(self.description.as_deref(), DESCRIPTION_MAX),
        );
        let location = errors.check(
            "location",
            optional_text(self.location.as_deref(), LOCATION_MAX),
        );
        let recurrence = errors.check("recurrence", normalise_rule(self.recurrence.as_deref()));
        let mut event = Event {
            id,
            title: title.unwrap_or_default(),
            description: description.flatten(),
            location: location.flatten(),
            start_at: self.start_at,
            end_at: self.end_at,
            is_all_day: self.is_all_day,
            recurrence: recurrence.flatten(),
            created_at: now,
            updated_at: now,
            alerts: Vec::new(),
            timezone: None,
            exdates: Vec::new(),
            occurrence_of: None,
        };
        event.set_alerts(self.alerts, &mut errors);
        errors.into_result()?;
        event.validate()
    }
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears a nullable field.
#[derive(Debug, Clone, Default)]
pub struct EventPatch {
    pub title: Option<String>,
    pub description: Option<Option<String>>,
    pub location: Option<Option<String>>,
    pub start_at: Option<DateTime<Utc>>,
    pub end_at: Option<DateTime<Utc>>,
    pub is_all_day: Option<bool>,
    pub recurrence: Option<Option<String>>,
    pub alerts: Option<Vec<u32>>,
}

impl EventPatch {
    pub(crate) fn apply(self, mut event: Event, now: DateTime<Utc>) -> DomainResult<Event> {
        let mut errors = FieldErrors::new();
        if let Some(title) = self.title
            && let Some(title) = errors.check("title", required_text(&title, TITLE_MAX))
        {
            event.title = title;
        }
        if let Some(d) = self.description
            && let Some(d) =
                errors.check("description", optional_text(d.as_deref(), DESCRIPTION_MAX))
        {
            event.description = d;
        }
        if let Some(l) = self.location
            && let Some(l) = errors.check("location", optional_text(l.as_deref(), LOCATION_MAX))
        {
            event.location = l;
        }
        if let Some(r) = self.recurrence
            && let Some(r) = errors.check("recurrence", normalise_rule(r.as_deref()))
        {
            event.recurrence = r;
        }
        if let Some(alerts) = self.alerts {
            event.set_alerts(alerts, &mut errors);
        }
        errors.into_result()?;
        if let Some(start_at) = self.start_at {
            event.start_at = start_at;
        }
        if let Some(end_at) = self.end_at {
            event.end_at = end_at;
        }
        if let Some(is_all_day) = self.is_all_day {
            event.is_all_day = is_all_day;
        }
        event.updated_at = now;
        event.validate()
    }
}

/// A range of the listing: events and occurrences overlapping `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl EventRange {
    pub fn parse(
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> DomainResult<Option<Self>> {
        match (from, to) {
            (None, None) => Ok(None),
            (Some(from), Some(to)) => {
                if to <= from {
                    return Err(DomainError::invalid("to", "must be after from"));
                }
                if to - from > Duration::days(MAX_RANGE_DAYS) {
                    return Err(DomainError::invalid(
                        "to",
                        format!("the range may span at most {MAX_RANGE_DAYS} days"),
                    ));
                }
                Ok(Some(Self { from, to }))
            }
            (None, Some(_)) => Err(DomainError::invalid("from", "is required with to")),
            (Some(_), None) => Err(DomainError::invalid("to", "is required with from")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EventQuery {
    pub range: Option<EventRange>,
    pub page: PageRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn event(recurrence: Option<&str>) -> DomainResult<Event> {
        NewEvent {
            title: "Standup".into(),
            description: None,
            location: None,
            start_at: at("2026-11-02T09:00:00Z"),
            end_at: at("2026-11-02T09:15:00Z"),
            is_all_day: false,
            recurrence: recurrence.map(str::to_owned),
            alerts: Vec::new(),
        }
        .validate(Uuid::now_v7(), at("2026-11-01T00:00:00Z"))
    }

    /// Every occurrence in the range, with a listing's budget.
    fn occurrences_in(e: &Event, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Event> {
        e.occurrences(
            chrono_tz::UTC,
            from,
            to,
            None,
            100_000,
            &mut Budget::for_listing(),
        )
        .unwrap()
    }

    /// A stored event as it is, without the checks of today's writes.
    fn stored(start: &str, rule: &str) -> Event {
        let start_at = at(start);
        Event {
            id: Uuid::now_v7(),
            title: "old".into(),
            description: None,
            location: None,
            start_at,
            end_at: start_at + Duration::minutes(30),
            is_all_day: false,
            recurrence: Some(rule.into()),
            created_at: start_at,
            updated_at: start_at,
            alerts: Vec::new(),
            timezone: None,
            exdates: Vec::new(),
            occurrence_of: None,
        }
    }

    #[test]
    fn a_series_repeats_on_the_wall_clock_of_its_zone() {
        // London moves from GMT to BST on 28 March 2027.
        let e = stored("2027-03-15T09:00:00Z", "FREQ=WEEKLY;BYDAY=MO");
        let london = chrono_tz::Europe::London;
        let starts = |from: &str, to: &str| -> Vec<DateTime<Utc>> {
            e.occurrences(
                london,
                at(from),
                at(to),
                None,
                10,
                &mut Budget::for_listing(),
            )
            .unwrap()
            .into_iter()
            .map(|o| o.start_at)
            .collect()
        };
        assert_eq!(
            starts("2027-03-14T00:00:00Z", "2027-04-06T00:00:00Z"),
            [
                at("2027-03-15T09:00:00Z"),
                at("2027-03-22T09:00:00Z"),
                at("2027-03-29T08:00:00Z"),
                at("2027-04-05T08:00:00Z"),
            ]
        );
        // Far from its start, where the walk skips ahead: still 09:00 on the wall clock.
        assert_eq!(
            starts("2031-07-01T00:00:00Z", "2031-07-15T00:00:00Z"),
            [at("2031-07-07T08:00:00Z"), at("2031-07-14T08:00:00Z")]
        );
        // In UTC the same rule keeps 09:00Z.
        let utc: Vec<_> = e
            .occurrences(
                chrono_tz::UTC,
                at("2027-03-28T00:00:00Z"),
                at("2027-04-01T00:00:00Z"),
                None,
                10,
                &mut Budget::for_listing(),
            )
            .unwrap();
        assert_eq!(utc[0].start_at, at("2027-03-29T09:00:00Z"));
    }

    #[test]
    fn a_start_with_milliseconds_keeps_its_first_occurrence() {
        let e = stored("2026-12-03T21:44:06.352Z", "FREQ=WEEKLY");
        let starts: Vec<_> =
            occurrences_in(&e, at("2026-12-01T00:00:00Z"), at("2026-12-20T00:00:00Z"))
                .into_iter()
                .map(|o| o.start_at)
                .collect();
        assert_eq!(
            starts,
            [
                at("2026-12-03T21:44:06.352Z"),
                at("2026-12-10T21:44:06.352Z"),
                at("2026-12-17T21:44:06.352Z")
            ]
        );
    }

    #[test]
    fn weekly_rule_expands_in_range() {
        let e = event(Some("RRULE:FREQ=WEEKLY;BYDAY=MO")).unwrap();
        assert_eq!(e.recurrence.as_deref(), Some("FREQ=WEEKLY;BYDAY=MO"));
        let occ = occurrences_in(&e, at("2026-11-10T00:00:00Z"), at("2026-12-01T00:00:00Z"));
        let starts: Vec<_> = occ.iter().map(|o| o.start_at).collect();
        assert_eq!(
            starts,
            vec![
                at("2026-11-16T09:00:00Z"),
                at("2026-11-23T09:00:00Z"),
                at("2026-11-30T09:00:00Z")
            ]
        );
        assert!(occ.iter().all(|o| o.occurrence_of == Some(e.id)));
        assert!(
            occ.iter()
                .all(|o| o.end_at - o.start_at == Duration::minutes(15))
        );
    }

    #[test]
    fn occurrence_overlapping_range_start_is_included() {
        let e = event(Some("FREQ=DAILY;COUNT=3")).unwrap();
        let occ = occurrences_in(&e, at("2026-11-03T09:10:00Z"), at("2026-11-03T10:00:00Z"));
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].start_at, at("2026-11-03T09:00:00Z"));
    }

    #[test]
    fn count_bounds_the_series() {
        let e = event(Some("FREQ=DAILY;COUNT=3")).unwrap();
        let occ = occurrences_in(&e, at("2026-11-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(occ.len(), 3);
    }

    #[test]
    fn bad_rules_are_validation_errors() {
        for rule in [
            "FREQ=WEEKLY;INTERVAL=0",
            "FREQ=SOMETIMES",
            "FREQ=MINUTELY",
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
            // Finer than hourly, or too long a count to walk.
            "FREQ=HOURLY;BYMINUTE=0,30",
            "FREQ=HOURLY;BYSECOND=0,1,2",
            "FREQ=DAILY;BYSECOND=0,30",
            "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23;BYMINUTE=0,30",
            "FREQ=WEEKLY;COUNT=1001",
            "",
        ] {
            let result = event(Some(rule));
            if rule.is_empty() {
                assert_eq!(result.unwrap().recurrence, None);
            } else {
                assert!(matches!(result, Err(DomainError::Validation(_))), "{rule}");
            }
        }
    }

    #[test]
    fn rules_that_repeat_at_most_hourly_are_accepted() {
        for rule in [
            "FREQ=HOURLY",
            "FREQ=HOURLY;BYMINUTE=30;BYSECOND=0",
            "FREQ=DAILY;BYHOUR=9,17;BYMINUTE=0,30",
            "FREQ=DAILY;BYHOUR=0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23",
            "FREQ=MONTHLY;BYDAY=1MO;COUNT=1000",
            "FREQ=YEARLY;UNTIL=20300101T000000Z",
        ] {
            assert!(event(Some(rule)).is_ok(), "{rule}");
        }
    }

    #[test]
    fn an_hourly_series_from_year_one_lists_a_day_cheaply() {
        let e = stored("0001-01-01T00:00:00Z", "FREQ=HOURLY");
        let mut budget = Budget::for_listing();
        let day = e
            .occurrences(
                chrono_tz::UTC,
                at("2026-12-01T00:00:00Z"),
                at("2026-12-02T00:00:00Z"),
                None,
                100,
                &mut budget,
            )
            .unwrap();
        assert_eq!(day.len(), 24);
        assert_eq!(day[0].start_at, at("2026-12-01T00:00:00Z"));
        assert!(budget.examined() < 40, "{}", budget.examined());
    }

    #[test]
    fn a_stored_rule_finer_than_hourly_is_cut_at_the_page() {
        let every_second: String = format!(
            "FREQ=HOURLY;BYMINUTE={};BYSECOND={}",
            (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(","),
            (0..60).map(|m| m.to_string()).collect::<Vec<_>>().join(",")
        );
        let e = stored("0001-01-01T00:00:00Z", &every_second);
        let mut budget = Budget::for_listing();
        let page = e
            .occurrences(
                chrono_tz::UTC,
                at("2026-12-01T00:00:00Z"),
                at("2026-12-02T00:00:00Z"),
                None,
                51,
                &mut budget,
            )
            .unwrap();
        assert_eq!(page.len(), 51);
        // Walked from an hour or two before the range, not from year one.
        assert!(budget.examined() < 3 * 3600 + 51, "{}", budget.examined());
    }

    #[test]
    fn a_series_over_the_budget_is_too_costly() {
        let e = stored("2000-01-01T09:00:00Z", "FREQ=DAILY;COUNT=5000");
        let mut budget = Budget::new(1_000, std::time::Duration::from_secs(5));
        let result = e.occurrences(
            chrono_tz::UTC,
            at("2010-01-01T00:00:00Z"),
            at("2010-01-02T00:00:00Z"),
            None,
            10,
            &mut budget,
        );
        assert_eq!(result, Err(TooCostly(e.id)));
    }

    #[test]
    fn the_cursor_moves_the_walk() {
        let e = stored("2026-01-01T00:00:00Z", "FREQ=HOURLY");
        let from = at("2026-01-01T00:00:00Z");
        let to = at("2026-12-31T00:00:00Z");
        let cursor = Cursor {
            at: at("2026-06-01T00:00:00Z"),
            id: e.id,
        };
        let mut budget = Budget::for_listing();
        let page = e
            .occurrences(chrono_tz::UTC, from, to, Some(cursor), 3, &mut budget)
            .unwrap();
        let starts: Vec<_> = page.iter().map(|o| o.start_at).collect();
        assert_eq!(
            starts,
            vec![
                at("2026-06-01T01:00:00Z"),
                at("2026-06-01T02:00:00Z"),
                at("2026-06-01T03:00:00Z")
            ]
        );
        assert!(budget.examined() < 10, "{}", budget.examined());
    }

    /// The occurrences in `[from, to)` walked from the series start, as the rule defines them.
    fn walked_from_start(e: &Event, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let rule = parse_text(e.recurrence.as_deref().unwrap()).unwrap();
        let set = rule
            .build(e.start_at.with_timezone(&rrule::Tz::UTC))
            .unwrap();
        let duration = e.end_at - e.start_at;
        (&set)
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .take_while(|d| *d < to)
            .filter(|d| *d + duration > from)
            .collect()
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
        /// Starting the walk near the range changes nothing: the occurrences are those of a
        /// walk from the series start.
        #[test]
        fn walking_from_near_the_range_finds_what_the_rule_defines(
            rule in proptest::sample::select(vec![
                "FREQ=HOURLY", "FREQ=HOURLY;INTERVAL=7", "FREQ=HOURLY;BYHOUR=9,17",
                "FREQ=DAILY", "FREQ=DAILY;INTERVAL=3", "FREQ=DAILY;BYDAY=MO,FR",
                "FREQ=WEEKLY", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,TH", "FREQ=WEEKLY;INTERVAL=3;WKST=SU",
                "FREQ=MONTHLY", "FREQ=MONTHLY;INTERVAL=5", "FREQ=MONTHLY;BYDAY=-1FR",
                "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=MONTHLY;BYSETPOS=2;BYDAY=MO,TU,WE,TH,FR",
                "FREQ=YEARLY", "FREQ=YEARLY;INTERVAL=3", "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
                "FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO", "FREQ=DAILY;UNTIL=20300101T000000Z",
            ]),
            start_day in 0i64..(366 * 6),
            start_minute in 0i64..1440,
            gap_hours in 0i64..(24 * 366 * 3),
            span_hours in 1i64..(24 * 40),
        ) {
            // Starts in 2000–2005 (29 February and the 31st included), ranges up to 3 years on.
            let start = at("2000-01-01T00:00:00Z")
                + Duration::days(start_day)
                + Duration::minutes(start_minute);
            let e = stored(&start.to_rfc3339(), rule);
            let from = start + Duration::hours(gap_hours);
            let to = from + Duration::hours(span_hours);
            let near: Vec<_> = occurrences_in(&e, from, to).iter().map(|o| o.start_at).collect();
            proptest::prop_assert_eq!(near, walked_from_start(&e, from, to));
        }
    }

    #[test]
    fn end_must_follow_start() {
        let err = EventPatch {
            end_at: Some(at("2026-11-02T08:00:00Z")),
            ..Default::default()
        }
        .apply(event(None).unwrap(), at("2026-11-01T00:00:00Z"))
        .unwrap_err();
        assert!(matches!(err, DomainError::Validation(f) if f.get("endAt").is_some()));
    }

    #[test]
    fn single_event_overlap() {
        let e = event(None).unwrap();
        assert_eq!(
            occurrences_in(&e, at("2026-11-02T09:14:00Z"), at("2026-11-03T00:00:00Z")).len(),
            1
        );
        assert!(
            occurrences_in(&e, at("2026-11-02T09:15:00Z"), at("2026-11-03T00:00:00Z")).is_empty()
        );
        assert!(
            occurrences_in(&e, at("2026-11-01T00:00:00Z"), at("2026-11-02T09:00:00Z")).is_empty()
        );
    }

    #[test]
    fn range_rules() {
        assert!(EventRange::parse(None, None).unwrap().is_none());
        assert!(EventRange::parse(Some(at("2026-01-01T00:00:00Z")), None).is_err());
        assert!(
            EventRange::parse(
                Some(at("2026-01-02T00:00:00Z")),
                Some(at("2026-01-01T00:00:00Z"))
            )
            .is_err()
        );
        assert!(
            EventRange::parse(
                Some(at("2010-01-01T00:00:00Z")),
                Some(at("2026-01-01T00:00:00Z"))
            )
            .is_err()
        );
    }
}
