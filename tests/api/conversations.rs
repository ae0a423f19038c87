use pixie::domain::UserId;
use pixie::domain::conversation::{NewMessage, Role, ToolCall, ToolCallStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_app_without_indexer};

async fn add_message(
    app: &TestApp,
    user: &str,
    conversation: &str,
    role: Role,
    text: &str,
) -> Uuid {
    let message = app
        .app_domain
        .append_message(
            &UserId::parse(user).unwrap(),
            Uuid::parse_str(conversation).unwrap(),
            NewMessage {
                role,
                content: text.to_owned(),
                tool_calls: Vec::new(),
                client_message_id: None,
                reply_to: None,
            },
        )
        .await
        .expect("the message is stored");
    message.id
}

#[tokio::test]
async fn conversations_list_by_recent_activity() {
    let app = spawn_app().await;
    let a = app
        .post("/v1/conversations", "alice", json!({"title": "Trip"}))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["title"], "Trip");
    assert_eq!(a.body["lastMessageAt"], Value::Null);
    let b = app.post("/v1/conversations", "alice", json!({})).await;
    assert_eq!(b.body["title"], Value::Null);

    let list = app.get("/v1/conversations", "alice").await;
    let ids: Vec<&Value> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| &c["id"])
        .collect();
    assert_eq!(ids, [&b.body["id"], &a.body["id"]]);

    // A message in the older conversation brings it to the top.
    add_message(
        &app,
        "alice",
        a.body["id"].as_str().unwrap(),
        Role::User,
        "hello",
    )
    .await;
    let list = app.get("/v1/conversations?limit=1", "alice").await;
    assert_eq!(list.body["items"][0]["id"], a.body["id"]);
    assert!(list.body["items"][0]["lastMessageAt"].is_string());
    let cursor = list.body["nextCursor"].as_str().unwrap();
    let next = app
        .get(
            &format!("/v1/conversations?limit=1&cursor={cursor}"),
            "alice",
        )
        .await;
    assert_eq!(next.body["items"][0]["id"], b.body["id"]);
    assert_eq!(next.body["nextCursor"], Value::Null);

    assert_eq!(
        app.get("/v1/conversations", "bob").await.body["items"],
        json!([])
    );
    let bad = app
        .post(
            "/v1/conversations",
            "alice",
            json!({"title": "t".repeat(501)}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn messages_page_oldest_to_newest_going_back_in_time() {
    let app = spawn_app().await;
    let c = app.post("/v1/conversations", "alice", json!({})).await.body;
    let cid = c["id"].as_str().unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        ids.push(add_message(&app, "alice", cid, role, &format!("m{i}")).await);
    }
    let page = app
        .get(
            &format!("/v1/conversations/{cid}/messages?limit=2"),
            "alice",
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let texts = |r: &crate::helpers::Reply| -> Vec<String> {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(texts(&page), ["m3", "m4"]);
    assert_eq!(page.body["items"][0]["role"], "assistant");
    assert_eq!(page.body["items"][0]["conversationId"], cid);
    assert_eq!(page.body["items"][0]["toolCalls"], json!([]));
    let before = page.body["nextCursor"].as_str().unwrap();
    assert_eq!(before, ids[3].to_string());
    let older = app
        .get(
            &format!("/v1/conversations/{cid}/messages?limit=2&before={before}"),
            "alice",
        )
        .await;
    assert_eq!(texts(&older), ["m1", "m2"]);
    let oldest = app
        .get(
            &format!(
                "/v1/conversations/{cid}/messages?limit=2&before={}",
                older.body["nextCursor"].as_str().unwrap()
            ),
            "alice",
        )
        .await;
    assert_eq!(texts(&oldest), ["m0"]);
    assert_eq!(oldest.body["nextCursor"], Value::Null);

    // Another user cannot read them; a bad `before` is a validation error.
    let other = app
        .get(&format!("/v1/conversations/{cid}/messages"), "bob")
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let bad = app
        .get(
            &format!("/v1/conversations/{cid}/messages?before=nope"),
            "alice",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let foreign = app
        .get(
            &format!("/v1/conversations/{cid}/messages?before={}", Uuid::now_v7()),
            "alice",
        )
        .await;
    // A well-formed id this conversation does not hold is an unknown id, like any other.
    assert_eq!(foreign.status, StatusCode::NOT_FOUND);
    assert_eq!(foreign.error_code(), "not_found");
}

#[tokio::test]
async fn tool_calls_are_stored_with_the_message_and_client_ids_are_unique_per_user() {
    let app = spawn_app().await;
    let cid = app.post("/v1/conversations", "alice", json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let alice = UserId::parse("alice").unwrap();
    let conversation = Uuid::parse_str(&cid).unwrap();
    let user_message = |client_id: &str| NewMessage {
        role: Role::User,
        content: "add milk".into(),
        tool_calls: Vec::new(),
        client_message_id: Some(client_id.into()),
        reply_to: None,
    };
    app.app_domain
        .append_message(&alice, conversation, user_message("c-1"))
        .await
        .unwrap();
    let dup = app
        .app_domain
        .append_message(&alice, conversation, user_message("c-1"))
        .await;
    assert!(
        matches!(dup, Err(pixie::domain::DomainError::Conflict(_))),
        "{dup:?}"
    );
    app.app_domain
        .append_message(
            &alice,
            conversation,
            NewMessage {
                role: Role::Assistant,
                content: "Added.".into(),
                tool_calls: vec![ToolCall {
                    id: "call_1".into(),
                    name: "create_task".into(),
                    arguments: json!({"title": "milk"}),
                    status: ToolCallStatus::Ok,
                    result: Some(json!({"id": "x"})),
                    error: None,
                    error_code: None,
                }],
                client_message_id: None,
                reply_to: None,
            },
        )
        .await
        .unwrap();
    let page = app
        .get(&format!("/v1/conversations/{cid}/messages"), "alice")
        .await;
    assert_eq!(page.body["items"][0]["clientMessageId"], "c-1");
    assert_eq!(
        page.body["items"][1]["toolCalls"],
        json!([{"id": "call_1", "name": "create_task", "arguments": {"title": "milk"}, "status": "ok", "result": {"id": "x"}, "error": null, "errorCode": null}])
    );
    // Another user may use the same client id.
    let bob_conv = app.post("/v1/conversations", "bob", json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.app_domain
        .append_message(
            &UserId::parse("bob").unwrap(),
            Uuid::parse_str(&bob_conv).unwrap(),
            user_message("c-1"),
        )
        .await
        .unwrap();
    // Nobody writes into someone else's conversation.
    let foreign = app
        .app_domain
        .append_message(
            &UserId::parse("bob").unwrap(),
            conversation,
            user_message("c-2"),
        )
        .await;
    assert!(matches!(foreign, Err(pixie::domain::DomainError::NotFound)));
}

#[tokio::test]
async fn deleting_a_conversation_deletes_its_messages_and_their_vectors() {
    let app = spawn_app_without_indexer().await;
    let cid = app.post("/v1/conversations", "alice", json!({})).await.body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add_message(&app, "alice", &cid, Role::User, "one").await;
    add_message(&app, "alice", &cid, Role::Assistant, "two").await;
    let path = format!("/v1/conversations/{cid}");
    assert_eq!(app.delete(&path, "bob").await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("{path}/messages"), "alice").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, "alice").await.status,
        StatusCode::NOT_FOUND
    );
    // The assistant's replies are not indexed: only the user's message has index work.
    assert_eq!(
        app.outbox(),
        [("message", "upsert"), ("message", "delete")].map(|(k, o)| (k.to_owned(), o.to_owned()))
    );
}
