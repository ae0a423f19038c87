//! Calendar events, with RFC 5545 recurrence rules expanded over a range.

use chrono::{DateTime, Duration, Utc};
use rrule::{Frequency, RRule, RRuleSet, Unvalidated};
use serde::Serialize;
use uuid::Uuid;

use super::error::{DomainError, DomainResult, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::values::{optional_text, required_text};

pub const TITLE_MAX: usize = 500;
pub const DESCRIPTION_MAX: usize = 10_000;
pub const LOCATION_MAX: usize = 500;
pub const RECURRENCE_MAX: usize = 1_000;
/// The longest range a listing may expand recurring events over.
pub const MAX_RANGE_DAYS: i64 = 3_660;
/// At most this many occurrences of one series are produced per listing.
pub const MAX_OCCURRENCES_PER_SERIES: u16 = 5_000;

#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// Set on an occurrence of a recurring event in a range listing: the series' id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrence_of: Option<Uuid>,
}

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
            && let Err(problem) = parse_rule(rule, self.start_at)
        {
            errors.add("recurrence", problem);
        }
        errors.into_result()?;
        Ok(self)
    }

    /// The occurrences of this series that overlap `[from, to)`, in start order, or the event
    /// itself when it does not recur and overlaps the range.
    pub fn occurrences(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Event> {
        let Some(rule) = &self.recurrence else {
            return if self.start_at < to && self.end_at > from {
                vec![self.clone()]
            } else {
                Vec::new()
            };
        };
        let Ok(set) = parse_rule(rule, self.start_at) else {
            // Stored rules were validated on write; a rule that no longer parses shows the
            // series' first instance rather than failing the whole listing.
            return Event {
                recurrence: None,
                ..self.clone()
            }
            .occurrences(from, to);
        };
        let duration = self.end_at - self.start_at;
        let utc = rrule::Tz::UTC;
        // An occurrence that starts before `from` still overlaps when it ends after `from`.
        let after = (from - duration + Duration::microseconds(1)).with_timezone(&utc);
        let before = (to - Duration::microseconds(1)).with_timezone(&utc);
        set.after(after)
            .before(before)
            .all(MAX_OCCURRENCES_PER_SERIES)
            .dates
            .into_iter()
            .map(|start| {
                let start_at = start.with_timezone(&Utc);
                Event {
                    start_at,
                    end_at: start_at + duration,
                    occurrence_of: Some(self.id),
                    ..self.clone()
                }
            })
            .collect()
    }
}

/// Parses a stored or submitted RRULE (without DTSTART) anchored at `start_at`.
fn parse_rule(rule: &str, start_at: DateTime<Utc>) -> Result<RRuleSet, String> {
    let text = rule.strip_prefix("RRULE:").unwrap_or(rule);
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
    parsed
        .build(start_at.with_timezone(&rrule::Tz::UTC))
        .map_err(|e| format!("is not a valid RRULE: {e}"))
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
}

impl NewEvent {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Event> {
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
        errors.into_result()?;
        Event {
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
            occurrence_of: None,
        }
        .validate()
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
        }
        .validate(Uuid::now_v7(), at("2026-11-01T00:00:00Z"))
    }

    #[test]
    fn weekly_rule_expands_in_range() {
        let e = event(Some("RRULE:FREQ=WEEKLY;BYDAY=MO")).unwrap();
        assert_eq!(e.recurrence.as_deref(), Some("FREQ=WEEKLY;BYDAY=MO"));
        let occ = e.occurrences(at("2026-11-10T00:00:00Z"), at("2026-12-01T00:00:00Z"));
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
        let occ = e.occurrences(at("2026-11-03T09:10:00Z"), at("2026-11-03T10:00:00Z"));
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].start_at, at("2026-11-03T09:00:00Z"));
    }

    #[test]
    fn count_bounds_the_series() {
        let e = event(Some("FREQ=DAILY;COUNT=3")).unwrap();
        let occ = e.occurrences(at("2026-11-01T00:00:00Z"), at("2027-01-01T00:00:00Z"));
        assert_eq!(occ.len(), 3);
    }

    #[test]
    fn bad_rules_are_validation_errors() {
        for rule in [
            "FREQ=WEEKLY;INTERVAL=0",
            "FREQ=SOMETIMES",
            "FREQ=MINUTELY",
            "DTSTART:20260101T000000Z\nRRULE:FREQ=DAILY",
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
            e.occurrences(at("2026-11-02T09:14:00Z"), at("2026-11-03T00:00:00Z"))
                .len(),
            1
        );
        assert!(
            e.occurrences(at("2026-11-02T09:15:00Z"), at("2026-11-03T00:00:00Z"))
                .is_empty()
        );
        assert!(
            e.occurrences(at("2026-11-01T00:00:00Z"), at("2026-11-02T09:00:00Z"))
                .is_empty()
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
