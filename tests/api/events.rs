use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

fn starts(reply: &crate::helpers::Reply) -> Vec<String> {
    reply.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["startAt"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn create_get_update_delete_an_event() {
    let app = spawn_app().await;
    let event = app
        .create_event(
            "alice",
            json!({"title": "Dentist", "startAt": "2026-12-01T09:00:00Z", "endAt": "2026-12-01T10:00:00Z", "location": "Main St"}),
        )
        .await;
    assert_eq!(event["isAllDay"], false);
    assert_eq!(event["recurrence"], Value::Null);
    assert!(event.get("occurrenceOf").is_none());
    let id = event["id"].as_str().unwrap();
    let path = format!("/v1/events/{id}");
    assert_eq!(app.get(&path, "alice").await.body, event);

    let moved = app
        .patch(&path, "alice", json!({"startAt": "2026-12-01T11:00:00Z", "endAt": "2026-12-01T12:00:00Z", "location": null}))
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    assert_eq!(moved.body["startAt"], "2026-12-01T11:00:00Z");
    assert_eq!(moved.body["location"], Value::Null);

    // The end must stay after the start, whichever field changes.
    let bad = app
        .patch(&path, "alice", json!({"endAt": "2026-12-01T10:00:00Z"}))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["error"]["details"]["endAt"].is_string());

    assert_eq!(app.get(&path, "bob").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.delete(&path, "bob").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, "alice").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn event_validation() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"title": "x", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T10:00:00Z"}),
            "endAt",
        ),
        (
            json!({"title": "x", "startAt": "2026-12-01T10:00:00Z"}),
            "endAt",
        ),
        (
            json!({"title": "", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z"}),
            "title",
        ),
        (
            json!({"title": "x", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z", "recurrence": "FREQ=NEVER"}),
            "recurrence",
        ),
        (
            json!({"title": "x", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z", "recurrence": "FREQ=WEEKLY;INTERVAL=0"}),
            "recurrence",
        ),
        (
            json!({"title": "x", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z", "isAllDay": "yes"}),
            "isAllDay",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/events", "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{body} → {}",
            reply.body
        );
    }
    for bad in [
        "from=2026-12-01T00:00:00Z",
        "to=2026-12-01T00:00:00Z",
        "from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z",
        "from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z",
        "from=yesterday&to=2026-12-01T00:00:00Z",
    ] {
        let reply = app.get(&format!("/v1/events?{bad}"), "alice").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "validation_failed");
    }
}

#[tokio::test]
async fn range_listing_expands_recurring_events() {
    let app = spawn_app().await;
    let weekly = app
        .create_event(
            "alice",
            json!({"title": "Standup", "startAt": "2026-11-02T09:00:00Z", "endAt": "2026-11-02T09:30:00Z", "recurrence": "RRULE:FREQ=WEEKLY;BYDAY=MO"}),
        )
        .await;
    assert_eq!(weekly["recurrence"], "FREQ=WEEKLY;BYDAY=MO");
    app.create_event(
        "alice",
        json!({"title": "Lunch", "startAt": "2026-11-17T12:00:00Z", "endAt": "2026-11-17T13:00:00Z"}),
    )
    .await;
    app.create_event(
        "alice",
        json!({"title": "Old", "startAt": "2026-10-01T12:00:00Z", "endAt": "2026-10-01T13:00:00Z"}),
    )
    .await;
    // Another user's series never shows.
    app.create_event(
        "bob",
        json!({"title": "Bob's", "startAt": "2026-11-02T08:00:00Z", "endAt": "2026-11-02T09:00:00Z", "recurrence": "FREQ=DAILY"}),
    )
    .await;

    let reply = app
        .get(
            "/v1/events?from=2026-11-10T00:00:00Z&to=2026-12-01T00:00:00Z",
            "alice",
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        starts(&reply),
        [
            "2026-11-16T09:00:00Z",
            "2026-11-17T12:00:00Z",
            "2026-11-23T09:00:00Z",
            "2026-11-30T09:00:00Z"
        ]
    );
    let items = reply.body["items"].as_array().unwrap();
    assert_eq!(items[0]["occurrenceOf"], weekly["id"]);
    assert_eq!(items[0]["endAt"], "2026-11-16T09:30:00Z");
    assert!(items[1].get("occurrenceOf").is_none());

    // Pages of the expanded listing follow on from each other.
    let first = app
        .get(
            "/v1/events?from=2026-11-10T00:00:00Z&to=2026-12-01T00:00:00Z&limit=3",
            "alice",
        )
        .await;
    assert_eq!(starts(&first).len(), 3);
    let cursor = first.body["nextCursor"].as_str().expect("a next page");
    let second = app
        .get(
            &format!("/v1/events?from=2026-11-10T00:00:00Z&to=2026-12-01T00:00:00Z&limit=3&cursor={cursor}"),
            "alice",
        )
        .await;
    assert_eq!(starts(&second), ["2026-11-30T09:00:00Z"]);
    assert_eq!(second.body["nextCursor"], Value::Null);

    // Without a range, each event is listed once, a series as itself, by start.
    let all = app.get("/v1/events", "alice").await;
    assert_eq!(
        starts(&all),
        [
            "2026-10-01T12:00:00Z",
            "2026-11-02T09:00:00Z",
            "2026-11-17T12:00:00Z"
        ]
    );
}

#[tokio::test]
async fn an_occurrence_overlapping_the_range_start_is_listed() {
    let app = spawn_app().await;
    app.create_event(
        "alice",
        json!({"title": "Night shift", "startAt": "2026-11-01T22:00:00Z", "endAt": "2026-11-02T06:00:00Z", "recurrence": "FREQ=DAILY;COUNT=5"}),
    )
    .await;
    let reply = app
        .get(
            "/v1/events?from=2026-11-03T00:00:00Z&to=2026-11-03T12:00:00Z",
            "alice",
        )
        .await;
    assert_eq!(starts(&reply), ["2026-11-02T22:00:00Z"]);
    // COUNT ends the series.
    let reply = app
        .get(
            "/v1/events?from=2026-11-01T00:00:00Z&to=2026-12-01T00:00:00Z",
            "alice",
        )
        .await;
    assert_eq!(starts(&reply).len(), 5);
}

#[tokio::test]
async fn event_changes_are_published() {
    let app = spawn_app().await;
    let mut events = app.app_domain.bus().subscribe();
    let e = app
        .create_event("alice", json!({"title": "x", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z"}))
        .await;
    let path = format!("/v1/events/{}", e["id"].as_str().unwrap());
    app.patch(&path, "alice", json!({"title": "y"})).await;
    app.delete(&path, "alice").await;
    let mut names = Vec::new();
    while let Ok(event) = events.try_recv() {
        names.push(event.change.name());
    }
    assert_eq!(names, ["event:created", "event:updated", "event:deleted"]);
}
