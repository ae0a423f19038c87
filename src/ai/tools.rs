//! The assistant's tools as the model sees them: names, descriptions and JSON Schemas of the
//! arguments. The domain (`domain::tools`) validates and runs them; the schemas here tell the
//! model what the domain accepts.

use serde_json::{Value, json};

use super::llm::ToolSpec;

fn object(properties: Value, required: &[&str]) -> Value {
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn time(description: &str) -> Value {
    json!({
        "type": "string",
        "description": format!(
            "{description}. RFC 3339, e.g. 2026-05-03T17:00:00Z; without an offset it is read in the user's time zone"
        ),
    })
}

fn text(description: &str, max: usize) -> Value {
    json!({ "type": "string", "description": description, "maxLength": max })
}

fn nullable_text(description: &str, max: usize) -> Value {
    json!({ "type": ["string", "null"], "description": description, "maxLength": max })
}

fn priority() -> Value {
    json!({ "type": "string", "enum": ["low", "medium", "high", "urgent"] })
}

fn status() -> Value {
    json!({ "type": "string", "enum": ["pending", "in_progress", "completed", "cancelled"] })
}

fn item_ref(what: &str) -> Value {
    json!({
        "id": { "type": "string", "format": "uuid", "description": format!("The {what}'s id, when known") },
        "title": { "type": "string", "description": format!("Otherwise the {what}'s title, or enough of it to tell it apart") },
    })
}

fn alerts() -> Value {
    json!({
        "type": "array",
        "items": { "type": "integer", "minimum": 0, "maximum": 40_320 },
        "maxItems": 5,
        "description": "Minutes before each occurrence's start to remind the user at, e.g. [10]",
    })
}

fn reminder_ref() -> Value {
    json!({
        "id": { "type": "string", "format": "uuid", "description": "The reminder's id, when known" },
        "text": { "type": "string", "description": "Otherwise its text, or enough of it to tell it apart" },
    })
}

fn with(mut base: Value, extra: Value) -> Value {
    if let (Some(base), Some(extra)) = (base.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    base
}

/// Every tool of the contract (API.md, "Assistant tools").
pub fn all() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "create_task",
            description: "Add a task to the user's to-do list.",
            parameters: object(
                json!({
                    "title": text("What to do, short", 500),
                    "description": text("Details", 10_000),
                    "project": text("Project or list name", 100),
                    "priority": priority(),
                    "status": status(),
                    "due_at": time("When it is due"),
                }),
                &["title"],
            ),
        },
        ToolSpec {
            name: "update_task",
            description: "Change a task: rename it, reschedule it, change its status, priority, description or project. Null clears a field.",
            parameters: object(
                with(
                    item_ref("task"),
                    json!({
                        "new_title": text("The new title", 500),
                        "description": nullable_text("Details", 10_000),
                        "project": nullable_text("Project or list name", 100),
                        "status": status(),
                        "priority": { "type": ["string", "null"], "enum": ["low", "medium", "high", "urgent", null] },
                        "due_at": { "type": ["string", "null"], "description": "New due time (RFC 3339), or null to clear it" },
                    }),
                ),
                &[],
            ),
        },
        ToolSpec {
            name: "complete_task",
            description: "Mark a task as completed.",
            parameters: object(item_ref("task"), &[]),
        },
        ToolSpec {
            name: "delete_task",
            description: "Delete a task for good.",
            parameters: object(item_ref("task"), &[]),
        },
        ToolSpec {
            name: "list_tasks",
            description: "List the user's tasks, newest first, optionally filtered.",
            parameters: object(
                json!({
                    "status": status(),
                    "project": text("Only this project", 100),
                    "due_before": time("Only tasks due before this time"),
                    "due_after": time("Only tasks due after this time"),
                    "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 },
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "create_event",
            description: "Put an event on the user's calendar. Give end_at or duration_minutes (default 60 minutes).",
            parameters: object(
                json!({
                    "title": text("What the event is", 500),
                    "start_at": time("When it starts"),
                    "end_at": time("When it ends"),
                    "duration_minutes": { "type": "integer", "minimum": 1 },
                    "description": text("Details", 10_000),
                    "location": text("Where", 500),
                    "is_all_day": { "type": "boolean", "default": false },
                    "recurrence": { "type": "string", "description": "RFC 5545 RRULE without DTSTART for a repeating event, e.g. FREQ=WEEKLY;BYDAY=MO" },
                    "alerts": alerts(),
                }),
                &["title", "start_at"],
            ),
        },
        ToolSpec {
            name: "update_event",
            description: "Change a calendar event: rename, move, change its place, description or recurrence. Null clears a field.",
            parameters: object(
                with(
                    item_ref("event"),
                    json!({
                        "new_title": text("The new title", 500),
                        "start_at": time("New start"),
                        "end_at": time("New end"),
                        "is_all_day": { "type": "boolean" },
                        "description": nullable_text("Details", 10_000),
                        "location": nullable_text("Where", 500),
                        "recurrence": nullable_text("RFC 5545 RRULE, or null to stop repeating", 1_000),
                        "alerts": alerts(),
                    }),
                ),
                &[],
            ),
        },
        ToolSpec {
            name: "delete_event",
            description: "Remove an event (a repeating one with all its occurrences) from the calendar.",
            parameters: object(item_ref("event"), &[]),
        },
        ToolSpec {
            name: "list_events",
            description: "List calendar events (occurrences of repeating ones included) overlapping a time range, by start time. Defaults to the next 7 days.",
            parameters: object(
                json!({
                    "from": time("Start of the range"),
                    "to": time("End of the range"),
                    "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 },
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "remember",
            description: "Store a fact the user wants remembered, in their words.",
            parameters: object(json!({ "content": text("The fact", 4_000) }), &["content"]),
        },
        ToolSpec {
            name: "search_memory",
            description: "Search the user's memories, tasks, events and past messages by meaning.",
            parameters: object(
                json!({
                    "query": text("What to look for", 1_000),
                    "kinds": { "type": "array", "items": { "type": "string", "enum": ["task", "event", "memory", "message"] } },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 20, "default": 5 },
                }),
                &["query"],
            ),
        },
        ToolSpec {
            name: "create_reminder",
            description: "Remind the user at a time: it reaches every device of theirs and this conversation when due. Give due_at, or a task (due time) or event (start) and minutes_before.",
            parameters: object(
                json!({
                    "text": text("What to remind of, short; defaults to the task's or event's title", 500),
                    "due_at": time("When to remind"),
                    "task_id": { "type": "string", "format": "uuid", "description": "The task it is about, by id" },
                    "event_id": { "type": "string", "format": "uuid", "description": "The event it is about, by id" },
                    "task": { "type": "string", "description": "Or the task by title" },
                    "event": { "type": "string", "description": "Or the event by title" },
                    "minutes_before": { "type": "integer", "minimum": 0, "maximum": 40_320, "description": "Without due_at: this long before the task is due or the event starts" },
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "list_reminders",
            description: "List the user's reminders: those still to fire unless a status is given.",
            parameters: object(
                json!({
                    "status": { "type": "string", "enum": ["scheduled", "fired", "dismissed", "cancelled"] },
                    "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 },
                }),
                &[],
            ),
        },
        ToolSpec {
            name: "cancel_reminder",
            description: "Cancel a reminder still to fire (or dismiss one that fired), named by id or text.",
            parameters: object(reminder_ref(), &[]),
        },
        ToolSpec {
            name: "snooze_reminder",
            description: "Move a reminder later: named by id or text, or the one that fired last when neither is given.",
            parameters: object(
                with(
                    reminder_ref(),
                    json!({
                        "until": time("When to remind again"),
                        "minutes": { "type": "integer", "minimum": 1, "maximum": 40_320, "description": "Or this many minutes from now" },
                    }),
                ),
                &[],
            ),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_tool_has_an_object_schema() {
        let names: Vec<&str> = all().iter().map(|t| t.name).collect();
        assert_eq!(names, crate::domain::tools::TOOL_NAMES);
        for tool in all() {
            assert_eq!(tool.parameters["type"], "object", "{}", tool.name);
            assert_eq!(
                tool.parameters["additionalProperties"], false,
                "{}",
                tool.name
            );
            let properties = tool.parameters["properties"].as_object().unwrap();
            for required in tool.parameters["required"].as_array().unwrap() {
                assert!(
                    properties.contains_key(required.as_str().unwrap()),
                    "{}",
                    tool.name
                );
            }
        }
    }
}
