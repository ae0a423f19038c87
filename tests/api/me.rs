use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_without_indexer;

#[tokio::test]
async fn me_is_created_on_first_sight() {
    let app = spawn_app_without_indexer().await;
    let me = app.get("/v1/me", "alice").await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], "alice");
    assert!(me.body["createdAt"].is_string());
    assert_eq!(app.get("/v1/me", "alice").await.body, me.body);
}

#[tokio::test]
async fn erasing_a_user_deletes_everything_of_theirs_only() {
    let app = spawn_app_without_indexer().await;
    let task = app.create_task("alice", json!({"title": "t"})).await;
    app.create_event(
        "alice",
        json!({"title": "e", "startAt": "2026-12-01T10:00:00Z", "endAt": "2026-12-01T11:00:00Z"}),
    )
    .await;
    app.post("/v1/memories", "alice", json!({"content": "m"}))
        .await;
    app.post("/v1/conversations", "alice", json!({})).await;
    let bobs = app.create_task("bob", json!({"title": "bob's"})).await;
    let before = app.get("/v1/me", "alice").await.body;

    let erased = app.delete("/v1/me", "alice").await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT);

    for path in [
        "/v1/tasks",
        "/v1/events",
        "/v1/memories",
        "/v1/conversations",
    ] {
        let list = app.get(path, "alice").await;
        assert_eq!(list.body["items"], json!([]), "{path}");
    }
    let gone = app
        .get(
            &format!("/v1/tasks/{}", task["id"].as_str().unwrap()),
            "alice",
        )
        .await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    // Bob keeps his.
    let bob = app
        .get(
            &format!("/v1/tasks/{}", bobs["id"].as_str().unwrap()),
            "bob",
        )
        .await;
    assert_eq!(bob.status, StatusCode::OK);
    // The index drops every vector of the user: one "user delete" row replaces her pending work.
    let outbox = app.outbox();
    assert!(
        outbox.contains(&("user".into(), "delete".into())),
        "{outbox:?}"
    );
    assert!(
        outbox.iter().filter(|(k, _)| k == "task").count() == 1,
        "{outbox:?}"
    );

    // Alice can come back: a new row, and writes work again.
    let again = app.get("/v1/me", "alice").await;
    assert_eq!(again.status, StatusCode::OK);
    assert_ne!(again.body["createdAt"], before["createdAt"]);
    app.create_task("alice", json!({"title": "fresh start"}))
        .await;
}
