//! Reminders through the public interfaces: REST, the sockets that hear them fire, and what
//! task and event edits do to them; the scheduler with several instances and after downtime.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::sio::Client;

fn at(offset: chrono::Duration) -> String {
    iso(Utc::now() + offset)
}

/// To the millisecond, as clients send times.
fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .unwrap_or_else(|| panic!("not a time: {value}"))
        .with_timezone(&Utc)
}

async fn create(app: &TestApp, user: &str, body: Value) -> Value {
    let reply = app.post("/v1/reminders", user, body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    reply.body
}

async fn reminder(app: &TestApp, user: &str, id: &Value) -> Value {
    let reply = app
        .get(&format!("/v1/reminders/{}", id.as_str().unwrap()), user)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn reminders_are_created_listed_snoozed_dismissed_and_deleted_by_their_owner_only() {
    let app = spawn_app().await;
    let later = at(chrono::Duration::hours(2));
    let r = create(
        &app,
        "alice",
        json!({ "text": "  call mom ", "dueAt": later }),
    )
    .await;
    assert_eq!(r["text"], "call mom");
    assert_eq!(r["status"], "scheduled");
    assert_eq!(time(&r["dueAt"]), time(&json!(later)));
    for field in ["taskId", "eventId", "occurrenceAt", "firedAt"] {
        assert!(r[field].is_null(), "{field}: {r}");
    }
    let id = r["id"].as_str().unwrap().to_owned();
    let second = create(
        &app,
        "alice",
        json!({ "text": "water plants", "dueAt": at(chrono::Duration::hours(1)) }),
    )
    .await;

    // Listed by due time, filtered, paged.
    let list = app.get("/v1/reminders?limit=1", "alice").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"][0]["id"], second["id"]);
    let cursor = list.body["nextCursor"].as_str().unwrap().to_owned();
    let next = app
        .get(&format!("/v1/reminders?limit=1&cursor={cursor}"), "alice")
        .await;
    assert_eq!(next.body["items"][0]["id"], json!(id));
    assert!(next.body["nextCursor"].is_null());
    let window = app
        .get(
            &format!(
                "/v1/reminders?status=scheduled&from={}&to={}",
                urlencode(&at(chrono::Duration::minutes(90))),
                urlencode(&at(chrono::Duration::hours(3)))
            ),
            "alice",
        )
        .await;
    assert_eq!(window.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(window.body["items"][0]["id"], json!(id));

    // Another user sees nothing of it and changes nothing.
    let path = format!("/v1/reminders/{id}");
    assert_eq!(app.get(&path, "bob").await.status, StatusCode::NOT_FOUND);
    let snooze = json!({ "dueAt": at(chrono::Duration::hours(5)) });
    assert_eq!(
        app.patch(&path, "bob", snooze.clone()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&path, "bob").await.status, StatusCode::NOT_FOUND);
    let bobs = app.get("/v1/reminders", "bob").await;
    assert_eq!(bobs.body["items"], json!([]));

    // Snooze moves it, dismiss ends it; a dismissed reminder is not snoozed again.
    let snoozed = app.patch(&path, "alice", snooze.clone()).await;
    assert_eq!(snoozed.status, StatusCode::OK, "{}", snoozed.body);
    assert_eq!(time(&snoozed.body["dueAt"]), time(&snooze["dueAt"]));
    let dismissed = app
        .patch(&path, "alice", json!({ "status": "dismissed" }))
        .await;
    assert_eq!(dismissed.body["status"], "dismissed");
    let again = app.patch(&path, "alice", snooze).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(&path, "alice").await.status, StatusCode::NOT_FOUND);
}

/// `pixie_reminders_fired_total{outcome}` as the app's /metrics reads.
async fn assert_fired_metric(app: &TestApp, outcome: &str, count: u64) {
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = format!("pixie_reminders_fired_total{{outcome=\"{outcome}\"}} {count}");
    assert!(metrics.contains(&line), "{line} in {metrics}");
}

fn urlencode(text: &str) -> String {
    text.replace(':', "%3A").replace('+', "%2B")
}

#[tokio::test]
async fn bad_reminders_get_a_clear_error_naming_the_field() {
    let app = spawn_app().await;
    let task = app.create_task("bob", json!({ "title": "bob's" })).await;
    let soon = at(chrono::Duration::hours(1));
    let cases = [
        (json!({ "text": "", "dueAt": soon }), "text"),
        (json!({ "text": "x".repeat(501), "dueAt": soon }), "text"),
        (
            json!({ "text": "x", "dueAt": at(-chrono::Duration::hours(1)) }),
            "dueAt",
        ),
        (
            json!({ "text": "x", "dueAt": at(chrono::Duration::days(4000)) }),
            "dueAt",
        ),
        // Another user's task is no task at all.
        (
            json!({ "text": "x", "dueAt": soon, "taskId": task["id"] }),
            "taskId",
        ),
        (json!({ "text": "x" }), "dueAt"),
        (
            json!({ "text": "x", "dueAt": soon, "colour": "red" }),
            "colour",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/reminders", "alice", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "validation_failed");
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{body}: {}",
            reply.body
        );
    }
    let r = create(&app, "alice", json!({ "text": "x", "dueAt": soon })).await;
    let path = format!("/v1/reminders/{}", r["id"].as_str().unwrap());
    for (body, field) in [
        (json!({ "dueAt": null }), "dueAt"),
        (json!({ "status": "fired" }), "status"),
        (
            json!({ "dueAt": at(-chrono::Duration::minutes(1)) }),
            "dueAt",
        ),
        (
            json!({ "status": "dismissed", "dueAt": at(chrono::Duration::hours(2)) }),
            "status",
        ),
    ] {
        let reply = app.patch(&path, "alice", body.clone()).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{body}: {}",
            reply.body
        );
    }
    // Nothing of that was written.
    assert_eq!(reminder(&app, "alice", &r["id"]).await, r);
}

#[tokio::test]
async fn a_reminder_fires_on_time_to_every_socket_of_its_user_only() {
    let app = spawn_app().await;
    let mut phone = Client::connect(&app, "alice").await;
    let mut laptop = Client::connect(&app, "alice").await;
    let mut other = Client::connect(&app, "bob").await;
    let r = create(
        &app,
        "alice",
        json!({ "text": "stretch", "dueAt": at(chrono::Duration::milliseconds(1500)) }),
    )
    .await;
    for socket in [&mut phone, &mut laptop] {
        let due = socket.event("reminder:due").await;
        assert_eq!(due["reminder"]["id"], r["id"]);
        assert_eq!(due["reminder"]["status"], "fired");
        assert_eq!(due["reminder"]["firedLate"], false);
    }
    let fired = reminder(&app, "alice", &r["id"]).await;
    assert_eq!(fired["status"], "fired");
    // The scheduler slept until the due time, not until its next poll.
    let lateness = time(&fired["firedAt"]) - time(&fired["dueAt"]);
    assert!(
        lateness >= chrono::Duration::zero() && lateness < chrono::Duration::seconds(1),
        "fired {lateness} after its time"
    );
    assert!(
        other.drain(Duration::from_millis(300)).await.is_empty(),
        "another user heard of it"
    );
    // It fires once.
    let more = phone.drain(Duration::from_millis(500)).await;
    assert!(
        !more.iter().any(|(name, _)| name == "reminder:due"),
        "{more:?}"
    );
    assert_fired_metric(&app, "on_time", 1).await;
}

#[tokio::test]
async fn snooze_and_dismiss_on_one_device_reach_the_others_and_a_snoozed_reminder_fires_again() {
    let app = spawn_app().await;
    let mut phone = Client::connect(&app, "alice").await;
    let mut laptop = Client::connect(&app, "alice").await;
    let r = create(
        &app,
        "alice",
        json!({ "text": "tea", "dueAt": at(chrono::Duration::milliseconds(300)) }),
    )
    .await;
    phone.event("reminder:due").await;
    laptop.event("reminder:due").await;

    let until = at(chrono::Duration::milliseconds(1200));
    let ack = phone
        .emit("reminder:snooze", json!({ "id": r["id"], "until": until }))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert_eq!(ack["reminder"]["status"], "scheduled");
    let updated = laptop.event("reminder:updated").await;
    assert_eq!(updated["reminder"]["status"], "scheduled");
    assert_eq!(time(&updated["reminder"]["dueAt"]), time(&json!(until)));
    // The snoozed reminder fires again, on both.
    let again = laptop.event("reminder:due").await;
    assert_eq!(again["reminder"]["id"], r["id"]);
    let events = phone.events_until("reminder:due").await;
    assert!(
        !events.iter().any(|(name, _)| name == "reminder:updated"),
        "the asking socket got its own update: {events:?}"
    );

    let ack = laptop
        .emit("reminder:dismiss", json!({ "id": r["id"] }))
        .await;
    assert_eq!(ack["reminder"]["status"], "dismissed", "{ack}");
    let dismissed = phone.event("reminder:updated").await;
    assert_eq!(dismissed["reminder"]["status"], "dismissed");

    // Bad payloads and other users' reminders are refused in the ack.
    let ack = phone
        .emit("reminder:dismiss", json!({ "id": "nope" }))
        .await;
    assert_eq!(ack["error"]["code"], "validation_failed", "{ack}");
    let mut bob = Client::connect(&app, "bob").await;
    let ack = bob.emit("reminder:dismiss", json!({ "id": r["id"] })).await;
    assert_eq!(ack["error"]["code"], "not_found", "{ack}");
    let ack = bob
        .emit(
            "reminder:snooze",
            json!({ "id": r["id"], "until": "tomorrow" }),
        )
        .await;
    assert_eq!(ack["error"]["code"], "validation_failed", "{ack}");
}

#[tokio::test]
async fn task_edits_move_rename_and_cancel_its_reminders() {
    let app = spawn_app().await;
    let due = Utc::now() + chrono::Duration::days(1);
    let task = app
        .create_task("alice", json!({ "title": "Call mom", "dueAt": iso(due) }))
        .await;
    let task_path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let before = iso(due - chrono::Duration::minutes(30));
    let r = create(
        &app,
        "alice",
        json!({ "text": "Call mom", "dueAt": before, "taskId": task["id"] }),
    )
    .await;
    assert_eq!(r["taskId"], task["id"]);

    // Moved by two hours, renamed: the reminder follows.
    let moved = iso(due + chrono::Duration::hours(2));
    let reply = app
        .patch(
            &task_path,
            "alice",
            json!({ "dueAt": moved, "title": "Call mum" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let now = reminder(&app, "alice", &r["id"]).await;
    assert_eq!(
        time(&now["dueAt"]),
        time(&json!(before)) + chrono::Duration::hours(2)
    );
    assert_eq!(now["text"], "Call mum");

    // Completed: the reminder is cancelled.
    app.patch(&task_path, "alice", json!({ "status": "completed" }))
        .await;
    assert_eq!(
        reminder(&app, "alice", &r["id"]).await["status"],
        "cancelled"
    );

    // Deleted: cancelled, and the link goes with the task.
    let other = app.create_task("alice", json!({ "title": "Bins" })).await;
    let r2 = create(
        &app,
        "alice",
        json!({ "text": "Bins out", "dueAt": at(chrono::Duration::hours(3)), "taskId": other["id"] }),
    )
    .await;
    let reply = app
        .delete(
            &format!("/v1/tasks/{}", other["id"].as_str().unwrap()),
            "alice",
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let gone = reminder(&app, "alice", &r2["id"]).await;
    assert_eq!(gone["status"], "cancelled");
    assert!(gone["taskId"].is_null());
}

#[tokio::test]
async fn event_edits_move_and_deletion_cancels_its_reminders() {
    let app = spawn_app().await;
    let start = Utc::now() + chrono::Duration::days(2);
    let event = app
        .create_event(
            "alice",
            json!({
                "title": "Dentist",
                "startAt": iso(start),
                "endAt": iso(start + chrono::Duration::hours(1)),
            }),
        )
        .await;
    let event_path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    let before = iso(start - chrono::Duration::minutes(30));
    let r = create(
        &app,
        "alice",
        json!({ "text": "Dentist", "dueAt": before, "eventId": event["id"] }),
    )
    .await;
    let later = start + chrono::Duration::hours(3);
    let reply = app
        .patch(
            &event_path,
            "alice",
            json!({
                "startAt": iso(later),
                "endAt": iso(later + chrono::Duration::hours(1)),
            }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        time(&reminder(&app, "alice", &r["id"]).await["dueAt"]),
        time(&json!(before)) + chrono::Duration::hours(3)
    );
    assert_eq!(
        app.delete(&event_path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = reminder(&app, "alice", &r["id"]).await;
    assert_eq!(gone["status"], "cancelled");
    assert!(gone["eventId"].is_null());
}

/// Reminders written straight into the database, as if set before the server went down.
fn insert_due(app: &TestApp, user: &str, text: &str, due: DateTime<Utc>) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    app.execute(&format!(
        "INSERT INTO users (id) VALUES ('{user}') ON CONFLICT DO NOTHING"
    ));
    app.execute(&format!(
        "INSERT INTO reminders (id, user_id, text, due_at, created_at, updated_at)
         VALUES ('{id}', '{user}', '{text}', '{}', now(), now())",
        iso(due)
    ));
    id
}

#[tokio::test]
async fn after_downtime_recent_reminders_fire_and_older_ones_are_marked_late() {
    let app = spawn_app_with(|c| c.reminders.enabled = false, Default::default()).await;
    let recent = insert_due(
        &app,
        "alice",
        "recent",
        Utc::now() - chrono::Duration::minutes(10),
    );
    let old = insert_due(
        &app,
        "alice",
        "old",
        Utc::now() - chrono::Duration::hours(3),
    );
    // Nothing fires while no instance runs a scheduler.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.count("SELECT count(*) FROM reminders WHERE status = 'scheduled'"),
        2
    );
    let scheduler = app
        .spawn_peer(|c| c.reminders.max_lateness_secs = 3600)
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.count("SELECT count(*) FROM reminders WHERE status = 'scheduled'") > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the catch-up did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let recent = reminder(&scheduler, "alice", &json!(recent)).await;
    assert_eq!(recent["status"], "fired");
    assert_eq!(recent["firedLate"], false);
    let old = reminder(&scheduler, "alice", &json!(old)).await;
    assert_eq!(old["status"], "fired");
    assert_eq!(old["firedLate"], true);
    assert_fired_metric(&scheduler, "late", 1).await;
}

#[tokio::test]
async fn two_instances_fire_two_hundred_reminders_due_in_the_same_second_once_each() {
    let app = spawn_app_with(
        |c| {
            c.realtime.fanout = pixie::config::Fanout::Postgres;
            c.reminders.batch_size = 20;
            c.reminders.poll_ms = 200;
        },
        Default::default(),
    )
    .await;
    let peer = app
        .spawn_peer(|c| {
            c.realtime.fanout = pixie::config::Fanout::Postgres;
            c.reminders.batch_size = 20;
            c.reminders.poll_ms = 200;
        })
        .await;
    let mut socket = Client::connect(&app, "alice").await;
    let mut peer_socket = Client::connect(&peer, "alice").await;
    // 200 reminders due within one second, two seconds from now, written in one statement
    // (as other instances would: neither scheduler was told).
    app.execute("INSERT INTO users (id) VALUES ('alice') ON CONFLICT DO NOTHING");
    app.execute(
        "INSERT INTO reminders (id, user_id, text, due_at, created_at, updated_at)
         SELECT gen_random_uuid(), 'alice', 'r' || i,
                now() + interval '2 seconds' + i * interval '4 milliseconds', now(), now()
           FROM generate_series(0, 199) AS i",
    );
    let ids: Vec<String> = {
        use diesel::prelude::*;
        let mut conn = diesel::PgConnection::establish(&app.db_url).unwrap();
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            id: String,
        }
        diesel::sql_query("SELECT id::text AS id FROM reminders")
            .load::<Row>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect()
    };
    assert_eq!(ids.len(), 200);
    for s in [&mut socket, &mut peer_socket] {
        let mut seen: HashMap<String, usize> = HashMap::new();
        while seen.len() < ids.len() {
            let due = s.event("reminder:due").await;
            *seen
                .entry(due["reminder"]["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        let extra = s.drain(Duration::from_millis(500)).await;
        for (name, payload) in extra {
            if name == "reminder:due" {
                *seen
                    .entry(payload["reminder"]["id"].as_str().unwrap().to_owned())
                    .or_default() += 1;
            }
        }
        let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "fired more than once: {twice:?}");
        assert!(ids.iter().all(|id| seen.contains_key(id)));
    }
    assert_eq!(
        app.count("SELECT count(*) FROM reminders WHERE status = 'fired'"),
        200
    );
}

/// One chat turn in a conversation (a new one when `conversation` is None).
async fn say(app: &TestApp, user: &str, conversation: Option<&Value>, text: &str) -> Value {
    let mut body = json!({ "text": text });
    if let Some(id) = conversation {
        body["conversationId"] = id.clone();
    }
    let reply = app.post("/v1/chat", user, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{text:?}: {}", reply.body);
    let call = &reply.body["assistantMessage"]["toolCalls"][0];
    assert_eq!(call["status"], "ok", "{text:?}: {}", reply.body);
    reply.body
}

#[tokio::test]
async fn the_assistant_sets_snoozes_lists_and_cancels_reminders_and_tells_the_conversation() {
    // Polls often: the test moves a reminder's time in the database behind the scheduler.
    let app = spawn_app_with(|c| c.reminders.poll_ms = 100, Default::default()).await;
    let mut socket = Client::connect(&app, "alice").await;
    let turn = say(&app, "alice", None, "remind me to stretch in 10 minutes").await;
    let conversation = turn["conversationId"].clone();
    let call = &turn["assistantMessage"]["toolCalls"][0];
    assert_eq!(call["name"], "create_reminder");
    let reminder = call["result"]["reminder"].clone();
    assert_eq!(reminder["text"], "Stretch");
    assert_eq!(reminder["conversationId"], conversation);
    let due = time(&reminder["dueAt"]) - Utc::now();
    assert!(
        due > chrono::Duration::minutes(9) && due <= chrono::Duration::minutes(10),
        "{due}"
    );
    let content = turn["assistantMessage"]["content"].as_str().unwrap();
    assert!(content.contains("I'll remind you: “Stretch”"), "{content}");

    // Due now: it fires to the socket and into the conversation it was asked in.
    app.execute(&format!(
        "UPDATE reminders SET due_at = now() WHERE id = '{}'",
        reminder["id"].as_str().unwrap()
    ));
    let due = socket.event("reminder:due").await;
    assert_eq!(due["reminder"]["id"], reminder["id"]);
    let told = socket.event("chat:message").await;
    assert_eq!(told["message"]["conversationId"], conversation);
    assert_eq!(told["message"]["role"], "assistant");
    assert_eq!(told["message"]["content"], "⏰ Reminder: Stretch");
    let history = app
        .get(
            &format!(
                "/v1/conversations/{}/messages",
                conversation.as_str().unwrap()
            ),
            "alice",
        )
        .await;
    let last = history.body["items"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["content"], "⏰ Reminder: Stretch");

    // "snooze that" is the reminder that fired last.
    let turn = say(
        &app,
        "alice",
        Some(&conversation),
        "snooze that for 10 minutes",
    )
    .await;
    let snoozed = &turn["assistantMessage"]["toolCalls"][0];
    assert_eq!(snoozed["name"], "snooze_reminder");
    assert_eq!(snoozed["result"]["reminder"]["id"], reminder["id"]);
    assert_eq!(snoozed["result"]["reminder"]["status"], "scheduled");
    let updated = socket.event("reminder:updated").await;
    assert_eq!(updated["reminder"]["status"], "scheduled");

    // Ahead of an event, by its title.
    let start = Utc::now() + chrono::Duration::days(1);
    app.create_event(
        "alice",
        json!({
            "title": "Dentist",
            "startAt": iso(start),
            "endAt": iso(start + chrono::Duration::hours(1)),
        }),
    )
    .await;
    let turn = say(
        &app,
        "alice",
        Some(&conversation),
        "remind me about the dentist 30 minutes before",
    )
    .await;
    let dentist = turn["assistantMessage"]["toolCalls"][0]["result"]["reminder"].clone();
    assert_eq!(dentist["text"], "Dentist");
    assert!(dentist["eventId"].is_string());
    assert_eq!(
        time(&dentist["dueAt"]),
        time(&json!(iso(start))) - chrono::Duration::minutes(30)
    );

    let turn = say(
        &app,
        "alice",
        Some(&conversation),
        "what reminders do I have?",
    )
    .await;
    assert_eq!(
        turn["assistantMessage"]["toolCalls"][0]["name"],
        "list_reminders"
    );
    let content = turn["assistantMessage"]["content"].as_str().unwrap();
    assert!(
        content.contains("You have 2 reminders")
            && content.contains("Stretch")
            && content.contains("Dentist"),
        "{content}"
    );

    let turn = say(
        &app,
        "alice",
        Some(&conversation),
        "cancel the reminder about the dentist",
    )
    .await;
    assert_eq!(
        turn["assistantMessage"]["toolCalls"][0]["result"]["reminder"]["status"],
        "cancelled"
    );
    assert_eq!(reminder_status(&app, &dentist).await, "cancelled");
    // Nobody else's reminders were touched or listed.
    let bob = say(&app, "bob", None, "what reminders do I have").await;
    assert_eq!(
        bob["assistantMessage"]["toolCalls"][0]["result"]["count"],
        0
    );
}

async fn reminder_status(app: &TestApp, reminder: &Value) -> String {
    crate::reminders::reminder(app, "alice", &reminder["id"]).await["status"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn scheduled_alerts(app: &TestApp, user: &str) -> Vec<Value> {
    let list = app.get("/v1/reminders?status=scheduled", user).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r["alertMinutes"].is_null())
        .cloned()
        .collect()
}

#[tokio::test]
async fn a_weekly_events_alerts_keep_its_wall_clock_time_across_a_daylight_saving_change() {
    // London leaves GMT for BST on Sunday 28 March 2027: a Monday 09:00 standup starts at
    // 09:00Z before and 08:00Z after, and its alert 15 minutes before moves with it.
    let app = spawn_app_with(
        |c| c.ai.timezone = "Europe/London".into(),
        Default::default(),
    )
    .await;
    let event = app
        .create_event(
            "alice",
            json!({
                "title": "Standup",
                "startAt": "2027-03-15T09:00:00Z",
                "endAt": "2027-03-15T09:15:00Z",
                "recurrence": "FREQ=WEEKLY;BYDAY=MO",
                "alerts": [15, 15, 0],
            }),
        )
        .await;
    assert_eq!(event["alerts"], json!([0, 15]));
    let listed = app
        .get(
            "/v1/events?from=2027-03-14T00:00:00Z&to=2027-04-06T00:00:00Z",
            "alice",
        )
        .await;
    let starts: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["startAt"].as_str().unwrap())
        .collect();
    assert_eq!(
        starts,
        [
            "2027-03-15T09:00:00Z",
            "2027-03-22T09:00:00Z",
            "2027-03-29T08:00:00Z",
            "2027-04-05T08:00:00Z"
        ]
    );
    // One waiting reminder per alert, for the next occurrence only.
    let alerts = scheduled_alerts(&app, "alice").await;
    let mut due: Vec<(&str, u64)> = alerts
        .iter()
        .map(|r| {
            (
                r["dueAt"].as_str().unwrap(),
                r["alertMinutes"].as_u64().unwrap(),
            )
        })
        .collect();
    due.sort();
    assert_eq!(
        due,
        [("2027-03-15T08:45:00Z", 15), ("2027-03-15T09:00:00Z", 0)]
    );
    assert!(alerts.iter().all(|r| r["eventId"] == event["id"]
        && r["text"] == "Standup"
        && r["occurrenceAt"] == "2027-03-15T09:00:00Z"));
    // Dismissing the 15-minute alert of each occurrence in turn brings the next one's, across
    // the change.
    let mut seen = Vec::new();
    for _ in 0..3 {
        let waiting = scheduled_alerts(&app, "alice").await;
        let fifteen = waiting
            .iter()
            .find(|r| r["alertMinutes"] == 15)
            .expect("the 15-minute alert waits")
            .clone();
        seen.push(fifteen["dueAt"].as_str().unwrap().to_owned());
        let path = format!("/v1/reminders/{}", fifteen["id"].as_str().unwrap());
        let reply = app
            .patch(&path, "alice", json!({ "status": "dismissed" }))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    assert_eq!(
        seen,
        [
            "2027-03-15T08:45:00Z",
            "2027-03-22T08:45:00Z",
            "2027-03-29T07:45:00Z"
        ]
    );
    // Still one per alert waiting: the series is never materialised.
    assert_eq!(scheduled_alerts(&app, "alice").await.len(), 2);
}

#[tokio::test]
async fn an_events_alert_fires_at_its_time_and_the_next_occurrence_gets_its_own() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let start = Utc::now() + chrono::Duration::milliseconds(1500);
    let event = app
        .create_event(
            "alice",
            json!({
                "title": "Pills",
                "startAt": iso(start),
                "endAt": iso(start + chrono::Duration::minutes(5)),
                "recurrence": "FREQ=DAILY",
                "alerts": [0],
            }),
        )
        .await;
    let due = socket.event("reminder:due").await;
    assert_eq!(due["reminder"]["eventId"], event["id"]);
    assert_eq!(due["reminder"]["text"], "Pills");
    // The new event's alert woke the scheduler: it did not wait for its next poll.
    let lateness = time(&due["reminder"]["firedAt"]) - time(&due["reminder"]["dueAt"]);
    assert!(
        lateness < chrono::Duration::seconds(1),
        "fired {lateness} after its time"
    );
    assert_eq!(
        time(&due["reminder"]["occurrenceAt"]),
        time(&json!(iso(start)))
    );
    let waiting = scheduled_alerts(&app, "alice").await;
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    assert_eq!(
        time(&waiting[0]["occurrenceAt"]),
        time(&json!(iso(start))) + chrono::Duration::days(1)
    );
}

#[tokio::test]
async fn editing_an_events_alerts_rule_or_start_remakes_its_reminders_and_deleting_cancels_them() {
    let app = spawn_app().await;
    let start = Utc::now() + chrono::Duration::days(2);
    let event = app
        .create_event(
            "alice",
            json!({
                "title": "Yoga",
                "startAt": iso(start),
                "endAt": iso(start + chrono::Duration::hours(1)),
                "recurrence": "FREQ=WEEKLY",
                "alerts": [30],
            }),
        )
        .await;
    let path = format!("/v1/events/{}", event["id"].as_str().unwrap());
    let first = scheduled_alerts(&app, "alice").await;
    assert_eq!(first.len(), 1);
    assert_eq!(
        time(&first[0]["dueAt"]),
        time(&json!(iso(start))) - chrono::Duration::minutes(30)
    );

    // New alerts replace the old ones.
    let reply = app
        .patch(&path, "alice", json!({ "alerts": [10, 60] }))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let mut minutes: Vec<u64> = scheduled_alerts(&app, "alice")
        .await
        .iter()
        .map(|r| r["alertMinutes"].as_u64().unwrap())
        .collect();
    minutes.sort();
    assert_eq!(minutes, [10, 60]);

    // A later start moves them.
    let later = start + chrono::Duration::hours(3);
    app.patch(
        &path,
        "alice",
        json!({ "startAt": iso(later), "endAt": iso(later + chrono::Duration::hours(1)) }),
    )
    .await;
    for r in scheduled_alerts(&app, "alice").await {
        assert_eq!(time(&r["occurrenceAt"]), time(&json!(iso(later))));
    }

    // Too many or too early alerts are refused, naming the field.
    for alerts in [json!([1, 2, 3, 4, 5, 6]), json!([40_321]), json!(null)] {
        let reply = app.patch(&path, "alice", json!({ "alerts": alerts })).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(
            reply.body["error"]["details"]["alerts"].is_string(),
            "{}",
            reply.body
        );
    }

    // No alerts: none wait. Deleted: what waited is cancelled.
    app.patch(&path, "alice", json!({ "alerts": [] })).await;
    assert!(scheduled_alerts(&app, "alice").await.is_empty());
    app.patch(&path, "alice", json!({ "alerts": [5] })).await;
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert!(scheduled_alerts(&app, "alice").await.is_empty());
    assert_eq!(
        app.count("SELECT count(*) FROM reminders WHERE status = 'cancelled'"),
        1
    );
}

#[tokio::test]
async fn the_daily_agenda_is_set_on_me_and_fires_the_days_events_and_tasks_due() {
    let app = spawn_app().await;
    let me = app.get("/v1/me", "alice").await;
    assert!(
        me.body["timezone"].is_null() && me.body["agendaAt"].is_null(),
        "{}",
        me.body
    );
    for (body, field) in [
        (json!({ "timezone": "Mars/Olympus_Mons" }), "timezone"),
        (json!({ "agendaAt": "25:00" }), "agendaAt"),
        (json!({ "agendaAt": "7am" }), "agendaAt"),
        (json!({ "agenda": "07:30" }), "agenda"),
    ] {
        let reply = app.patch("/v1/me", "alice", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{}",
            reply.body
        );
    }
    // Today (UTC) around now, and tomorrow: only today's show.
    let now = Utc::now();
    let today = if now.time() >= chrono::NaiveTime::from_hms_opt(1, 0, 0).unwrap() {
        now - chrono::Duration::minutes(30)
    } else {
        now + chrono::Duration::minutes(30)
    };
    app.create_event(
        "alice",
        json!({ "title": "Dentist", "startAt": iso(today), "endAt": iso(today + chrono::Duration::minutes(30)) }),
    )
    .await;
    let tomorrow = today + chrono::Duration::days(1);
    app.create_event(
        "alice",
        json!({ "title": "Flight", "startAt": iso(tomorrow), "endAt": iso(tomorrow + chrono::Duration::hours(2)) }),
    )
    .await;
    app.create_task("alice", json!({ "title": "Pay rent", "dueAt": iso(today) }))
        .await;
    app.create_task(
        "bob",
        json!({ "title": "Not alice's", "dueAt": iso(today) }),
    )
    .await;

    let set = app
        .patch(
            "/v1/me",
            "alice",
            json!({ "timezone": "UTC", "agendaAt": "07:30" }),
        )
        .await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    assert_eq!(
        (set.body["timezone"].as_str(), set.body["agendaAt"].as_str()),
        (Some("UTC"), Some("07:30"))
    );
    assert_eq!(app.get("/v1/me", "alice").await.body, set.body);
    let waiting = |app: &TestApp| {
        let app_url = app.url("/v1/reminders?status=scheduled");
        let client = app.client.clone();
        async move {
            let page: Value = client
                .get(app_url)
                .bearer_auth("dev:alice")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["kind"] == "agenda")
                .cloned()
                .collect::<Vec<_>>()
        }
    };
    let agenda = waiting(&app).await;
    assert_eq!(agenda.len(), 1, "{agenda:?}");
    let due = time(&agenda[0]["dueAt"]);
    assert!(due > now && due <= now + chrono::Duration::days(1), "{due}");
    assert_eq!(due.format("%H:%M").to_string(), "07:30");
    // Moving the agenda replaces its reminder: one waits, at the new time.
    app.patch("/v1/me", "alice", json!({ "agendaAt": "06:15" }))
        .await;
    let agenda = waiting(&app).await;
    assert_eq!(agenda.len(), 1, "{agenda:?}");
    assert_eq!(
        time(&agenda[0]["dueAt"]).format("%H:%M").to_string(),
        "06:15"
    );

    // Brought forward (a snooze), it fires now through the reminders' path.
    let mut socket = Client::connect(&app, "alice").await;
    let id = agenda[0]["id"].as_str().unwrap();
    let moved = app
        .patch(
            &format!("/v1/reminders/{id}"),
            "alice",
            json!({ "dueAt": at(chrono::Duration::milliseconds(800)) }),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.body);
    let fired = socket.event("reminder:due").await;
    let text = fired["reminder"]["text"].as_str().unwrap();
    assert_eq!(fired["reminder"]["kind"], "agenda");
    assert!(
        text.contains("Dentist") && text.contains("Pay rent"),
        "{text}"
    );
    assert!(
        !text.contains("Flight") && !text.contains("Not alice's"),
        "{text}"
    );
    assert!(text.contains(&today.format("%H:%M").to_string()), "{text}");
    // And the next one waits, at the agenda's time.
    let next = waiting(&app).await;
    assert_eq!(next.len(), 1, "{next:?}");
    assert_ne!(next[0]["id"], agenda[0]["id"]);
    assert_eq!(time(&next[0]["dueAt"]).format("%H:%M").to_string(), "06:15");

    // Turned off: nothing waits.
    let off = app
        .patch("/v1/me", "alice", json!({ "agendaAt": null }))
        .await;
    assert!(off.body["agendaAt"].is_null(), "{}", off.body);
    assert!(waiting(&app).await.is_empty());
}

/// A push service for the crash test: answers 201 after a short wait (so pushes are in flight
/// when an instance dies), and records each push's (path, Topic).
async fn slow_push_service() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                while let Some((head, _body)) = crate::helpers::read_http_request(&mut stream).await
                {
                    let path = head
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or_default()
                        .to_owned();
                    let topic = head
                        .lines()
                        .find_map(|l| l.strip_prefix("topic:"))
                        .unwrap_or_default()
                        .trim()
                        .to_owned();
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    record.lock().unwrap().push((path, topic));
                    let answer = "HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n";
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (origin, seen)
}

#[tokio::test]
async fn an_instance_killed_mid_batch_loses_no_reminder_and_no_device_gets_one_twice() {
    use crate::helpers::{TestDatabase, serve_binary};
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let env = [
        ("PIXIE__REALTIME__FANOUT", "postgres".to_owned()),
        ("PIXIE__REMINDERS__BATCH_SIZE", "10".to_owned()),
        ("PIXIE__REMINDERS__POLL_MS", "200".to_owned()),
        ("PIXIE__PUSH__TIMEOUT_MS", "1000".to_owned()),
        ("PIXIE__PUSH__CONCURRENCY", "4".to_owned()),
    ];
    let (mut doomed, _) = serve_binary(&db, &env).await;
    let (_survivor, addr) = serve_binary(&db, &env).await;
    let client = reqwest::Client::new();
    let (origin, pushes) = slow_push_service().await;
    let point =
        "BGsX0fLhLEJH-Lzm5WOkQPJ3A32BLeszoPShOUXYmMKWT-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU";
    for device in ["/phone", "/laptop"] {
        let reply = client
            .post(format!("http://{addr}/v1/push/subscriptions"))
            .bearer_auth("dev:alice")
            .json(&json!({
                "endpoint": format!("{origin}{device}"),
                "keys": { "p256dh": point, "auth": "BwcHBwcHBwcHBwcHBwcHBw" },
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(
            reply.status(),
            StatusCode::CREATED,
            "{}",
            reply.text().await.unwrap()
        );
    }
    let (socket, _) = Client::open_at(&addr).await;
    let mut socket = socket.signed_in("alice").await;
    // 200 reminders due within a second and a half, starting in two seconds; both instances
    // fire them, ten a batch. The doomed one is killed (SIGKILL) in the middle of it.
    let mut conn = db.connect();
    {
        use diesel::prelude::*;
        diesel::sql_query(
            "INSERT INTO reminders (id, user_id, text, due_at, created_at, updated_at)
             SELECT gen_random_uuid(), 'alice', 'r' || i,
                    now() + interval '2 seconds' + i * interval '7 milliseconds', now(), now()
               FROM generate_series(0, 199) AS i",
        )
        .execute(&mut conn)
        .unwrap();
    }
    let count = |sql: &str| {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct N {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<N>(&mut db.connect())
            .unwrap()
            .n
    };
    // Killed once a fifth has fired (as soon as it is seen: the firing goes on meanwhile).
    let started = std::time::Instant::now();
    let mut fired_before = 0;
    while fired_before < 40 && started.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        fired_before = count("SELECT count(*) AS n FROM reminders WHERE status = 'fired'");
    }
    doomed.start_kill().unwrap();
    doomed.wait().await.unwrap();
    assert!(
        (1..200).contains(&fired_before),
        "killed with {fired_before} of 200 fired: not in the middle of the firing"
    );
    eprintln!("killed with {fired_before} of 200 fired");
    // The survivor fires the rest, and sends the pushes the dead one held, once its leases end.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let fired = count("SELECT count(*) AS n FROM reminders WHERE status = 'fired'");
        let pending = count("SELECT count(*) AS n FROM push_deliveries WHERE state = 'pending'");
        if fired == 200 && pending == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "fired {fired} of 200, {pending} pushes pending"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        count("SELECT count(*) AS n FROM push_deliveries WHERE state = 'sent'"),
        400
    );

    // Each device has each reminder: by push, every one; a push the dead instance had in
    // flight may have gone twice, with the same Topic, which its push service collapses.
    let pushes = pushes.lock().unwrap().clone();
    for device in ["/phone", "/laptop"] {
        let topics: std::collections::HashSet<&str> = pushes
            .iter()
            .filter(|(path, _)| path == device)
            .map(|(_, topic)| topic.as_str())
            .collect();
        assert_eq!(
            topics.len(),
            200,
            "{device} got {} distinct reminders",
            topics.len()
        );
    }
    let resent = pushes.len() - 400;
    assert!(
        resent <= 2 * 4,
        "{resent} pushes sent again: more than were in flight"
    );
    eprintln!(
        "pushes: {} sent, {resent} sent again after the kill",
        pushes.len()
    );

    // By socket (on the survivor): never one twice; what the dead instance fired and could not
    // publish is in GET /v1/reminders?status=fired, as for any client that missed it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (name, payload) in socket.drain(Duration::from_secs(1)).await {
        if name == "reminder:due" {
            *seen
                .entry(payload["reminder"]["id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "a socket heard a reminder twice: {twice:?}"
    );
    assert!(seen.len() >= 190, "the socket heard {} of 200", seen.len());
    eprintln!("socket: {} of 200 reminder:due", seen.len());
}
