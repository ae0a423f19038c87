//! The final answer of a turn, written from the tool results and the calls that produced them.
//! Results are read leniently: the entity may be the result itself or sit under `task`,
//! `event` or `memory`; lists may be a bare array or sit under `items`; field names may be
//! camelCase (as the REST API) or snake_case. What a result lacks is taken from the call's
//! arguments. Times are shown in the user's zone.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime};
use serde_json::Value;

use super::Now;
use crate::ai::llm::{LlmToolCall, ToolResult};

/// At most this many entries of a list are written out.
const SHOWN: usize = 15;

/// One paragraph per result, in order. `asked` is the user's message the calls answer.
pub fn answer(
    calls: &[LlmToolCall],
    results: &[ToolResult],
    asked: Option<&str>,
    now: &Now,
) -> String {
    let paragraphs: Vec<String> = results
        .iter()
        .enumerate()
        .map(|(n, result)| {
            let call = calls
                .iter()
                .find(|c| c.id == result.call_id)
                .or_else(|| calls.get(n));
            let name = call.map_or("", |c| c.name.as_str());
            let args = call
                .and_then(|c| serde_json::from_str(&c.arguments).ok())
                .unwrap_or(Value::Null);
            let content = serde_json::from_str(&result.content)
                .unwrap_or_else(|_| Value::String(result.content.clone()));
            if result.is_error {
                failure(name, &args, &content)
            } else if name == "search_memory" {
                found(&content, asked.unwrap_or_default(), now)
            } else {
                success(name, &args, &content, now)
            }
        })
        .collect();
    if paragraphs.is_empty() {
        "Done.".into()
    } else {
        paragraphs.join("\n\n")
    }
}

fn success(tool: &str, args: &Value, content: &Value, now: &Now) -> String {
    let item = subject(content);
    let title = text(item, &["title"])
        .or_else(|| text(args, &["title"]))
        .unwrap_or("it");
    match tool {
        "create_task" => {
            let due =
                time(item, &["dueAt", "due_at"], now).or_else(|| time(args, &["due_at"], now));
            let due = due
                .map(|at| format!(", due {}", moment(at, now)))
                .unwrap_or_default();
            let priority = text(item, &["priority"]).or_else(|| text(args, &["priority"]));
            let priority = priority
                .map(|p| format!(" ({p} priority)"))
                .unwrap_or_default();
            format!("Added “{title}”{due}{priority}.")
        }
        "list_tasks" => tasks(args, content, now),
        "complete_task" => format!("Done: “{title}” is completed."),
        "delete_task" => format!("Deleted “{title}”."),
        "update_task" => {
            match time(item, &["dueAt", "due_at"], now).or_else(|| time(args, &["due_at"], now)) {
                Some(due) if args.get("due_at").is_some() => {
                    format!("Moved “{title}” to {}.", moment(due, now))
                }
                _ => format!("Updated “{title}”."),
            }
        }
        "create_event" => {
            let fields = [item, args];
            let start = fields
                .iter()
                .find_map(|v| time(v, &["startAt", "start_at"], now));
            let end = fields
                .iter()
                .find_map(|v| time(v, &["endAt", "end_at"], now));
            let all_day = fields
                .iter()
                .find_map(|v| v.get("isAllDay").or_else(|| v.get("is_all_day"))?.as_bool())
                .unwrap_or(false);
            let mut sentence = format!("Scheduled “{title}”");
            if let Some(start) = start {
                sentence.push_str(&format!(" on {}", span(start, end, all_day, now)));
            }
            if let Some(place) = fields.iter().find_map(|v| text(v, &["location"])) {
                sentence.push_str(&format!(" at {place}"));
            }
            if let Some(rule) = fields.iter().find_map(|v| text(v, &["recurrence"])) {
                sentence.push_str(&format!(", repeating {}", repetition(rule)));
            }
            sentence + "."
        }
        "update_event" => format!("Updated “{title}”."),
        "list_events" => events(args, content, now),
        "delete_event" => format!("Deleted “{title}” from your calendar."),
        "remember" => "I'll remember that.".into(),
        "create_reminder" | "snooze_reminder" | "cancel_reminder" => {
            let what = text(item, &["text"]).unwrap_or("it");
            let due = time(item, &["dueAt"], now).map(|at| moment(at, now));
            match (tool, due) {
                ("cancel_reminder", _) => format!("Cancelled the reminder “{what}”."),
                ("snooze_reminder", Some(due)) => format!("Snoozed “{what}” until {due}."),
                (_, Some(due)) => format!("I'll remind you: “{what}”, {due}."),
                _ => format!("I'll remind you: “{what}”."),
            }
        }
        "list_reminders" => reminders(content, now),
        _ => "Done.".into(),
    }
}

/// What memory says: a question is answered with the best hit, quoted with when it was
/// said; "what do you know about …" (or a search) lists the hits.
fn found(content: &Value, asked: &str, now: &Now) -> String {
    let hits = items(content);
    let texts: Vec<&str> = hits
        .iter()
        .filter_map(|m| text(m, &["text", "snippet", "content", "title"]))
        .collect();
    if texts.is_empty() {
        return "I don't know anything about that yet. Tell me with “remember that …”.".into();
    }
    let asked = asked.trim().to_lowercase();
    let listing = [
        "what do you know",
        "what did you know",
        "what do you remember",
        "what did i tell",
        "what did i say",
        "tell me about",
        "recall",
        "search",
        "look for",
        "look up",
        "find",
        "do you remember",
        "list",
        "show",
    ]
    .iter()
    .any(|lead| asked.starts_with(lead));
    if listing || hits.is_empty() {
        let lines: Vec<String> = texts.iter().take(5).map(|s| s.to_string()).collect();
        return bullets("Here is what I know about that:", &lines, texts.len());
    }
    quote(&hits[0], now)
}

/// One recalled document as the answer: "You told me on 1 Dec: …".
fn quote(hit: &Value, now: &Now) -> String {
    let said = text(hit, &["text", "snippet", "content", "title"]).unwrap_or_default();
    let said = said.replace('\n', " — ");
    let stop = if said.ends_with(['.', '!', '?', '…']) {
        ""
    } else {
        "."
    };
    let when = time(hit, &["created_at", "createdAt"], now)
        .map(|at| told_on(at.date(), now))
        .unwrap_or_default();
    match text(hit, &["kind"]).unwrap_or("memory") {
        "task" => format!("You have a task for that: {said}{stop}"),
        "event" => format!("It's on your calendar: {said}{stop}"),
        "message" => format!("You said {when}: “{said}”").replace("  ", " "),
        _ => format!("You told me {when}: {said}{stop}").replace("  ", " "),
    }
    .replace(" :", ":")
}

/// "today", "yesterday", or "on 1 Dec" (with the year when it is not this year's).
fn told_on(date: NaiveDate, now: &Now) -> String {
    let today = now.local.date();
    if date == today {
        "today".into()
    } else if date.succ_opt() == Some(today) {
        "yesterday".into()
    } else if date.year() == now.local.year() {
        date.format("on %-d %b").to_string()
    } else {
        date.format("on %-d %b %Y").to_string()
    }
}

/// What went wrong, in plain words: the error's own message after what was being done.
fn failure(tool: &str, args: &Value, content: &Value) -> String {
    let title = text(args, &["title"]).unwrap_or("it");
    let action = match tool {
        "create_task" => format!("add “{title}”"),
        "list_tasks" => "list your tasks".into(),
        "complete_task" => format!("complete “{title}”"),
        "delete_task" | "delete_event" => format!("delete “{title}”"),
        "update_task" | "update_event" => format!("update “{title}”"),
        "create_event" => format!("schedule “{title}”"),
        "list_events" => "read your calendar".into(),
        "remember" => "save that".into(),
        "search_memory" => "search your notes".into(),
        "create_reminder" => "set that reminder".into(),
        "list_reminders" => "list your reminders".into(),
        "cancel_reminder" => "cancel that reminder".into(),
        "snooze_reminder" => "snooze that reminder".into(),
        _ => "do that".into(),
    };
    let message = match content {
        Value::String(s) => s.trim().to_string(),
        other => text(other, &["message", "error"])
            .or_else(|| other.get("error").and_then(|e| text(e, &["message"])))
            .map_or_else(|| other.to_string(), str::to_string),
    };
    let message = if message.is_empty() {
        "something went wrong".into()
    } else {
        message
    };
    let end = if message.ends_with(['.', '!', '?']) {
        ""
    } else {
        "."
    };
    format!("Sorry, I couldn't {action}: {message}{end}")
}

fn tasks(args: &Value, content: &Value, now: &Now) -> String {
    let kind = match text(args, &["status"]) {
        Some("pending") => "open tasks",
        Some("completed") => "completed tasks",
        Some("in_progress") => "tasks in progress",
        Some("cancelled") => "cancelled tasks",
        _ => "tasks",
    };
    let due = time(args, &["due_before"], now).map(|to| match to.time() {
        NaiveTime::MIN => format!(" due by {}", day(to.date() - Days::new(1), now)),
        _ => format!(" due before {}", moment(to, now)),
    });
    let due = due.unwrap_or_default();
    let list = items(content);
    if list.is_empty() {
        return format!("You have no {kind}{due}.");
    }
    let lines: Vec<String> = list
        .iter()
        .take(SHOWN)
        .map(|task| {
            let title = text(task, &["title"]).unwrap_or("(untitled)");
            match time(task, &["dueAt", "due_at"], now) {
                Some(at) => format!("{title} (due {})", moment(at, now)),
                None => title.to_string(),
            }
        })
        .collect();
    let count = if list.len() == 1 {
        kind.replacen("tasks", "task", 1)
    } else {
        kind.to_string()
    };
    bullets(
        &format!("You have {} {count}{due}:", list.len()),
        &lines,
        list.len(),
    )
}

fn reminders(content: &Value, now: &Now) -> String {
    let list = items(content);
    if list.is_empty() {
        return "You have no reminders set.".into();
    }
    let lines: Vec<String> = list
        .iter()
        .take(SHOWN)
        .map(|r| {
            let what = text(r, &["text"]).unwrap_or("(reminder)");
            match time(r, &["dueAt"], now) {
                Some(at) => format!("{what} ({})", moment(at, now)),
                None => what.to_string(),
            }
        })
        .collect();
    let noun = if list.len() == 1 {
        "reminder"
    } else {
        "reminders"
    };
    bullets(
        &format!("You have {} {noun}:", list.len()),
        &lines,
        list.len(),
    )
}

fn events(args: &Value, content: &Value, now: &Now) -> String {
    let from = time(args, &["from"], now);
    let to = time(args, &["to"], now);
    let (label, one_day) = match (from, to) {
        (Some(from), Some(to)) => {
            let last = if to.time() == NaiveTime::MIN {
                to.date() - Days::new(1)
            } else {
                to.date()
            };
            if from.date() >= last {
                (on_day(last, now), true)
            } else {
                (
                    format!("from {} to {}", day(from.date(), now), day(last, now)),
                    false,
                )
            }
        }
        _ => ("coming up".to_string(), false),
    };
    let list = items(content);
    if list.is_empty() {
        return format!("Nothing on your calendar {label}.");
    }
    let lines: Vec<String> = list
        .iter()
        .take(SHOWN)
        .map(|event| {
            let title = text(event, &["title"]).unwrap_or("(untitled)");
            let start = time(event, &["startAt", "start_at"], now);
            let end = time(event, &["endAt", "end_at"], now);
            let all_day = event
                .get("isAllDay")
                .or_else(|| event.get("is_all_day"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let when = match start {
                Some(_) if one_day && all_day => "all day".to_string(),
                Some(start) if one_day => hours(start, end),
                Some(start) => span(start, end, all_day, now),
                None => String::new(),
            };
            let place = text(event, &["location"])
                .map(|p| format!(" (at {p})"))
                .unwrap_or_default();
            format!("{when} {title}{place}").trim().to_string()
        })
        .collect();
    bullets(
        &format!("Here is your calendar {label}:"),
        &lines,
        list.len(),
    )
}

fn bullets(head: &str, lines: &[String], total: usize) -> String {
    let mut out = head.to_string();
    for line in lines {
        out.push_str("\n- ");
        out.push_str(line);
    }
    if total > lines.len() {
        out.push_str(&format!("\n- …and {} more", total - lines.len()));
    }
    out
}

/// "Fri 27 Nov, 15:00–16:00", "Fri 27 Nov (all day)", "Fri 27 Nov 23:00 – Sat 28 Nov 01:00".
fn span(start: NaiveDateTime, end: Option<NaiveDateTime>, all_day: bool, now: &Now) -> String {
    match end {
        _ if all_day => format!("{} (all day)", day(start.date(), now)),
        Some(end)
            if end.date() != start.date()
                && !(end.time() == NaiveTime::MIN && end.date() == start.date() + Days::new(1)) =>
        {
            format!(
                "{} {} – {} {}",
                day(start.date(), now),
                start.format("%H:%M"),
                day(end.date(), now),
                end.format("%H:%M")
            )
        }
        _ => format!("{}, {}", day(start.date(), now), hours(start, end)),
    }
}

fn hours(start: NaiveDateTime, end: Option<NaiveDateTime>) -> String {
    match end {
        Some(end) => format!("{}–{}", start.format("%H:%M"), end.format("%H:%M")),
        None => start.format("%H:%M").to_string(),
    }
}

/// "weekly on Monday", "daily", "every 2 weeks".
fn repetition(rule: &str) -> String {
    let part = |key: &str| {
        rule.split(';')
            .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
    };
    let interval: u32 = part("INTERVAL").and_then(|n| n.parse().ok()).unwrap_or(1);
    let (every, unit) = match part("FREQ") {
        Some("DAILY") => ("daily", "days"),
        Some("WEEKLY") => ("weekly", "weeks"),
        Some("MONTHLY") => ("monthly", "months"),
        Some("YEARLY") => ("yearly", "years"),
        _ => return format!("({rule})"),
    };
    let mut out = if interval > 1 {
        format!("every {interval} {unit}")
    } else {
        every.to_string()
    };
    if let Some(days) = part("BYDAY") {
        const NAMES: [(&str, &str); 7] = [
            ("MO", "Monday"),
            ("TU", "Tuesday"),
            ("WE", "Wednesday"),
            ("TH", "Thursday"),
            ("FR", "Friday"),
            ("SA", "Saturday"),
            ("SU", "Sunday"),
        ];
        let names: Vec<&str> = days
            .split(',')
            .filter_map(|d| {
                NAMES
                    .iter()
                    .find(|(code, _)| *code == d)
                    .map(|(_, name)| *name)
            })
            .collect();
        if !names.is_empty() {
            out.push_str(&format!(" on {}", names.join(", ")));
        }
    }
    out
}

/// "today", "tomorrow", or "on Fri 27 Nov".
fn on_day(date: NaiveDate, now: &Now) -> String {
    let today = now.local.date();
    if date == today {
        format!("today ({})", day(date, now))
    } else if today.succ_opt() == Some(date) {
        format!("tomorrow ({})", day(date, now))
    } else {
        format!("on {}", day(date, now))
    }
}

/// "Fri 27 Nov", with the year when it is not this year's.
fn day(date: NaiveDate, now: &Now) -> String {
    if date.year() == now.local.year() {
        date.format("%a %-d %b").to_string()
    } else {
        date.format("%a %-d %b %Y").to_string()
    }
}

/// "Fri 27 Nov at 17:00".
fn moment(at: NaiveDateTime, now: &Now) -> String {
    format!("{} at {}", day(at.date(), now), at.format("%H:%M"))
}

/// The entity a result is about: the result itself, or the object under `task`, `event`, ….
fn subject(content: &Value) -> &Value {
    ["task", "event", "reminder", "memory", "deleted", "item"]
        .iter()
        .find_map(|k| content.get(k).filter(|v| v.is_object()))
        .unwrap_or(content)
}

/// The entries of a list result: a bare array or the array under `items` (or a named key).
fn items(content: &Value) -> &[Value] {
    match content {
        Value::Array(list) => list,
        _ => [
            "items",
            "tasks",
            "events",
            "reminders",
            "memories",
            "results",
            "matches",
        ]
        .iter()
        .find_map(|k| content.get(k)?.as_array())
        .map_or(&[], Vec::as_slice),
    }
}

/// The first non-blank string among `keys`.
fn text<'a>(value: &'a Value, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| value.get(k)?.as_str())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// An RFC 3339 time among `keys`, as local wall time in the user's zone.
fn time(value: &Value, keys: &[&str], now: &Now) -> Option<NaiveDateTime> {
    let at = DateTime::parse_from_rfc3339(text(value, keys)?).ok()?;
    Some(at.with_timezone(&now.tz).naive_local())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use chrono_tz::{Europe::Berlin, Tz, UTC};
    use serde_json::json;

    use super::*;

    /// Thursday 2026-11-26 10:00 UTC.
    fn now(tz: Tz) -> Now {
        Now {
            tz,
            local: Utc
                .with_ymd_and_hms(2026, 11, 26, 10, 0, 0)
                .unwrap()
                .with_timezone(&tz)
                .naive_local(),
        }
    }

    /// The answer to one call of `tool` with `args` that produced `content`.
    fn answer_one(tz: Tz, tool: &str, args: Value, content: Value, is_error: bool) -> String {
        let call = LlmToolCall {
            id: "call_1_1".into(),
            name: tool.into(),
            arguments: args.to_string(),
        };
        let result = ToolResult {
            call_id: "call_1_1".into(),
            content: content.to_string(),
            is_error,
        };
        answer(&[call], &[result], None, &now(tz))
    }

    fn ok(tz: Tz, tool: &str, args: Value, content: Value) -> String {
        answer_one(tz, tool, args, content, false)
    }

    #[test]
    fn tasks_are_confirmed_in_the_users_zone() {
        let task = json!({"task": {"id": "0193", "title": "Buy milk", "dueAt": "2026-11-27T16:00:00Z", "priority": null, "status": "pending"}});
        assert_eq!(
            ok(
                Berlin,
                "create_task",
                json!({"title": "Buy milk", "due_at": "2026-11-27T17:00:00+01:00"}),
                task
            ),
            "Added “Buy milk”, due Fri 27 Nov at 17:00."
        );
        let urgent =
            json!({"task": {"title": "Call the bank", "dueAt": null, "priority": "urgent"}});
        assert_eq!(
            ok(
                UTC,
                "create_task",
                json!({"title": "Call the bank"}),
                urgent
            ),
            "Added “Call the bank” (urgent priority)."
        );
        let done = json!({"task": {"title": "Call mom", "status": "completed"}});
        assert_eq!(
            ok(UTC, "complete_task", json!({"title": "call mom"}), done),
            "Done: “Call mom” is completed."
        );
        let deleted = json!({"deleted": {"id": "0193", "title": "Buy milk"}});
        assert_eq!(
            ok(UTC, "delete_task", json!({"title": "buy milk"}), deleted),
            "Deleted “Buy milk”."
        );
        let moved = json!({"task": {"title": "Buy milk", "dueAt": "2026-11-27T09:00:00Z"}});
        assert_eq!(
            ok(
                UTC,
                "update_task",
                json!({"title": "buy milk", "due_at": "2026-11-27T09:00:00Z"}),
                moved
            ),
            "Moved “Buy milk” to Fri 27 Nov at 09:00."
        );
    }

    #[test]
    fn task_lists_are_counted_and_listed() {
        let tasks = json!({"count": 3, "tasks": [
            {"title": "Buy milk", "dueAt": "2026-11-27T08:00:00Z"},
            {"title": "Call mom", "dueAt": null},
            {"title": "File taxes", "dueAt": "2027-01-04T09:00:00Z"},
        ]});
        assert_eq!(
            ok(Berlin, "list_tasks", json!({"status": "pending"}), tasks),
            "You have 3 open tasks:\n- Buy milk (due Fri 27 Nov at 09:00)\n- Call mom\n- File taxes (due Mon 4 Jan 2027 at 10:00)"
        );
        let one = json!({"count": 1, "tasks": [{"title": "Report", "status": "completed"}]});
        assert_eq!(
            ok(UTC, "list_tasks", json!({"status": "completed"}), one),
            "You have 1 completed task:\n- Report"
        );
        let none = json!({"count": 0, "tasks": []});
        assert_eq!(
            ok(
                UTC,
                "list_tasks",
                json!({"status": "pending", "due_before": "2026-11-27T00:00:00Z"}),
                none
            ),
            "You have no open tasks due by Thu 26 Nov."
        );
        let many: Vec<Value> = (1..=20)
            .map(|n| json!({"title": format!("Task {n}")}))
            .collect();
        let long = ok(
            UTC,
            "list_tasks",
            json!({}),
            json!({"count": 20, "tasks": many}),
        );
        assert!(long.starts_with("You have 20 tasks:\n- Task 1\n"), "{long}");
        assert!(long.ends_with("- Task 15\n- …and 5 more"), "{long}");
    }

    #[test]
    fn events_are_confirmed_with_their_time_place_and_rule() {
        let meeting = json!({"event": {"title": "Meeting with Sam", "startAt": "2026-11-27T14:00:00Z", "endAt": "2026-11-27T15:00:00Z", "isAllDay": false, "location": null, "recurrence": null}});
        assert_eq!(
            ok(
                Berlin,
                "create_event",
                json!({"title": "Meeting with Sam"}),
                meeting
            ),
            "Scheduled “Meeting with Sam” on Fri 27 Nov, 15:00–16:00."
        );
        let standup = json!({"event": {"title": "Team standup", "startAt": "2026-11-30T09:00:00Z", "endAt": "2026-11-30T10:00:00Z", "isAllDay": false, "location": "the office", "recurrence": "FREQ=WEEKLY;BYDAY=MO"}});
        assert_eq!(
            ok(
                UTC,
                "create_event",
                json!({"title": "Team standup"}),
                standup
            ),
            "Scheduled “Team standup” on Mon 30 Nov, 09:00–10:00 at the office, repeating weekly on Monday."
        );
        let dentist = json!({"event": {"title": "Dentist", "startAt": "2026-11-27T00:00:00Z", "endAt": "2026-11-28T00:00:00Z", "isAllDay": true}});
        assert_eq!(
            ok(UTC, "create_event", json!({}), dentist),
            "Scheduled “Dentist” on Fri 27 Nov (all day)."
        );
        let late = json!({"event": {"title": "Party", "startAt": "2026-11-27T23:00:00Z", "endAt": "2026-11-28T01:00:00Z"}});
        assert_eq!(
            ok(UTC, "create_event", json!({}), late),
            "Scheduled “Party” on Fri 27 Nov 23:00 – Sat 28 Nov 01:00."
        );
        let gone = json!({"deleted": {"id": "x", "title": "Meeting with Sam"}});
        assert_eq!(
            ok(
                UTC,
                "delete_event",
                json!({"title": "meeting with sam"}),
                gone
            ),
            "Deleted “Meeting with Sam” from your calendar."
        );
        assert_eq!(repetition("FREQ=WEEKLY;INTERVAL=2"), "every 2 weeks");
        assert_eq!(repetition("FREQ=DAILY"), "daily");
    }

    #[test]
    fn the_calendar_is_read_back_for_a_day_or_a_range() {
        let day = json!({"from": "2026-11-27T00:00:00+01:00", "to": "2026-11-28T00:00:00+01:00"});
        let empty = json!({"count": 0, "events": []});
        assert_eq!(
            ok(Berlin, "list_events", day.clone(), empty.clone()),
            "Nothing on your calendar tomorrow (Fri 27 Nov)."
        );
        let friday = json!({"from": "2026-12-04T00:00:00Z", "to": "2026-12-05T00:00:00Z"});
        assert_eq!(
            ok(UTC, "list_events", friday, empty),
            "Nothing on your calendar on Fri 4 Dec."
        );
        let events = json!({"count": 2, "events": [
            {"title": "Meeting with Sam", "startAt": "2026-11-27T14:00:00Z", "endAt": "2026-11-27T15:00:00Z", "isAllDay": false, "location": "Office"},
            {"title": "Holiday", "startAt": "2026-11-26T23:00:00Z", "endAt": "2026-11-27T23:00:00Z", "isAllDay": true},
        ]});
        assert_eq!(
            ok(Berlin, "list_events", day, events.clone()),
            "Here is your calendar tomorrow (Fri 27 Nov):\n- 15:00–16:00 Meeting with Sam (at Office)\n- all day Holiday"
        );
        let week = json!({"from": "2026-11-26T10:00:00Z", "to": "2026-12-03T10:00:00Z"});
        assert_eq!(
            ok(Berlin, "list_events", week, events),
            "Here is your calendar from Thu 26 Nov to Thu 3 Dec:\n- Fri 27 Nov, 15:00–16:00 Meeting with Sam (at Office)\n- Fri 27 Nov (all day) Holiday"
        );
    }

    #[test]
    fn memories_are_acknowledged_and_found() {
        assert_eq!(
            ok(
                UTC,
                "remember",
                json!({"content": "Sam likes green tea"}),
                json!({"memory": {"content": "Sam likes green tea"}})
            ),
            "I'll remember that."
        );
        let found = json!({"count": 2, "results": [
            {"kind": "memory", "id": "a", "score": 0.8, "text": "my sister's birthday is 3 May",
             "created_at": "2026-11-20T09:00:00Z"},
            {"kind": "task", "id": "b", "score": 0.4, "text": "Buy a gift for my sister"},
        ]});
        let recall = |asked: &str| {
            let call = LlmToolCall {
                id: "c".into(),
                name: "search_memory".into(),
                arguments: json!({"query": "my sister"}).to_string(),
            };
            let result = ToolResult {
                call_id: "c".into(),
                content: found.to_string(),
                is_error: false,
            };
            answer(&[call], &[result], Some(asked), &now(UTC))
        };
        // A question gets the best answer, with when it was said.
        assert_eq!(
            recall("when is my sister's birthday?"),
            "You told me on 20 Nov: my sister's birthday is 3 May."
        );
        // "What do you know about …" lists.
        assert_eq!(
            recall("what do you know about my sister"),
            "Here is what I know about that:\n- my sister's birthday is 3 May\n- Buy a gift for my sister"
        );
        let nothing = ok(
            UTC,
            "search_memory",
            json!({"query": "x"}),
            json!({"count": 0, "results": []}),
        );
        assert!(
            nothing.starts_with("I don't know anything about that yet."),
            "{nothing}"
        );
    }

    #[test]
    fn errors_are_told_in_plain_words() {
        let error = json!({"error": "no task matches \"buy milk\""});
        assert_eq!(
            answer_one(
                UTC,
                "complete_task",
                json!({"title": "buy milk"}),
                error,
                true
            ),
            "Sorry, I couldn't complete “buy milk”: no task matches \"buy milk\"."
        );
        let plain = json!("the calendar is unavailable.");
        assert_eq!(
            answer_one(UTC, "list_events", json!({}), plain, true),
            "Sorry, I couldn't read your calendar: the calendar is unavailable."
        );
        let nested = json!({"error": {"message": "title: too long"}});
        assert_eq!(
            answer_one(UTC, "create_task", json!({"title": "x"}), nested, true),
            "Sorry, I couldn't add “x”: title: too long."
        );
        // Not JSON at all: the text is the message.
        let call = LlmToolCall {
            id: "c".into(),
            name: "remember".into(),
            arguments: "{}".into(),
        };
        let result = ToolResult {
            call_id: "c".into(),
            content: "boom".into(),
            is_error: true,
        };
        assert_eq!(
            answer(&[call], &[result], None, &now(UTC)),
            "Sorry, I couldn't save that: boom."
        );
    }

    #[test]
    fn results_are_matched_to_their_calls_by_id() {
        let calls = [
            LlmToolCall {
                id: "a".into(),
                name: "remember".into(),
                arguments: "{}".into(),
            },
            LlmToolCall {
                id: "b".into(),
                name: "delete_task".into(),
                arguments: json!({"title": "milk"}).to_string(),
            },
        ];
        let results = [
            ToolResult {
                call_id: "b".into(),
                content: json!({"error": "no task matches \"milk\""}).to_string(),
                is_error: true,
            },
            ToolResult {
                call_id: "a".into(),
                content: "{}".into(),
                is_error: false,
            },
        ];
        assert_eq!(
            answer(&calls, &results, None, &now(UTC)),
            "Sorry, I couldn't delete “milk”: no task matches \"milk\".\n\nI'll remember that."
        );
        // Odd results never panic and still say something.
        for content in [
            "",
            "null",
            "[]",
            "{}",
            "42",
            "\"\"",
            "{\"tasks\": 5}",
            "{\"event\": {\"startAt\": \"yesterday\"}}",
        ] {
            for tool in [
                "create_task",
                "list_tasks",
                "create_event",
                "list_events",
                "search_memory",
                "nope",
                "",
            ] {
                for is_error in [false, true] {
                    let call = LlmToolCall {
                        id: "c".into(),
                        name: tool.into(),
                        arguments: "not json".into(),
                    };
                    let result = ToolResult {
                        call_id: "c".into(),
                        content: content.into(),
                        is_error,
                    };
                    assert!(!answer(&[call], &[result], None, &now(UTC)).is_empty());
                }
            }
        }
    }
}
