use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app_without_indexer;

#[tokio::test]
async fn memories_are_created_listed_and_deleted_per_user() {
    let app = spawn_app_without_indexer().await;
    let m = app
        .post(
            "/v1/memories",
            "alice",
            json!({"content": "My sister's birthday is 3 May"}),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED, "{}", m.body);
    assert_eq!(m.body["type"], "note");
    assert_eq!(m.body["content"], "My sister's birthday is 3 May");
    let second = app
        .post(
            "/v1/memories",
            "alice",
            json!({"content": "Likes tea", "type": "conversation"}),
        )
        .await;
    assert_eq!(second.body["type"], "conversation");

    let list = app.get("/v1/memories?limit=1", "alice").await;
    assert_eq!(list.body["items"][0]["content"], "Likes tea");
    let cursor = list.body["nextCursor"].as_str().unwrap();
    let next = app
        .get(&format!("/v1/memories?limit=1&cursor={cursor}"), "alice")
        .await;
    assert_eq!(next.body["items"][0]["id"], m.body["id"]);

    assert_eq!(
        app.get("/v1/memories", "bob").await.body["items"],
        json!([])
    );
    let path = format!("/v1/memories/{}", m.body["id"].as_str().unwrap());
    assert_eq!(app.delete(&path, "bob").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NOT_FOUND
    );

    for body in [
        json!({}),
        json!({"content": ""}),
        json!({"content": "x".repeat(4001)}),
        json!({"content": "x", "type": "secret"}),
    ] {
        let reply = app.post("/v1/memories", "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(reply.error_code(), "validation_failed");
    }
    assert_eq!(
        app.outbox(),
        [
            ("memory", "upsert"),
            ("memory", "upsert"),
            ("memory", "delete")
        ]
        .map(|(k, o)| (k.to_owned(), o.to_owned()))
    );
}
