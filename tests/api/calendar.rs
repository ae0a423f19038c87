//! iCalendar export, read by calendar libraries this project did not write: Python's
//! `icalendar` parses it and `recurring_ical_events` expands it (tests/ical/expand.py), to the
//! same occurrences as `GET /v1/events` over three months that cross a daylight-saving change.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;

fn expand(ics: &str, from: &str, to: &str) -> Value {
    let dir = crate::helpers::temp_dir("pixie-ics");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("export.ics");
    std::fs::write(&path, ics).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ical/expand.py");
    let out = std::process::Command::new(crate::helpers::python())
        .args([script, path.to_str().unwrap(), from, to])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", crate::helpers::python()));
    assert!(
        out.status.success(),
        "tests/ical/expand.py failed (run `python3 -m venv .venv && .venv/bin/pip install -r \
         tests/ical/requirements.txt`, or set PIXIE_TEST_PYTHON):\n{}\n--- the export ---\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&dir).unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn the_export_expands_in_other_libraries_to_the_occurrences_the_api_lists() {
    let app = spawn_app_with(
        |c| c.ai.timezone = "Europe/Paris".into(),
        Default::default(),
    )
    .await;
    // 09:00 in Paris every week: 08:00Z before 28 March 2027, 07:00Z after.
    let weekly = app
        .create_event(
            "alice",
            json!({ "title": "Standup, weekly", "startAt": "2027-03-02T08:00:00Z",
                    "endAt": "2027-03-02T08:30:00Z", "recurrence": "FREQ=WEEKLY;COUNT=10",
                    "alerts": [10, 60] }),
        )
        .await;
    let every_third_day = app
        .create_event(
            "alice",
            json!({ "title": "Run", "startAt": "2027-03-20T17:30:00Z",
                    "endAt": "2027-03-20T18:15:00Z",
                    "recurrence": "RRULE:FREQ=DAILY;INTERVAL=3;UNTIL=20270420T000000Z" }),
        )
        .await;
    let single = app
        .create_event(
            "alice",
            json!({ "title": "Dentist; bring the \"forms\", please", "startAt": "2027-04-10T12:00:00Z",
                    "endAt": "2027-04-10T12:45:00Z", "location": "Rue de Rivoli, 3",
                    "description": "A long description that goes on and on so that its line has to be folded at seventy-five octets: déjà vu." }),
        )
        .await;
    // All day on 1 April, Paris time.
    let all_day = app
        .create_event(
            "alice",
            json!({ "title": "Holiday", "startAt": "2027-03-31T22:00:00Z",
                    "endAt": "2027-04-01T22:00:00Z", "isAllDay": true }),
        )
        .await;
    app.create_event(
        "bob",
        json!({ "title": "Bob's", "startAt": "2027-04-02T10:00:00Z", "endAt": "2027-04-02T11:00:00Z" }),
    )
    .await;
    let open = app
        .create_task(
            "alice",
            json!({ "title": "Pay rent", "dueAt": "2027-04-05T10:00:00Z" }),
        )
        .await;
    let done = app
        .create_task(
            "alice",
            json!({ "title": "Paid", "dueAt": "2027-04-06T10:00:00Z" }),
        )
        .await;
    app.patch(
        &format!("/v1/tasks/{}", done["id"].as_str().unwrap()),
        "alice",
        json!({ "status": "completed" }),
    )
    .await;
    app.create_task("alice", json!({ "title": "Someday" }))
        .await;

    let reply = app
        .client
        .get(app.url("/v1/calendar.ics"))
        .bearer_auth("dev:alice")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::OK);
    let content_type = reply.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/calendar"), "{content_type}");
    let ics = reply.text().await.unwrap();
    assert!(ics.starts_with("BEGIN:VCALENDAR\r\n"), "{ics}");
    // The same calendar renders to the same bytes (a feed's ETag depends on it).
    let again = app.get_text("/v1/calendar.ics", "alice").await;
    assert_eq!(again, ics);
    assert!(
        ics.lines().all(|l| l.len() <= 75),
        "lines are folded at 75 octets:\n{ics}"
    );
    assert!(!ics.contains("Bob's"), "another user's event in the export");
    assert!(ics.contains("TZID=Europe/Paris"), "{ics}");
    for once in ["VERSION:", "PRODID:", "CALSCALE:"] {
        assert_eq!(
            ics.matches(&format!("\r\n{once}")).count(),
            1,
            "{once} once:\n{ics}"
        );
    }

    let (from, to) = ("2027-03-01T00:00:00Z", "2027-06-01T00:00:00Z");
    let theirs = expand(&ics, from, to);
    let listed = app
        .get(
            &format!("/v1/events?from={from}&to={to}&limit=200"),
            "alice",
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let uid = |e: &Value| {
        format!(
            "{}@pixie",
            e["occurrenceOf"]
                .as_str()
                .unwrap_or_else(|| e["id"].as_str().unwrap())
        )
    };
    let ours: BTreeSet<(String, String, String)> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["isAllDay"] == false)
        .map(|e| {
            let t = |v: &Value| {
                chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap())
                    .unwrap()
                    .with_timezone(&chrono::Utc)
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            };
            (uid(e), t(&e["startAt"]), t(&e["endAt"]))
        })
        .collect();
    let expanded: BTreeSet<(String, String, String)> = theirs["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["start"].as_str().unwrap().contains('T'))
        .map(|o| {
            (
                o["uid"].as_str().unwrap().to_owned(),
                o["start"].as_str().unwrap().to_owned(),
                o["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        expanded, ours,
        "the export's occurrences differ from GET /v1/events"
    );
    // Across the change: 09:00 Paris, in UTC 08:00 then 07:00.
    let weekly_uid = format!("{}@pixie", weekly["id"].as_str().unwrap());
    let weekly_starts: Vec<&str> = ours
        .iter()
        .filter(|(u, ..)| *u == weekly_uid)
        .map(|(_, s, _)| s.as_str())
        .collect();
    assert_eq!(weekly_starts.len(), 10);
    assert!(
        weekly_starts.contains(&"2027-03-23T08:00:00Z"),
        "{weekly_starts:?}"
    );
    assert!(
        weekly_starts.contains(&"2027-03-30T07:00:00Z"),
        "{weekly_starts:?}"
    );
    let run_uid = format!("{}@pixie", every_third_day["id"].as_str().unwrap());
    assert!(ours.iter().filter(|(u, ..)| *u == run_uid).count() >= 10);
    assert!(
        ours.iter()
            .any(|(u, ..)| *u == format!("{}@pixie", single["id"].as_str().unwrap()))
    );
    // The all-day event is a date: 1 April (to 2 April, exclusive).
    let holiday = format!("{}@pixie", all_day["id"].as_str().unwrap());
    let dates: Vec<&Value> = theirs["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["uid"] == holiday.as_str())
        .collect();
    assert_eq!(dates.len(), 1, "{dates:?}");
    assert_eq!(
        (dates[0]["start"].as_str(), dates[0]["end"].as_str()),
        (Some("2027-04-01"), Some("2027-04-02"))
    );
    // Alerts as VALARM, minutes before the start.
    assert_eq!(theirs["alarms"][&weekly_uid], json!([10, 60]));
    // Open tasks with a due time, and no other.
    assert_eq!(
        theirs["todos"],
        json!([{ "uid": format!("{}@pixie", open["id"].as_str().unwrap()), "summary": "Pay rent",
                 "due": "2027-04-05T10:00:00Z" }])
    );
    // Without a token: 401.
    let anonymous = app
        .client
        .get(app.url("/v1/calendar.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_secret_feed_serves_the_calendar_with_conditional_requests_until_revoked() {
    let app = crate::helpers::spawn_app().await;
    let event = app
        .create_event(
            "alice",
            json!({ "title": "Concert", "startAt": "2027-05-01T19:00:00Z", "endAt": "2027-05-01T21:00:00Z" }),
        )
        .await;
    let made = app.post("/v1/calendar/feed", "alice", json!({})).await;
    assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
    let url = made.body["url"].as_str().unwrap().to_owned();
    let prefix = format!("http://{}/ics/", app.addr);
    assert!(url.starts_with(&prefix) && url.ends_with(".ics"), "{url}");
    let token = url[prefix.len()..url.len() - 4].to_owned();
    // Only a hash of the secret is kept.
    let (_, secret) = token.split_once('.').unwrap();
    let hex: String = hmac_sha256::Hash::hash(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM calendar_feeds WHERE encode(secret_hash, 'hex') = '{hex}'"
        )),
        1
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) FROM calendar_feeds WHERE position('{secret}' IN encode(secret_hash, 'escape')) > 0"
        )),
        0
    );

    // No Authorization header: the URL is the secret.
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = app.client.get(&url);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        req.send()
    };
    let first = get(vec![]).await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = first.text().await.unwrap();
    let parsed = expand(&body, "2027-04-01T00:00:00Z", "2027-06-01T00:00:00Z");
    assert_eq!(
        parsed["occurrences"][0]["uid"],
        format!("{}@pixie", event["id"].as_str().unwrap())
    );
    let again = get(vec![("if-none-match", etag.clone())]).await.unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.text().await.unwrap().is_empty());
    let since = get(vec![("if-modified-since", modified.clone())])
        .await
        .unwrap();
    assert_eq!(since.status(), StatusCode::NOT_MODIFIED);

    // A new event, then a deleted one: each changes the ETag, and If-Modified-Since sees it.
    let extra = app
        .create_event(
            "alice",
            json!({ "title": "Encore", "startAt": "2027-05-02T19:00:00Z", "endAt": "2027-05-02T20:00:00Z" }),
        )
        .await;
    let changed = get(vec![("if-none-match", etag.clone())]).await.unwrap();
    assert_eq!(changed.status(), StatusCode::OK);
    let etag2 = changed.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag2, etag);
    assert!(changed.text().await.unwrap().contains("Encore"));
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let at_etag2 = get(vec![]).await.unwrap();
    let modified2 = at_etag2.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();
    app.delete(
        &format!("/v1/events/{}", extra["id"].as_str().unwrap()),
        "alice",
    )
    .await;
    let after_delete = get(vec![("if-modified-since", modified2)]).await.unwrap();
    assert_eq!(
        after_delete.status(),
        StatusCode::OK,
        "a deletion is a change"
    );
    assert!(!after_delete.text().await.unwrap().contains("Encore"));

    // Wrong secrets and tokens: 404, as for one never made.
    let (id, _) = token.split_once('.').unwrap();
    for bad in [
        format!("{id}.{}", "0".repeat(64)),
        "nonsense".to_owned(),
        id.to_string(),
    ] {
        let reply = app
            .client
            .get(format!("{prefix}{bad}.ics"))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), StatusCode::NOT_FOUND, "{bad}");
    }
    // A new feed replaces the old; revoking ends it.
    let renewed = app.post("/v1/calendar/feed", "alice", json!({})).await;
    let new_url = renewed.body["url"].as_str().unwrap().to_owned();
    assert_eq!(get(vec![]).await.unwrap().status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.client.get(&new_url).send().await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        app.delete("/v1/calendar/feed", "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.client.get(&new_url).send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete("/v1/calendar/feed", "alice").await.status,
        StatusCode::NOT_FOUND
    );

    // Rate-limited per feed.
    let limited = app.post("/v1/calendar/feed", "bob", json!({})).await;
    let bob_url = limited.body["url"].as_str().unwrap().to_owned();
    let mut statuses = Vec::new();
    for _ in 0..130 {
        statuses.push(app.client.get(&bob_url).send().await.unwrap().status());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        120
    );
    assert_eq!(statuses.last(), Some(&StatusCode::TOO_MANY_REQUESTS));
}

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ical/fixtures");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

async fn import(app: &crate::helpers::TestApp, user: &str, ics: &str) -> crate::helpers::Reply {
    crate::helpers::TestApp::send(
        app.client
            .post(app.url("/v1/calendar/import"))
            .bearer_auth(format!("dev:{user}"))
            .header("content-type", "text/calendar; charset=utf-8")
            .body(ics.to_owned()),
    )
    .await
}

/// (title, startAt, endAt) of what `GET /v1/events` lists over the range.
async fn listed(
    app: &crate::helpers::TestApp,
    user: &str,
    from: &str,
    to: &str,
) -> Vec<(String, String, String)> {
    let page = app
        .get(&format!("/v1/events?from={from}&to={to}&limit=100"), user)
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    page.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["title"].as_str().unwrap().to_owned(),
                e["startAt"].as_str().unwrap().to_owned(),
                e["endAt"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn items(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(t, s, e)| ((*t).to_owned(), (*s).to_owned(), (*e).to_owned()))
        .collect()
}

#[tokio::test]
async fn google_apple_and_outlook_exports_import_with_their_zones_exceptions_and_overrides() {
    let app = crate::helpers::spawn_app().await;

    // Google: a weekly series on New York's wall clock across the end of daylight saving time
    // (1 November), with an EXDATE and a moved occurrence (RECURRENCE-ID), and an all-day event.
    let google = import(&app, "alice", &fixture("google.ics")).await;
    assert_eq!(google.status, StatusCode::OK, "{}", google.body);
    assert_eq!(
        (
            google.body["created"].as_u64(),
            google.body["updated"].as_u64(),
            google.body["skipped"].as_u64()
        ),
        (Some(3), Some(0), Some(0)),
        "{}",
        google.body
    );
    assert_eq!(
        listed(
            &app,
            "alice",
            "2026-10-01T00:00:00Z",
            "2026-11-15T00:00:00Z"
        )
        .await,
        items(&[
            ("Team sync", "2026-10-06T13:00:00Z", "2026-10-06T13:30:00Z"),
            ("Team sync", "2026-10-13T13:00:00Z", "2026-10-13T13:30:00Z"),
            (
                "Team sync (moved to 11)",
                "2026-10-27T15:00:00Z",
                "2026-10-27T15:30:00Z"
            ),
            ("Team sync", "2026-11-03T14:00:00Z", "2026-11-03T14:30:00Z"),
            ("Team sync", "2026-11-10T14:00:00Z", "2026-11-10T14:30:00Z"),
        ])
    );
    let all = app.get("/v1/events?limit=100", "alice").await;
    let series = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Team sync")
        .unwrap()
        .clone();
    assert_eq!(series["timezone"], "America/New_York", "{series}");
    assert_eq!(series["location"], "Room 4, Building B", "{series}");
    assert_eq!(series["alerts"], json!([10]), "{series}");
    assert_eq!(
        series["exdates"],
        json!(["2026-10-20T13:00:00Z", "2026-10-27T13:00:00Z"]),
        "{series}"
    );
    assert!(
        series["description"]
            .as_str()
            .unwrap()
            .ends_with("1aBcDeFgHiJkLmNoPqRsTuVwXyZ/edit"),
        "a folded line is unfolded: {series}"
    );
    let holidays = all.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["title"] == "Holidays")
        .unwrap()
        .clone();
    assert_eq!(
        (
            &holidays["isAllDay"],
            &holidays["startAt"],
            &holidays["endAt"]
        ),
        (
            &json!(true),
            &json!("2026-12-24T00:00:00Z"),
            &json!("2026-12-26T00:00:00Z")
        )
    );

    // Apple: Berlin's wall clock across its own change (25 October), an audio VALARM, and a
    // VTODO that is reported, not imported.
    let apple = import(&app, "bob", &fixture("apple.ics")).await;
    assert_eq!(apple.status, StatusCode::OK, "{}", apple.body);
    assert_eq!(
        (
            apple.body["created"].as_u64(),
            apple.body["skipped"].as_u64()
        ),
        (Some(2), Some(1)),
        "{}",
        apple.body
    );
    assert_eq!(
        apple.body["skippedItems"][0]["uid"],
        "C0FFEE00-1234-4567-89AB-CDEF01234567"
    );
    assert!(
        apple.body["skippedItems"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("VTODO")
    );
    assert_eq!(
        listed(&app, "bob", "2026-10-01T00:00:00Z", "2026-12-01T00:00:00Z").await,
        items(&[
            ("Yoga", "2026-10-15T16:00:00Z", "2026-10-15T17:00:00Z"),
            ("Yoga", "2026-10-22T16:00:00Z", "2026-10-22T17:00:00Z"),
            ("Yoga", "2026-10-29T17:00:00Z", "2026-10-29T18:00:00Z"),
            ("Yoga", "2026-11-05T17:00:00Z", "2026-11-05T18:00:00Z"),
            (
                "Brunch mit Oma",
                "2026-11-07T09:30:00Z",
                "2026-11-07T11:00:00Z"
            ),
            ("Yoga", "2026-11-12T17:00:00Z", "2026-11-12T18:00:00Z"),
            ("Yoga", "2026-11-19T17:00:00Z", "2026-11-19T18:00:00Z"),
        ])
    );

    // Outlook: a Windows zone name, quoted TZIDs, an EXDATE, and a cancelled occurrence.
    let outlook = import(&app, "carol", &fixture("outlook.ics")).await;
    assert_eq!(outlook.status, StatusCode::OK, "{}", outlook.body);
    assert_eq!(
        (
            outlook.body["created"].as_u64(),
            outlook.body["skipped"].as_u64()
        ),
        (Some(1), Some(0)),
        "{}",
        outlook.body
    );
    assert_eq!(
        listed(
            &app,
            "carol",
            "2026-11-01T00:00:00Z",
            "2027-04-01T00:00:00Z"
        )
        .await,
        items(&[
            (
                "Monthly review",
                "2026-11-03T14:00:00Z",
                "2026-11-03T15:00:00Z"
            ),
            (
                "Monthly review",
                "2027-02-02T14:00:00Z",
                "2027-02-02T15:00:00Z"
            ),
            (
                "Monthly review",
                "2027-03-02T14:00:00Z",
                "2027-03-02T15:00:00Z"
            ),
        ])
    );
    assert!(
        listed(
            &app,
            "alice",
            "2026-11-01T00:00:00Z",
            "2027-04-01T00:00:00Z"
        )
        .await
        .iter()
        .all(|e| e.0 != "Monthly review"),
        "another user's import is not alice's"
    );
}

#[tokio::test]
async fn importing_again_updates_and_never_duplicates_and_an_export_comes_back_unchanged() {
    let app = crate::helpers::spawn_app().await;
    let file = fixture("google.ics");
    assert_eq!(import(&app, "alice", &file).await.body["created"], 3);
    let again = import(&app, "alice", &file).await;
    assert_eq!(
        (
            again.body["created"].as_u64(),
            again.body["updated"].as_u64(),
            again.body["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(3)),
        "{}",
        again.body
    );
    let renamed = import(
        &app,
        "alice",
        &file.replace("SUMMARY:Holidays", "SUMMARY:Winter break"),
    )
    .await;
    assert_eq!(
        (
            renamed.body["created"].as_u64(),
            renamed.body["updated"].as_u64(),
            renamed.body["unchanged"].as_u64()
        ),
        (Some(0), Some(1), Some(2)),
        "{}",
        renamed.body
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE user_id = 'alice'"),
        3
    );
    let listed_before = listed(
        &app,
        "alice",
        "2026-10-01T00:00:00Z",
        "2027-01-01T00:00:00Z",
    )
    .await;
    assert!(
        listed_before.iter().any(|e| e.0 == "Winter break"),
        "{listed_before:?}"
    );

    // The server's own export, imported back, finds the events it came from (UID <id>@pixie)
    // and changes nothing: zones, EXDATEs, alerts and all-day dates survive the round trip.
    let export = app.get_text("/v1/calendar.ics", "alice").await;
    assert!(
        export.contains("BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"),
        "{export}"
    );
    assert!(
        export.contains("EXDATE;TZID=America/New_York:20261020T090000"),
        "{export}"
    );
    let back = import(&app, "alice", &export).await;
    assert_eq!(
        (
            back.body["created"].as_u64(),
            back.body["updated"].as_u64(),
            back.body["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(3)),
        "{}",
        back.body
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE user_id = 'alice'"),
        3
    );
    assert_eq!(
        listed(
            &app,
            "alice",
            "2026-10-01T00:00:00Z",
            "2027-01-01T00:00:00Z"
        )
        .await,
        listed_before
    );

    // Another user importing alice's export gets events of their own; alice's stay as they were.
    let bobs = import(&app, "bob", &export).await;
    assert_eq!(bobs.body["created"], 3, "{}", bobs.body);
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE user_id = 'bob'"),
        3
    );
    let bob_renames = import(
        &app,
        "bob",
        &export.replace("SUMMARY:Team sync\r\n", "SUMMARY:Bob's sync\r\n"),
    )
    .await;
    assert_eq!(bob_renames.body["updated"], 1, "{}", bob_renames.body);
    assert_eq!(
        listed(
            &app,
            "alice",
            "2026-10-01T00:00:00Z",
            "2027-01-01T00:00:00Z"
        )
        .await,
        listed_before
    );

    // And another library expands that export (the imported zone's VTIMEZONE, the EXDATEs) to
    // the same timed occurrences as the listing.
    let theirs = expand(&export, "2026-10-01T00:00:00Z", "2027-01-01T00:00:00Z");
    let expanded: BTreeSet<(String, String)> = theirs["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["start"].as_str().unwrap().contains('T'))
        .map(|o| {
            (
                o["start"].as_str().unwrap().to_owned(),
                o["end"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let ours: BTreeSet<(String, String)> = listed_before
        .into_iter()
        .filter(|(title, ..)| title != "Winter break")
        .map(|(_, start, end)| (start, end))
        .collect();
    assert_eq!(
        expanded, ours,
        "the export's occurrences differ from GET /v1/events"
    );
}

#[tokio::test]
async fn a_malformed_file_is_refused_with_its_line_and_nothing_is_half_imported() {
    let app = crate::helpers::spawn_app().await;
    let good = "BEGIN:VEVENT\r\nUID:ok-1\r\nDTSTART:20261201T090000Z\r\nDTEND:20261201T100000Z\r\nSUMMARY:Fine\r\nEND:VEVENT\r\n";
    let broken = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{good}BEGIN:VEVENT\r\nUID:bad-1\r\nDTSTART:20261202T090000Z\r\nTHIS IS NOT A PROPERTY\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let reply = import(&app, "alice", &broken).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.error_code(), "validation_failed");
    assert_eq!(
        reply.body["error"]["details"]["line"], "12",
        "{}",
        reply.body
    );

    // Well-formed, but an event the calendar cannot hold: its VEVENT's line, nothing written.
    let bad_rule = format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{good}BEGIN:VEVENT\r\nUID:bad-2\r\nDTSTART:20261202T090000Z\r\nDTEND:20261202T100000Z\r\nRRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let reply = import(&app, "alice", &bad_rule).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        reply.body["error"]["details"]["line"], "9",
        "{}",
        reply.body
    );
    assert!(
        reply.body["error"]["details"]["body"]
            .as_str()
            .unwrap()
            .contains("recurrence"),
        "{}",
        reply.body
    );
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE user_id = 'alice'"),
        0
    );

    // Not a calendar, not UTF-8, too many events, too deep.
    let wrong_type = crate::helpers::TestApp::send(
        app.client
            .post(app.url("/v1/calendar/import"))
            .bearer_auth("dev:alice")
            .header("content-type", "application/json")
            .body(good.to_owned()),
    )
    .await;
    assert_eq!(
        wrong_type.status,
        StatusCode::BAD_REQUEST,
        "{}",
        wrong_type.body
    );
    assert!(
        wrong_type.body["error"]["details"]["Content-Type"].is_string(),
        "{}",
        wrong_type.body
    );
    let latin1 = crate::helpers::TestApp::send(
        app.client
            .post(app.url("/v1/calendar/import"))
            .bearer_auth("dev:alice")
            .header("content-type", "text/calendar")
            .body(b"BEGIN:VCALENDAR\r\nSUMMARY:Caf\xe9\r\n".to_vec()),
    )
    .await;
    assert_eq!(latin1.status, StatusCode::BAD_REQUEST, "{}", latin1.body);
    let many: String = (0..2_001)
        .map(|i| format!("BEGIN:VEVENT\r\nUID:e{i}\r\nDTSTART:20261201T090000Z\r\nDURATION:PT1H\r\nEND:VEVENT\r\n"))
        .collect();
    let reply = import(
        &app,
        "alice",
        &format!("BEGIN:VCALENDAR\r\n{many}END:VCALENDAR\r\n"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert!(
        reply.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2000"),
        "{}",
        reply.body
    );
    let deep = format!("BEGIN:VCALENDAR\r\n{}", "BEGIN:X\r\n".repeat(50_000));
    let reply = import(&app, "alice", &deep).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(
        app.count("SELECT count(*) FROM events WHERE user_id = 'alice'"),
        0
    );
    let anonymous = crate::helpers::TestApp::send(
        app.client
            .post(app.url("/v1/calendar/import"))
            .header("content-type", "text/calendar")
            .body(fixture("google.ics")),
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}
