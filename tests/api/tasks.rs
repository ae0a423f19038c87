use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_without_indexer};

#[tokio::test]
async fn create_get_update_delete_a_task() {
    let app = spawn_app_without_indexer().await;
    let task = app
        .create_task(
            "alice",
            json!({"title": "  Buy milk ", "priority": "high", "dueAt": "2026-12-01T10:00:00+01:00", "project": "home"}),
        )
        .await;
    assert_eq!(task["title"], "Buy milk");
    assert_eq!(task["status"], "pending");
    assert_eq!(task["priority"], "high");
    assert_eq!(task["dueAt"], "2026-12-01T09:00:00Z");
    assert_eq!(task["completedAt"], Value::Null);
    assert_eq!(task["description"], Value::Null);
    let id = task["id"].as_str().unwrap();
    uuid::Uuid::parse_str(id).unwrap();

    let got = app.get(&format!("/v1/tasks/{id}"), "alice").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body, task);

    // Completing sets completedAt; null clears a nullable field; absent fields stay.
    let done = app
        .patch(
            &format!("/v1/tasks/{id}"),
            "alice",
            json!({"status": "completed", "project": null}),
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(done.body["status"], "completed");
    assert!(done.body["completedAt"].is_string());
    assert_eq!(done.body["project"], Value::Null);
    assert_eq!(done.body["priority"], "high");
    assert_ne!(done.body["updatedAt"], task["updatedAt"]);

    let reopened = app
        .patch(
            &format!("/v1/tasks/{id}"),
            "alice",
            json!({"status": "in_progress"}),
        )
        .await;
    assert_eq!(reopened.body["completedAt"], Value::Null);

    let deleted = app.delete(&format!("/v1/tasks/{id}"), "alice").await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.get(&format!("/v1/tasks/{id}"), "alice").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.error_code(), "not_found");
    let again = app.delete(&format!("/v1/tasks/{id}"), "alice").await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);

    // Every write queued its vector-index work in the same transaction.
    assert_eq!(
        app.outbox(),
        vec![
            ("task".into(), "upsert".into()),
            ("task".into(), "upsert".into()),
            ("task".into(), "upsert".into()),
            ("task".into(), "delete".into()),
        ]
    );
}

#[tokio::test]
async fn validation_errors_name_the_fields() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "title"),
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "x".repeat(501)}), "title"),
        (
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            "description",
        ),
        (
            json!({"title": "ok", "project": "p".repeat(101)}),
            "project",
        ),
        (json!({"title": "ok", "status": "done"}), "status"),
        (json!({"title": "ok", "priority": "meh"}), "priority"),
        (json!({"title": "ok", "dueAt": "tomorrow"}), "dueAt"),
        (json!({"title": "ok", "colour": "red"}), "colour"),
        (json!({"title": 5}), "title"),
    ];
    for (body, field) in cases {
        let reply = app.post("/v1/tasks", "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "validation_failed", "{body}");
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{body} → {}",
            reply.body
        );
    }
    // Non-nullable fields cannot be cleared.
    let task = app.create_task("alice", json!({"title": "t"})).await;
    let id = task["id"].as_str().unwrap();
    for body in [
        json!({"title": null}),
        json!({"status": null}),
        json!({"title": ""}),
    ] {
        let reply = app
            .patch(&format!("/v1/tasks/{id}"), "alice", body.clone())
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "validation_failed");
    }
    // A refused update wrote nothing.
    let unchanged = app.get(&format!("/v1/tasks/{id}"), "alice").await;
    assert_eq!(unchanged.body, task);
    // Nothing was stored by the refused creations.
    let list = app.get("/v1/tasks", "alice").await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn listing_is_newest_first_with_cursor_pages() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        let t = app
            .create_task("alice", json!({"title": format!("task {i}")}))
            .await;
        ids.push(t["id"].as_str().unwrap().to_owned());
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/tasks?limit=3&cursor={c}"),
            None => "/v1/tasks?limit=3".to_owned(),
        };
        let page = app.get(&path, "alice").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        pages += 1;
        for item in page.body["items"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_owned());
        }
        match page.body["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids);

    for bad in [
        "limit=0",
        "limit=201",
        "limit=x",
        "cursor=garbage",
        "sort=asc",
        "status=nope",
    ] {
        let reply = app.get(&format!("/v1/tasks?{bad}"), "alice").await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(reply.error_code(), "validation_failed", "{bad}");
    }
    let max = app.get("/v1/tasks?limit=200", "alice").await;
    assert_eq!(max.status, StatusCode::OK);
}

#[tokio::test]
async fn listing_filters() {
    let app = spawn_app().await;
    app.create_task(
        "alice",
        json!({"title": "a", "project": "home", "dueAt": "2026-12-01T00:00:00Z"}),
    )
    .await;
    app.create_task("alice", json!({"title": "b", "project": "work", "status": "completed", "dueAt": "2026-12-05T00:00:00Z"}))
        .await;
    app.create_task("alice", json!({"title": "c"})).await;
    let titles = |reply: crate::helpers::Reply| -> Vec<String> {
        reply.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        titles(app.get("/v1/tasks?status=completed", "alice").await),
        ["b"]
    );
    assert_eq!(
        titles(app.get("/v1/tasks?project=home", "alice").await),
        ["a"]
    );
    assert_eq!(
        titles(
            app.get("/v1/tasks?dueBefore=2026-12-03T00:00:00Z", "alice")
                .await
        ),
        ["a"]
    );
    assert_eq!(
        titles(
            app.get("/v1/tasks?dueAfter=2026-12-03T00:00:00Z", "alice")
                .await
        ),
        ["b"]
    );
    assert_eq!(
        titles(
            app.get("/v1/tasks?status=pending&project=home", "alice")
                .await
        ),
        ["a"]
    );
}

#[tokio::test]
async fn another_users_tasks_are_invisible_and_untouchable() {
    let app = spawn_app().await;
    let task = app.create_task("alice", json!({"title": "secret"})).await;
    let id = task["id"].as_str().unwrap();
    let path = format!("/v1/tasks/{id}");

    assert_eq!(
        app.get(&path, "mallory").await.status,
        StatusCode::NOT_FOUND
    );
    let patched = app.patch(&path, "mallory", json!({"title": "pwned"})).await;
    assert_eq!(patched.status, StatusCode::NOT_FOUND);
    assert_eq!(patched.error_code(), "not_found");
    assert_eq!(
        app.delete(&path, "mallory").await.status,
        StatusCode::NOT_FOUND
    );
    let list = app.get("/v1/tasks", "mallory").await;
    assert_eq!(list.body["items"], json!([]));
    // Alice's task is as she left it.
    assert_eq!(app.get(&path, "alice").await.body, task);
}

#[tokio::test]
async fn task_changes_are_published_on_the_domain_bus() {
    let app = spawn_app().await;
    let mut events = app.app_domain.bus().subscribe();
    let task = app.create_task("alice", json!({"title": "t"})).await;
    let id = task["id"].as_str().unwrap();
    app.patch(&format!("/v1/tasks/{id}"), "alice", json!({"title": "t2"}))
        .await;
    app.delete(&format!("/v1/tasks/{id}"), "alice").await;
    // A refused change publishes nothing.
    app.patch(&format!("/v1/tasks/{id}"), "alice", json!({"title": "t3"}))
        .await;

    let mut names = Vec::new();
    while let Ok(event) = events.try_recv() {
        assert_eq!(event.user_id.as_str(), "alice");
        names.push(event.change.name());
        let payload: serde_json::Value =
            serde_json::from_str(event.change.payload().get()).unwrap();
        if event.change.name() == "task:updated" {
            assert_eq!(payload["task"]["title"], "t2");
        }
        if event.change.name() == "task:deleted" {
            assert_eq!(payload, json!({"id": id}));
        }
    }
    assert_eq!(names, ["task:created", "task:updated", "task:deleted"]);
}
