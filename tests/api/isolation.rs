//! Another user's ids, everywhere one can be given: every route of the OpenAPI document that
//! takes a path parameter (with every method it has, and with ids of every kind), every tool
//! over MCP, and every socket event. The owner's data must stay invisible to the other user and
//! unchanged, byte for byte.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};
use crate::mcp::{mcp_client, result};
use crate::sio::Client;

/// Everything `user` can read of their own, for a before/after comparison.
async fn snapshot(app: &TestApp, user: &str, conversation: &str) -> Value {
    let mut all = serde_json::Map::new();
    for path in [
        "/v1/tasks".to_owned(),
        "/v1/events".to_owned(),
        "/v1/reminders".to_owned(),
        "/v1/memories".to_owned(),
        "/v1/conversations".to_owned(),
        format!("/v1/conversations/{conversation}/messages"),
        "/v1/push/subscriptions".to_owned(),
    ] {
        let reply = app.get(&path, user).await;
        assert!(reply.status.is_success(), "{path}: {}", reply.body);
        all.insert(path, reply.body);
    }
    Value::Object(all)
}

/// A body each write route would accept from its owner: refused for another user, it is
/// refused because of whose the id is, not because the body is wrong.
fn body_for(path: &str, method: &Method) -> Option<Value> {
    if *method == Method::GET || *method == Method::DELETE {
        return None;
    }
    Some(match path {
        p if p.starts_with("/v1/tasks") => json!({ "title": "taken over" }),
        p if p.starts_with("/v1/events") => json!({ "title": "taken over" }),
        p if p.starts_with("/v1/reminders") => json!({ "status": "dismissed" }),
        p if p.starts_with("/v1/conversations") => json!({ "title": "taken over" }),
        _ => json!({}),
    })
}

#[tokio::test]
async fn another_users_ids_reach_nothing_on_any_route_tool_or_event() {
    let app = spawn_app().await;
    let task = app
        .create_task("ann", json!({"title": "Ann's secret task"}))
        .await;
    let event = app
        .create_event(
            "ann",
            json!({"title": "Ann's secret meeting", "location": "ann-private-place",
                   "startAt": "2030-01-01T10:00:00Z",
                   "endAt": "2030-01-01T11:00:00Z", "alerts": [10]}),
        )
        .await;
    let reminder = app
        .post(
            "/v1/reminders",
            "ann",
            json!({"text": "Ann's secret reminder", "dueAt": "2030-01-01T09:00:00Z"}),
        )
        .await
        .body;
    let memory = app
        .post(
            "/v1/memories",
            "ann",
            json!({"content": "Ann's secret is tangerine"}),
        )
        .await
        .body;
    let chat = app
        .post("/v1/chat", "ann", json!({"text": "hello there"}))
        .await
        .body;
    let conversation = chat["conversationId"].as_str().unwrap().to_owned();
    let message = chat["userMessage"]["id"].as_str().unwrap().to_owned();
    let subscription = app
        .post(
            "/v1/push/subscriptions",
            "ann",
            json!({"endpoint": "http://127.0.0.1:9/ann-private-push", "keys": crate::push::keys()}),
        )
        .await
        .body;
    let ids: Vec<(&str, String)> = [
        ("task", &task["id"]),
        ("event", &event["id"]),
        ("reminder", &reminder["id"]),
        ("memory", &memory["id"]),
        ("subscription", &subscription["id"]),
    ]
    .into_iter()
    .map(|(kind, id)| (kind, id.as_str().expect("an id").to_owned()))
    .chain([("conversation", conversation.clone()), ("message", message)])
    .collect();
    let before = snapshot(&app, "ann", &conversation).await;
    let leaks = |text: &str| {
        [
            "ann-private",
            "tangerine",
            "2030-01-01T09:00",
            "hello there",
        ]
        .iter()
        .any(|mark| text.contains(mark))
    };

    // Every route with a path parameter, every method it has, every kind of id.
    let spec = app.get("/openapi.json", "ann").await.body;
    let mut tried = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        if !path.contains('{') {
            continue;
        }
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            for (kind, id) in &ids {
                let concrete = path
                    .split('/')
                    .map(|part| {
                        if part.starts_with('{') {
                            id.as_str()
                        } else {
                            part
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("/");
                let reply = app
                    .call(method.clone(), &concrete, "bob", body_for(path, &method))
                    .await;
                tried += 1;
                assert!(
                    !reply.status.is_success(),
                    "{method} {path} with ann's {kind} id, as bob: {} {}",
                    reply.status,
                    reply.body
                );
                let text = reply.body.to_string();
                assert!(
                    !leaks(&text),
                    "{method} {path} ({kind}) told bob of ann's data: {text}"
                );
            }
        }
    }
    assert!(
        tried > 50,
        "the sweep covered the routes ({tried} requests)"
    );

    // Every tool that takes an id or a title, over MCP.
    let (task_id, event_id, reminder_id) = (&ids[0].1, &ids[1].1, &ids[2].1);
    let calls = json!([
        { "name": "update_task", "arguments": { "id": task_id, "title": "taken over" } },
        { "name": "complete_task", "arguments": { "id": task_id } },
        { "name": "delete_task", "arguments": { "id": task_id } },
        { "name": "complete_task", "arguments": { "title": "Ann's secret task" } },
        { "name": "update_event", "arguments": { "id": event_id, "title": "taken over" } },
        { "name": "delete_event", "arguments": { "id": event_id } },
        { "name": "delete_event", "arguments": { "title": "Ann's secret meeting" } },
        { "name": "cancel_reminder", "arguments": { "id": reminder_id } },
        { "name": "snooze_reminder", "arguments": { "id": reminder_id, "until": "2031-01-01T00:00:00Z" } },
        { "name": "cancel_reminder", "arguments": { "text": "Ann's secret reminder" } },
        { "name": "create_reminder", "arguments": { "task_id": task_id, "due_at": "2031-01-01T00:00:00Z" } },
        { "name": "create_reminder", "arguments": { "event_id": event_id, "minutes_before": 5 } },
        { "name": "list_tasks", "arguments": {} },
        { "name": "list_events", "arguments": {} },
        { "name": "list_reminders", "arguments": {} },
        { "name": "search_memory", "arguments": { "query": "Ann's secret" } },
    ]);
    let count = calls.as_array().unwrap().len();
    let out = mcp_client(&app, "bob", "auto", calls).await;
    for call in 0..count {
        let answer = result(&out, call);
        let text = answer.to_string();
        assert!(
            !leaks(&text),
            "tool call {call} told bob of ann's data: {text}"
        );
        if call < 12 {
            assert_eq!(answer["isError"], true, "tool call {call} as bob: {text}");
        }
    }

    // Every socket event that names something.
    let mut socket = Client::connect(&app, "bob").await;
    for (event_name, payload) in [
        ("reminder:dismiss", json!({ "id": reminder_id })),
        (
            "reminder:snooze",
            json!({ "id": reminder_id, "until": "2031-01-01T00:00:00Z" }),
        ),
        (
            "chat:send",
            json!({ "conversationId": conversation, "clientMessageId": "b-1", "text": "hi" }),
        ),
        ("chat:cancel", json!({ "conversationId": conversation })),
        ("chat:resume", json!({ "conversationId": conversation })),
    ] {
        let ack = socket.emit(event_name, payload).await;
        let text = ack.to_string();
        assert!(!leaks(&text), "{event_name} told bob of ann's data: {text}");
        if event_name != "chat:resume" && event_name != "chat:cancel" {
            assert_eq!(ack["ok"], false, "{event_name} as bob: {ack}");
        } else {
            assert_ne!(ack["inFlight"], true, "{event_name} as bob: {ack}");
        }
    }

    let after = snapshot(&app, "ann", &conversation).await;
    assert_eq!(before, after, "nothing of ann's changed");
    eprintln!("isolation: {tried} requests over the routes, {count} tool calls, 5 socket events");
}
