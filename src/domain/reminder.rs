//! Reminders: the assistant speaks first. A reminder stands alone, or belongs to a task, or to
//! an occurrence of an event (an alert). The scheduler fires it at `dueAt`, once.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::conversation::{Message, Role};
use super::error::{DomainError, DomainResult, FieldErrors};
use super::page::{Cursor, PageRequest};
use super::task::{Task, TaskStatus};
use super::values::required_text;

pub const TEXT_MAX: usize = 500;
/// Reminders still to fire that one user may hold.
pub const MAX_SCHEDULED_PER_USER: i64 = 1_000;
/// How far ahead a reminder may be set.
pub const MAX_AHEAD_DAYS: i64 = 3_660;
/// A reminder set this little in the past (a client's clock running late) fires at once; one
/// set earlier is refused.
pub const PAST_GRACE_SECS: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReminderStatus {
    Scheduled,
    Fired,
    Dismissed,
    Cancelled,
}

impl ReminderStatus {
    pub const ALL: [ReminderStatus; 4] = [
        Self::Scheduled,
        Self::Fired,
        Self::Dismissed,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Fired => "fired",
            Self::Dismissed => "dismissed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// What a reminder is: one the user (or the assistant) set, or the daily agenda.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReminderKind {
    #[default]
    Reminder,
    /// The daily agenda (`agendaAt` on `/v1/me`): its text, the day's events and the tasks
    /// due, is written when it fires.
    Agenda,
}

impl ReminderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reminder => "reminder",
            Self::Agenda => "agenda",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Reminder, Self::Agenda]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reminder {
    pub id: Uuid,
    pub kind: ReminderKind,
    pub text: String,
    pub due_at: DateTime<Utc>,
    pub task_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    /// Which occurrence of the event (its start) the reminder is for.
    pub occurrence_at: Option<DateTime<Utc>>,
    /// On an event's alert: this many minutes before the occurrence starts.
    pub alert_minutes: Option<u32>,
    /// The conversation the reminder was asked for in; it is told there when it fires.
    pub conversation_id: Option<Uuid>,
    pub status: ReminderStatus,
    pub fired_at: Option<DateTime<Utc>>,
    /// It was found too long after its time (the server was not running): marked fired
    /// without being delivered.
    pub fired_late: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Reminder {
    /// Position in the listing by due time.
    pub fn cursor(&self) -> Cursor {
        Cursor {
            at: self.due_at,
            id: self.id,
        }
    }

    /// What the assistant says in the reminder's conversation when it fires (or when it was
    /// missed), the time in the user's zone.
    pub fn announcement(&self, late: bool, timezone: chrono_tz::Tz) -> String {
        if late {
            let due = self.due_at.with_timezone(&timezone);
            format!(
                "⏰ I missed reminding you at {}: {}",
                due.format("%a %-d %b %H:%M"),
                self.text
            )
        } else {
            format!("⏰ Reminder: {}", self.text)
        }
    }

    /// The assistant message that tells the reminder's conversation it fired.
    pub fn message(
        &self,
        late: bool,
        timezone: chrono_tz::Tz,
        now: DateTime<Utc>,
    ) -> Option<Message> {
        Some(Message {
            id: Uuid::now_v7(),
            conversation_id: self.conversation_id?,
            role: Role::Assistant,
            content: self.announcement(late, timezone),
            tool_calls: Vec::new(),
            client_message_id: None,
            created_at: now,
            reply_to: None,
        })
    }
}

fn check_due(errors: &mut FieldErrors, field: &str, due_at: DateTime<Utc>, now: DateTime<Utc>) {
    if due_at < now - Duration::seconds(PAST_GRACE_SECS) {
        errors.add(field, "must not be in the past");
    } else if due_at > now + Duration::days(MAX_AHEAD_DAYS) {
        errors.add(
            field,
            format!("must be within {MAX_AHEAD_DAYS} days from now"),
        );
    }
}

/// A reminder as a client or a tool asks to create it (not yet validated).
#[derive(Debug, Clone)]
pub struct NewReminder {
    pub text: String,
    pub due_at: DateTime<Utc>,
    pub task_id: Option<Uuid>,
    pub event_id: Option<Uuid>,
    pub conversation_id: Option<Uuid>,
}

impl NewReminder {
    pub(crate) fn validate(self, id: Uuid, now: DateTime<Utc>) -> DomainResult<Reminder> {
        let mut errors = FieldErrors::new();
        let text = errors.check("text", required_text(&self.text, TEXT_MAX));
        check_due(&mut errors, "dueAt", self.due_at, now);
        if self.task_id.is_some() && self.event_id.is_some() {
            errors.add(
                "eventId",
                "a reminder belongs to a task or to an event, not both",
            );
        }
        errors.into_result()?;
        Ok(Reminder {
            id,
            kind: ReminderKind::Reminder,
            text: text.unwrap_or_default(),
            due_at: self.due_at,
            task_id: self.task_id,
            event_id: self.event_id,
            occurrence_at: None,
            alert_minutes: None,
            conversation_id: self.conversation_id,
            status: ReminderStatus::Scheduled,
            fired_at: None,
            fired_late: false,
            created_at: now,
            updated_at: now,
        })
    }
}

/// A change a client asks for: snooze (`due_at`), dismiss or cancel (`status`), or new text.
#[derive(Debug, Clone, Default)]
pub struct ReminderPatch {
    pub text: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub status: Option<ReminderStatus>,
}

impl ReminderPatch {
    pub fn snooze(until: DateTime<Utc>) -> Self {
        Self {
            due_at: Some(until),
            ..Self::default()
        }
    }

    pub fn status(status: ReminderStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    pub(crate) fn apply(
        self,
        mut reminder: Reminder,
        now: DateTime<Utc>,
    ) -> DomainResult<Reminder> {
        use ReminderStatus::*;
        let mut errors = FieldErrors::new();
        if let Some(text) = &self.text
            && let Some(text) = errors.check("text", required_text(text, TEXT_MAX))
        {
            reminder.text = text;
        }
        match (self.due_at, self.status) {
            (Some(_), Some(_)) => errors.add(
                "status",
                "snooze (dueAt) or change the status, not both at once",
            ),
            (Some(until), None) => {
                if until <= now {
                    errors.add("dueAt", "must be in the future to snooze");
                } else {
                    check_due(&mut errors, "dueAt", until, now);
                }
            }
            (None, Some(Scheduled | Fired)) => errors.add(
                "status",
                "only \"dismissed\" or \"cancelled\" can be set; snooze with dueAt",
            ),
            _ => {}
        }
        errors.into_result()?;
        let conflict = |what: &str| {
            Err(DomainError::Conflict(format!(
                "the reminder is {}: it cannot be {what}",
                reminder.status.as_str()
            )))
        };
        match (self.due_at, self.status) {
            (Some(until), _) => {
                if matches!(reminder.status, Dismissed | Cancelled) {
                    return conflict("snoozed; create a new one");
                }
                reminder.due_at = until;
                reminder.status = Scheduled;
                reminder.fired_late = false;
                // Snoozed, an event's alert becomes the user's own reminder of that occurrence:
                // changes to the event's alerts no longer replace it.
                reminder.alert_minutes = None;
            }
            (None, Some(Dismissed)) => match reminder.status {
                Scheduled | Fired => reminder.status = Dismissed,
                Dismissed => {}
                Cancelled => return conflict("dismissed"),
            },
            (None, Some(Cancelled)) => match reminder.status {
                Scheduled => reminder.status = Cancelled,
                Cancelled => {}
                Fired | Dismissed => return conflict("cancelled; dismiss it instead"),
            },
            _ => {}
        }
        reminder.updated_at = now;
        Ok(reminder)
    }
}

/// Filters of the reminder listing (by due time).
#[derive(Debug, Clone)]
pub struct ReminderQuery {
    pub status: Option<ReminderStatus>,
    /// Due at or after.
    pub from: Option<DateTime<Utc>>,
    /// Due before.
    pub to: Option<DateTime<Utc>>,
    pub page: PageRequest,
}

/// The reminders an event's alerts call for next: for each alert (or only `only`), the first
/// occurrence, in the user's zone, that starts after `after_occurrence` (if given) and whose
/// alert time is after `now`. One reminder per alert is kept waiting; the next is made when it
/// fires or leaves the queue, so a series never materialises more than its alerts.
pub fn alert_reminders(
    event: &super::event::Event,
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    only: Option<u32>,
    after_occurrence: Option<DateTime<Utc>>,
) -> Vec<Reminder> {
    let alerts: Vec<u32> = event
        .alerts
        .iter()
        .copied()
        .filter(|m| only.is_none_or(|only| only == *m))
        .collect();
    let mut due = Vec::new();
    for minutes in alerts {
        let before = Duration::minutes(i64::from(minutes));
        // Starts after both bounds.
        let from = (now + before).max(after_occurrence.unwrap_or(now + before));
        let Some(start) = event.next_start_after(tz, from) else {
            continue;
        };
        due.push(Reminder {
            id: Uuid::now_v7(),
            kind: ReminderKind::Reminder,
            text: event.title.clone(),
            due_at: start - before,
            task_id: None,
            event_id: Some(event.id),
            occurrence_at: Some(start),
            alert_minutes: Some(minutes),
            conversation_id: None,
            status: ReminderStatus::Scheduled,
            fired_at: None,
            fired_late: false,
            created_at: now,
            updated_at: now,
        });
    }
    due
}

/// Whether a change takes an alert's waiting reminder out of its series (fired, snoozed,
/// dismissed, cancelled or deleted), so that the next occurrence's is made.
pub fn leaves_alert_series(before: &Reminder, after: Option<&Reminder>) -> bool {
    before.status == ReminderStatus::Scheduled
        && before.alert_minutes.is_some()
        && after.is_none_or(|a| a.status != ReminderStatus::Scheduled || a.alert_minutes.is_none())
}

/// What a change to a task does to its reminders still to fire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskCascade {
    /// The task was completed or cancelled: its reminders go.
    pub cancel: bool,
    /// The task's due time moved: its reminders move with it.
    pub shift: Option<Duration>,
    /// The task was renamed: reminders that carried its old title carry the new one.
    pub retitle: Option<(String, String)>,
}

impl TaskCascade {
    pub fn of(before: &Task, after: &Task) -> Self {
        let open = |s: TaskStatus| matches!(s, TaskStatus::Pending | TaskStatus::InProgress);
        if open(before.status) && !open(after.status) {
            return Self {
                cancel: true,
                ..Self::default()
            };
        }
        Self {
            cancel: false,
            shift: match (before.due_at, after.due_at) {
                (Some(a), Some(b)) if a != b => Some(b - a),
                _ => None,
            },
            retitle: (before.title != after.title)
                .then(|| (before.title.clone(), after.title.clone())),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

// ----- the daily agenda ----------------------------------------------------------------------

/// The first instant after `after` that reads `at` on the wall clock of `tz`. On a day the
/// clocks skip `at` (spring forward), the first instant after the gap; on a day it comes twice
/// (fall back), the first of the two.
pub fn next_agenda(
    tz: chrono_tz::Tz,
    at: chrono::NaiveTime,
    after: DateTime<Utc>,
) -> DateTime<Utc> {
    let mut day = after.with_timezone(&tz).date_naive();
    for _ in 0..4 {
        if let Some(instant) = local_instant(tz, day.and_time(at))
            && instant > after
        {
            return instant;
        }
        day = day.succ_opt().unwrap_or(day);
    }
    after + Duration::days(1)
}

/// The instant a wall-clock time reads in `tz`: the first of two (fall back), or the first
/// after the gap when the clocks skip it (spring forward).
fn local_instant(tz: chrono_tz::Tz, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    use chrono::TimeZone as _;
    tz.from_local_datetime(&local)
        .earliest()
        // In a gap: an hour later is past it in every zone that has one.
        .or_else(|| {
            tz.from_local_datetime(&(local + Duration::hours(1)))
                .earliest()
        })
        .map(|i| i.with_timezone(&Utc))
}

/// A waiting agenda reminder, due at `due_at` (its text is written when it fires).
pub fn agenda_reminder(due_at: DateTime<Utc>, now: DateTime<Utc>) -> Reminder {
    Reminder {
        id: Uuid::now_v7(),
        kind: ReminderKind::Agenda,
        text: "Today's agenda".to_owned(),
        due_at,
        task_id: None,
        event_id: None,
        occurrence_at: None,
        alert_minutes: None,
        conversation_id: None,
        status: ReminderStatus::Scheduled,
        fired_at: None,
        fired_late: false,
        created_at: now,
        updated_at: now,
    }
}

/// The local day that holds `at`, as the instants it starts and ends at.
pub fn local_day(tz: chrono_tz::Tz, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = at.with_timezone(&tz).date_naive();
    let midnight = |d: chrono::NaiveDate| {
        let local = d.and_time(chrono::NaiveTime::MIN);
        local_instant(tz, local).unwrap_or(local.and_utc())
    };
    (midnight(day), midnight(day.succ_opt().unwrap_or(day)))
}

/// The agenda's text: the day's events (with their local start) and the tasks due that day, in
/// at most [`TEXT_MAX`] characters.
pub fn agenda_text(events: &[super::event::Event], tasks: &[Task], tz: chrono_tz::Tz) -> String {
    let mut parts = Vec::new();
    if !events.is_empty() {
        let list: Vec<String> = events
            .iter()
            .map(|e| {
                if e.is_all_day {
                    format!("{} (all day)", e.title)
                } else {
                    format!(
                        "{} {}",
                        e.start_at.with_timezone(&tz).format("%H:%M"),
                        e.title
                    )
                }
            })
            .collect();
        parts.push(format!("Today: {}.", list.join("; ")));
    }
    if !tasks.is_empty() {
        let list: Vec<&str> = tasks.iter().map(|t| t.title.as_str()).collect();
        parts.push(format!("Due today: {}.", list.join("; ")));
    }
    let text = if parts.is_empty() {
        "Nothing on the calendar today, and no tasks due.".to_owned()
    } else {
        parts.join(" ")
    };
    if text.chars().count() <= TEXT_MAX {
        return text;
    }
    let mut cut: String = text.chars().take(TEXT_MAX - 1).collect();
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn reminder() -> Reminder {
        NewReminder {
            text: " call mom ".into(),
            due_at: now() + Duration::hours(1),
            task_id: None,
            event_id: None,
            conversation_id: None,
        }
        .validate(Uuid::now_v7(), now())
        .unwrap()
    }

    #[test]
    fn new_reminder_is_trimmed_and_scheduled() {
        let r = reminder();
        assert_eq!(r.text, "call mom");
        assert_eq!(r.status, ReminderStatus::Scheduled);
    }

    #[test]
    fn past_far_future_and_double_links_are_refused() {
        let bad = NewReminder {
            text: "".into(),
            due_at: now() - Duration::minutes(5),
            task_id: Some(Uuid::now_v7()),
            event_id: Some(Uuid::now_v7()),
            conversation_id: None,
        }
        .validate(Uuid::now_v7(), now())
        .unwrap_err();
        let DomainError::Validation(fields) = bad else {
            panic!("expected a validation error");
        };
        for field in ["text", "dueAt", "eventId"] {
            assert!(fields.get(field).is_some(), "{field}");
        }
        let far = NewReminder {
            text: "x".into(),
            due_at: now() + Duration::days(MAX_AHEAD_DAYS + 1),
            task_id: None,
            event_id: None,
            conversation_id: None,
        }
        .validate(Uuid::now_v7(), now());
        assert!(far.is_err());
        // A client clock a few seconds late is fine.
        let skewed = NewReminder {
            text: "x".into(),
            due_at: now() - Duration::seconds(5),
            task_id: None,
            event_id: None,
            conversation_id: None,
        }
        .validate(Uuid::now_v7(), now());
        assert!(skewed.is_ok());
    }

    #[test]
    fn snooze_reschedules_a_fired_reminder() {
        let mut r = reminder();
        r.status = ReminderStatus::Fired;
        r.alert_minutes = Some(10);
        let later = now() + Duration::minutes(10);
        let r = ReminderPatch::snooze(later).apply(r, now()).unwrap();
        assert_eq!(r.status, ReminderStatus::Scheduled);
        assert_eq!(r.due_at, later);
        assert_eq!(r.alert_minutes, None);
        assert!(ReminderPatch::snooze(now()).apply(r, now()).is_err());
    }

    #[test]
    fn dismissed_cannot_be_snoozed_and_fired_cannot_be_cancelled() {
        let r = ReminderPatch::status(ReminderStatus::Dismissed)
            .apply(reminder(), now())
            .unwrap();
        assert_eq!(r.status, ReminderStatus::Dismissed);
        let err = ReminderPatch::snooze(now() + Duration::hours(1))
            .apply(r.clone(), now())
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)));
        let mut fired = reminder();
        fired.status = ReminderStatus::Fired;
        let err = ReminderPatch::status(ReminderStatus::Cancelled)
            .apply(fired, now())
            .unwrap_err();
        assert!(matches!(err, DomainError::Conflict(_)));
        let err = ReminderPatch::status(ReminderStatus::Fired)
            .apply(reminder(), now())
            .unwrap_err();
        assert!(matches!(err, DomainError::Validation(_)));
    }

    #[test]
    fn an_alert_waits_for_the_next_occurrence_only() {
        let start = now() + Duration::hours(1);
        let event = crate::domain::event::NewEvent {
            title: "Standup".into(),
            description: None,
            location: None,
            start_at: start,
            end_at: start + Duration::minutes(15),
            is_all_day: false,
            recurrence: Some("FREQ=DAILY".into()),
            alerts: vec![10],
        }
        .validate(Uuid::now_v7(), now())
        .unwrap();
        let due = alert_reminders(&event, chrono_tz::UTC, now(), None, None);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].due_at, start - Duration::minutes(10));
        assert_eq!(due[0].occurrence_at, Some(start));
        assert_eq!(due[0].alert_minutes, Some(10));
        // Once it has left the queue, the next occurrence's.
        let next = alert_reminders(&event, chrono_tz::UTC, now(), Some(10), Some(start));
        assert_eq!(next[0].occurrence_at, Some(start + Duration::days(1)));
        // Past today's alert time: tomorrow's occurrence.
        let late = alert_reminders(
            &event,
            chrono_tz::UTC,
            start - Duration::minutes(5),
            None,
            None,
        );
        assert_eq!(late[0].occurrence_at, Some(start + Duration::days(1)));
        // Snoozed, dismissed or fired, it leaves the series; renamed, it stays.
        let mut snoozed = due[0].clone();
        snoozed.alert_minutes = None;
        assert!(leaves_alert_series(&due[0], Some(&snoozed)));
        assert!(leaves_alert_series(&due[0], None));
        let mut renamed = due[0].clone();
        renamed.text = "Daily standup".into();
        assert!(!leaves_alert_series(&due[0], Some(&renamed)));
    }

    #[test]
    fn a_task_cascade_follows_the_change() {
        let task = crate::domain::task::NewTask {
            title: "Call mom".into(),
            due_at: Some(now()),
            ..Default::default()
        }
        .validate(Uuid::now_v7(), now())
        .unwrap();
        let mut moved = task.clone();
        moved.due_at = Some(now() + Duration::hours(2));
        moved.title = "Call mum".into();
        let cascade = TaskCascade::of(&task, &moved);
        assert_eq!(cascade.shift, Some(Duration::hours(2)));
        assert_eq!(
            cascade.retitle,
            Some(("Call mom".to_owned(), "Call mum".to_owned()))
        );
        let mut done = moved.clone();
        done.status = TaskStatus::Completed;
        assert!(TaskCascade::of(&moved, &done).cancel);
        assert!(TaskCascade::of(&done, &done).is_empty());
        assert!(TaskCascade::of(&task, &task).is_empty());
    }

    #[test]
    fn the_agenda_is_next_due_at_its_local_time_across_daylight_saving_changes() {
        let paris = chrono_tz::Europe::Paris;
        let at = |h, m| chrono::NaiveTime::from_hms_opt(h, m, 0).unwrap();
        let utc = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Winter: 07:30 in Paris is 06:30Z; once past, the next day's.
        assert_eq!(
            next_agenda(paris, at(7, 30), utc("2026-01-10T05:00:00Z")),
            utc("2026-01-10T06:30:00Z")
        );
        assert_eq!(
            next_agenda(paris, at(7, 30), utc("2026-01-10T06:30:00Z")),
            utc("2026-01-11T06:30:00Z")
        );
        // Spring forward (29 March 2026): 07:30 is 05:30Z from that day on.
        assert_eq!(
            next_agenda(paris, at(7, 30), utc("2026-03-28T07:00:00Z")),
            utc("2026-03-29T05:30:00Z")
        );
        // 02:30 does not exist that day: the first instant after the gap, 03:30 CEST.
        assert_eq!(
            next_agenda(paris, at(2, 30), utc("2026-03-28T12:00:00Z")),
            utc("2026-03-29T01:30:00Z")
        );
        // Fall back (25 October 2026): 02:30 comes twice; the first.
        assert_eq!(
            next_agenda(paris, at(2, 30), utc("2026-10-24T12:00:00Z")),
            utc("2026-10-25T00:30:00Z")
        );
        // The local day of an instant, in the zone: 25 hours on the fall-back day.
        let (from, to) = local_day(paris, utc("2026-10-25T12:00:00Z"));
        assert_eq!(
            (from, to),
            (utc("2026-10-24T22:00:00Z"), utc("2026-10-25T23:00:00Z"))
        );
    }

    #[test]
    fn the_agenda_lists_events_with_their_local_time_and_tasks_due_within_bounds() {
        let tz = chrono_tz::Europe::Paris;
        let empty = agenda_text(&[], &[], tz);
        assert_eq!(empty, "Nothing on the calendar today, and no tasks due.");
        let event = |title: &str, start: &str, all_day: bool| super::super::event::Event {
            id: Uuid::nil(),
            title: title.into(),
            description: None,
            location: None,
            start_at: DateTime::parse_from_rfc3339(start)
                .unwrap()
                .with_timezone(&Utc),
            end_at: DateTime::parse_from_rfc3339(start)
                .unwrap()
                .with_timezone(&Utc),
            is_all_day: all_day,
            recurrence: None,
            alerts: Vec::new(),
            created_at: now(),
            updated_at: now(),
            timezone: None,
            exdates: Vec::new(),
            occurrence_of: None,
        };
        let text = agenda_text(
            &[
                event("Standup", "2026-01-10T08:00:00Z", false),
                event("Holiday", "2026-01-10T00:00:00Z", true),
            ],
            &[],
            tz,
        );
        assert_eq!(text, "Today: 09:00 Standup; Holiday (all day).");
        let long: Vec<_> = (0..20)
            .map(|i| {
                event(
                    &format!("{i} {}", "x".repeat(60)),
                    "2026-01-10T08:00:00Z",
                    false,
                )
            })
            .collect();
        let cut = agenda_text(&long, &[], tz);
        assert_eq!(cut.chars().count(), TEXT_MAX);
        assert!(cut.ends_with('…'));
    }
}
