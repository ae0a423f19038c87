//! iCalendar export, read by calendar libraries this project did not write: Python's
//! `icalendar` parses it and `recurring_ical_events` expands it (tests/ical/expand.py), to the
//! same occurrences as `GET /v1/events` over three months that cross a daylight-saving change.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app_with;

/// The Python with tests/ical/requirements.txt installed: `PIXIE_TEST_PYTHON`, else the
/// README's `.venv`, else `python3`.
fn python() -> String {
    if let Ok(python) = std::env::var("PIXIE_TEST_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    "python3".to_owned()
}

fn expand(ics: &str, from: &str, to: &str) -> Value {
    let dir = crate::helpers::temp_dir("pixie-ics");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("export.ics");
    std::fs::write(&path, ics).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/ical/expand.py");
    let out = std::process::Command::new(python())
        .args([script, path.to_str().unwrap(), from, to])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
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
