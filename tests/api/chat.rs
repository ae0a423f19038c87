//! `POST /v1/chat` end to end on real PostgreSQL: the offline assistant by default, a mock
//! OpenAI-compatible server where a real model's wire format matters.

use std::time::Duration;

use chrono::{Datelike, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{body_string_contains, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{Reply, TestApp, spawn_app, spawn_app_with, spawn_app_without_indexer};
use pixie::app::Secrets;
use pixie::config::AiProvider;

async fn chat(app: &TestApp, user: &str, body: Value) -> Reply {
    app.post("/v1/chat", user, body).await
}

async fn say(app: &TestApp, user: &str, text: &str) -> Value {
    let reply = chat(app, user, json!({ "text": text })).await;
    assert_eq!(reply.status, StatusCode::OK, "{text:?}: {}", reply.body);
    reply.body
}

fn tool_names(turn: &Value) -> Vec<String> {
    turn["assistantMessage"]["toolCalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads an SSE body into (event, data) pairs.
fn sse_events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut name = String::new();
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = v.to_owned();
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            (name, serde_json::from_str(&data).expect("SSE data is JSON"))
        })
        .collect()
}

#[tokio::test]
async fn the_offline_assistant_adds_a_task_with_no_api_key() {
    let app = spawn_app().await;
    let turn = say(&app, "alice", "add a task to buy milk tomorrow").await;
    assert_eq!(tool_names(&turn), ["create_task"], "{turn}");
    let call = &turn["assistantMessage"]["toolCalls"][0];
    assert_eq!(call["status"], "ok", "{call}");
    assert_eq!(turn["userMessage"]["role"], "user");
    assert_eq!(
        turn["userMessage"]["content"],
        "add a task to buy milk tomorrow"
    );
    assert_eq!(turn["assistantMessage"]["role"], "assistant");
    assert!(
        !turn["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        turn["conversationId"],
        turn["userMessage"]["conversationId"]
    );

    let tasks = app.get("/v1/tasks", "alice").await.body["items"].clone();
    assert_eq!(tasks.as_array().unwrap().len(), 1, "{tasks}");
    assert!(
        tasks[0]["title"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("buy milk")
    );
    let due: chrono::DateTime<Utc> = tasks[0]["dueAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        due.date_naive(),
        (Utc::now() + chrono::Duration::days(1)).date_naive()
    );

    // Both messages are in the conversation, oldest first; a new conversation got a title.
    let cid = turn["conversationId"].as_str().unwrap();
    let messages = app
        .get(&format!("/v1/conversations/{cid}/messages"), "alice")
        .await;
    let items = messages.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0], turn["userMessage"]);
    assert_eq!(items[1], turn["assistantMessage"]);
    let conversations = app.get("/v1/conversations", "alice").await;
    assert_eq!(
        conversations.body["items"][0]["title"],
        "add a task to buy milk tomorrow"
    );
    // Nobody else sees any of it.
    assert_eq!(app.get("/v1/tasks", "bob").await.body["items"], json!([]));
    let other = app
        .get(&format!("/v1/conversations/{cid}/messages"), "bob")
        .await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn offline_scenarios_run_through_the_tool_loop() {
    let app = spawn_app().await;
    say(&app, "carol", "remember to call mom next Friday 5pm").await;
    say(&app, "carol", "add a task to file taxes in 3 days").await;

    let listed = say(&app, "carol", "what are my tasks?").await;
    assert_eq!(tool_names(&listed), ["list_tasks"]);
    let text = listed["assistantMessage"]["content"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(
        text.contains("call mom") && text.contains("file taxes"),
        "{text}"
    );

    let done = say(&app, "carol", "mark call mom as done").await;
    assert_eq!(tool_names(&done), ["complete_task"]);
    assert_eq!(
        done["assistantMessage"]["toolCalls"][0]["status"], "ok",
        "{done}"
    );
    let completed = app.get("/v1/tasks?status=completed", "carol").await;
    assert_eq!(completed.body["items"].as_array().unwrap().len(), 1);

    let meeting = say(
        &app,
        "carol",
        "meeting with Sam on Friday at 3pm for 1 hour",
    )
    .await;
    assert_eq!(tool_names(&meeting), ["create_event"]);
    let standup = say(&app, "carol", "team standup every Monday at 9am").await;
    assert_eq!(tool_names(&standup), ["create_event"]);
    let events = app.get("/v1/events", "carol").await.body["items"].clone();
    let events = events.as_array().unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let sam = events
        .iter()
        .find(|e| e["title"].as_str().unwrap().contains("Sam"))
        .expect("the meeting with Sam");
    let start: chrono::DateTime<Utc> = sam["startAt"].as_str().unwrap().parse().unwrap();
    let end: chrono::DateTime<Utc> = sam["endAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(start.weekday(), chrono::Weekday::Fri);
    assert_eq!(start.format("%H:%M").to_string(), "15:00");
    assert_eq!(end - start, chrono::Duration::hours(1));
    let weekly = events
        .iter()
        .find(|e| e["recurrence"].is_string())
        .expect("the standup repeats");
    assert!(
        weekly["recurrence"].as_str().unwrap().contains("BYDAY=MO"),
        "{weekly}"
    );

    let remembered = say(&app, "carol", "remember that my sister's birthday is 3 May").await;
    assert_eq!(tool_names(&remembered), ["remember"]);
    let memories = app.get("/v1/memories", "carol").await;
    assert_eq!(memories.body["items"].as_array().unwrap().len(), 1);

    let unknown = say(
        &app,
        "carol",
        "what is the meaning of life, the universe and everything?",
    )
    .await;
    assert!(
        !unknown["assistantMessage"]["content"]
            .as_str()
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_assistant_recalls_memories_of_its_user_only() {
    let app = spawn_app().await;
    say(&app, "dora", "remember that my sister's birthday is 3 May").await;
    say(
        &app,
        "eve",
        "remember that the wifi password is on the fridge",
    )
    .await;
    // The memory and the message that asked for it are both found.
    let found = wait_for_search(&app, "dora", "sister birthday", |items| {
        items.iter().any(|i| i["kind"] == "memory")
    })
    .await;
    assert!(
        found[..2]
            .iter()
            .all(|i| i["snippet"].as_str().unwrap().contains("birthday")),
        "{found:?}"
    );

    let recalled = say(&app, "dora", "when is my sister's birthday?").await;
    let calls = &recalled["assistantMessage"]["toolCalls"];
    assert_eq!(tool_names(&recalled), ["search_memory"], "{recalled}");
    let results = calls[0]["result"]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["text"].as_str().unwrap().contains("3 May")),
        "{results:?}"
    );
    // Eve's memory is never among Dora's results, nor the other way round.
    assert!(!calls.to_string().contains("fridge"));
    let eve = wait_for_search(&app, "eve", "wifi password", |items| !items.is_empty()).await;
    assert!(!Value::Array(eve).to_string().contains("birthday"));
}

#[tokio::test]
async fn a_client_message_id_makes_a_turn_idempotent() {
    let app = spawn_app().await;
    let body = json!({ "clientMessageId": "m-1", "text": "add a task to water the plants" });
    let first = chat(&app, "frank", body.clone()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let again = chat(&app, "frank", body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(again.body, first.body, "the retry returns the stored turn");
    assert_eq!(
        app.get("/v1/tasks", "frank").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no second turn ran"
    );
    let clash = chat(
        &app,
        "frank",
        json!({ "clientMessageId": "m-1", "text": "something else" }),
    )
    .await;
    assert_eq!(clash.status, StatusCode::CONFLICT, "{}", clash.body);
    assert_eq!(clash.error_code(), "conflict");
    // Client ids are per user.
    let other = chat(
        &app,
        "grace",
        json!({ "clientMessageId": "m-1", "text": "something else" }),
    )
    .await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
}

/// Messages sent at the same moment are stored by shared statements (group commit): each
/// still gets its own outcome, and what is stored is what one-at-a-time would have stored.
#[tokio::test]
async fn concurrent_messages_are_stored_together_each_with_its_own_outcome() {
    let app = spawn_app_without_indexer().await;
    let users: Vec<String> = (0..24).map(|u| format!("burst-{u}")).collect();
    let mut conversations = Vec::new();
    for user in &users {
        let first = chat(
            &app,
            user,
            json!({ "clientMessageId": "hello", "text": "hello" }),
        )
        .await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.body);
        conversations.push(first.body["conversationId"].as_str().unwrap().to_owned());
    }
    let turn = |u: usize, id: &str| json!({ "clientMessageId": id, "text": "list my tasks", "conversationId": conversations[u] });
    // A turn per user at once: they share statements, fewer transactions than messages.
    let first = futures_util::future::join_all(
        users
            .iter()
            .enumerate()
            .map(|(u, user)| chat(&app, user, turn(u, &format!("b-{u}")))),
    )
    .await;
    for reply in &first {
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let burst = "user_id LIKE 'burst-%'";
    let transactions = app.count(&format!(
        "SELECT count(DISTINCT xmin::text) AS count FROM messages \
         WHERE {burst} AND client_message_id LIKE 'b-%'"
    ));
    assert!(
        transactions < users.len() as i64,
        "{transactions} transactions for {} messages",
        users.len()
    );
    // Then, at once: another turn per user, the same turn again for a third of them (a
    // retry racing its original: one key twice in a batch), a retry of a stored turn, a
    // clash (a used client id with another text), and a message into another user's
    // conversation.
    let mut requests = Vec::new();
    for (u, user) in users.iter().enumerate() {
        requests.push((user.clone(), turn(u, &format!("c-{u}")), "turn"));
        if u % 3 == 0 {
            requests.push((user.clone(), turn(u, &format!("c-{u}")), "retry"));
        }
    }
    requests.push((users[5].clone(), turn(5, "b-5"), "stored"));
    requests.push((
        users[1].clone(),
        json!({ "clientMessageId": "hello", "text": "another text", "conversationId": conversations[1] }),
        "clash",
    ));
    requests.push((
        users[2].clone(),
        json!({ "clientMessageId": "intruder", "text": "hi", "conversationId": conversations[3] }),
        "intruder",
    ));
    let replies = futures_util::future::join_all(
        requests
            .iter()
            .map(|(user, body, _)| chat(&app, user, body.clone())),
    )
    .await;
    let mut turns = std::collections::HashSet::new();
    for ((user, _, kind), reply) in requests.iter().zip(&replies) {
        match *kind {
            // The same turn twice: whichever is stored first runs; the other gets its
            // stored turn, or (the turn still running) a conflict saying so.
            "turn" | "retry" if reply.status == StatusCode::CONFLICT => {
                assert!(
                    reply.body.to_string().contains("already running"),
                    "{}",
                    reply.body
                );
            }
            "turn" | "retry" => {
                assert_eq!(
                    reply.status,
                    StatusCode::OK,
                    "{user} {kind}: {}",
                    reply.body
                );
                turns.insert((user.clone(), reply.body["userMessage"]["id"].to_string()));
            }
            "stored" => {
                assert_eq!(reply.status, StatusCode::OK, "stored: {}", reply.body);
                assert_eq!(
                    reply.body, first[5].body,
                    "the stored turn, as it was answered"
                );
            }
            "clash" => {
                assert_eq!(reply.status, StatusCode::CONFLICT, "clash: {}", reply.body);
                assert_eq!(reply.error_code(), "conflict");
            }
            _ => assert_eq!(
                reply.status,
                StatusCode::NOT_FOUND,
                "intruder: {}",
                reply.body
            ),
        }
    }
    // Every user's turn was answered, and a retry got its original's message: one user
    // message per user in the burst.
    assert_eq!(turns.len(), users.len(), "{turns:?}");
    for (u, user) in users.iter().enumerate() {
        let messages = app
            .get(
                &format!("/v1/conversations/{}/messages", conversations[u]),
                user,
            )
            .await;
        let items = messages.body["items"].as_array().unwrap();
        let texts: Vec<&str> = items.iter().map(|m| m["role"].as_str().unwrap()).collect();
        assert_eq!(texts, ["user", "assistant"].repeat(3), "{user}: {items:?}");
        let listed = app.get("/v1/conversations", user).await;
        let conversation = &listed.body["items"][0];
        let newest = items.last().unwrap()["createdAt"].clone();
        assert_eq!(conversation["lastMessageAt"], newest, "{conversation}");
        assert_eq!(conversation["updatedAt"], newest, "{conversation}");
    }
    // Their user messages were queued for the index once each, the answers not at all
    // (no indexer runs here, so the outbox keeps its rows).
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM vector_outbox o JOIN messages m ON m.id = o.entity_id \
             WHERE o.{burst} AND o.entity_kind = 'message' AND o.op = 'upsert' AND m.role = 'user'"
        )),
        3 * users.len() as i64
    );
    assert_eq!(
        app.count(&format!(
            "SELECT count(*) AS count FROM vector_outbox WHERE {burst} AND entity_kind = 'message'"
        )),
        3 * users.len() as i64,
        "one row per user message, none for answers"
    );
}

#[tokio::test]
async fn bad_chat_requests_get_clear_errors() {
    let app = spawn_app().await;
    for (body, field) in [
        (json!({ "text": "" }), "text"),
        (json!({ "text": "   " }), "text"),
        (json!({ "text": "x".repeat(8001) }), "text"),
        (
            json!({ "text": "hi", "clientMessageId": "" }),
            "clientMessageId",
        ),
        (
            json!({ "text": "hi", "clientMessageId": "x".repeat(65) }),
            "clientMessageId",
        ),
    ] {
        let reply = chat(&app, "henry", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert_eq!(reply.error_code(), "validation_failed");
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{}",
            reply.body
        );
    }
    let unknown_field = chat(&app, "henry", json!({ "text": "hi", "model": "x" })).await;
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    let missing = chat(&app, "henry", json!({})).await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let unknown = chat(
        &app,
        "henry",
        json!({ "text": "hi", "conversationId": uuid::Uuid::new_v4() }),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
    // Another user's conversation is as unknown as a made-up one.
    let turn = say(&app, "henry", "hello").await;
    let theirs = chat(
        &app,
        "ivy",
        json!({ "text": "hi", "conversationId": turn["conversationId"] }),
    )
    .await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
    let no_token = TestApp::send(
        app.client
            .post(app.url("/v1/chat"))
            .json(&json!({"text": "hi"})),
    )
    .await;
    assert_eq!(no_token.status, StatusCode::UNAUTHORIZED);
    // Nothing was stored by the refused requests: henry has one conversation of two messages.
    let conversations = app.get("/v1/conversations", "henry").await;
    assert_eq!(conversations.body["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_turn_streams_as_server_sent_events() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/v1/chat"))
        .bearer_auth("dev:jack")
        .header("accept", "text/event-stream")
        .json(&json!({ "text": "add a task to buy bread tomorrow", "clientMessageId": "s-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&res.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"chat:message"), "{names:?}");
    assert_eq!(names.last(), Some(&"chat:done"), "{names:?}");
    assert!(names.contains(&"chat:tool"), "{names:?}");
    let tool_at = names.iter().position(|n| *n == "chat:tool").unwrap();
    let deltas: Vec<&Value> = events
        .iter()
        .filter(|(n, _)| n == "chat:delta")
        .map(|(_, d)| d)
        .collect();
    assert!(
        deltas.len() > 1,
        "the answer is streamed in pieces: {names:?}"
    );
    let (_, done) = events.last().unwrap();
    let message = &done["message"];
    let streamed: String = deltas.iter().map(|d| d["text"].as_str().unwrap()).collect();
    assert_eq!(streamed, message["content"].as_str().unwrap());
    for delta in &deltas {
        assert_eq!(delta["messageId"], message["id"]);
        assert_eq!(delta["conversationId"], done["conversationId"]);
    }
    assert_eq!(events[tool_at].1["call"]["name"], "create_task");
    assert_eq!(events[0].1["message"]["clientMessageId"], "s-1");
    assert_eq!(message["toolCalls"][0]["name"], "create_task");

    // A retry replays the stored turn without running it again.
    let again = app
        .client
        .post(app.url("/v1/chat"))
        .bearer_auth("dev:jack")
        .header("accept", "text/event-stream")
        .json(&json!({ "text": "add a task to buy bread tomorrow", "clientMessageId": "s-1" }))
        .send()
        .await
        .unwrap();
    let replay = sse_events(&again.text().await.unwrap());
    let names: Vec<&str> = replay.iter().map(|(n, _)| n.as_str()).collect();
    // The user's message is not new: only the stored answer comes again.
    assert_eq!(names, ["chat:done"], "{replay:?}");
    assert_eq!(replay.last().unwrap().1["message"], *message);
    assert_eq!(
        app.get("/v1/tasks", "jack").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Refusals stay plain HTTP errors.
    let bad = app
        .client
        .post(app.url("/v1/chat"))
        .bearer_auth("dev:jack")
        .header("accept", "text/event-stream")
        .json(&json!({ "text": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

/// An OpenAI-compatible SSE body: one `data:` line per chunk, then `[DONE]`.
fn openai_stream(chunks: &[Value]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "mock",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    })
}

fn sse_response(body: String) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "text/event-stream")
        .set_body_string(body)
}

async fn spawn_with_openai(server: &MockServer) -> TestApp {
    let uri = server.uri();
    spawn_app_with(
        move |c| {
            c.ai.provider = AiProvider::Openai;
            c.ai.base_url = Some(format!("{uri}/v1"));
            c.ai.model = Some("mock".into());
            c.ai.max_retries = 1;
            c.ai.request_timeout_secs = 2;
        },
        Secrets::default(),
    )
    .await
}

/// Recalls counted by the metrics (the fused search's duration series).
async fn recalls(app: &TestApp) -> f64 {
    let text = app.get_text("/metrics", "nobody").await;
    text.lines()
        .find_map(|l| l.strip_prefix(r#"pixie_search_duration_seconds_count{leg="all"}"#))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A model is given the memories closest to the message; the offline assistant, which reads
/// only the message, is spared the search.
#[tokio::test]
async fn memories_are_recalled_for_a_model_and_not_for_the_offline_assistant() {
    let offline = spawn_app().await;
    let memory = offline
        .post(
            "/v1/memories",
            "lena",
            json!({ "content": "my sister's birthday is 3 May" }),
        )
        .await;
    assert_eq!(memory.status, StatusCode::CREATED, "{}", memory.body);
    // (A question to the offline assistant runs its search tool, a recall of its own.)
    say(&offline, "lena", "list my tasks").await;
    assert_eq!(recalls(&offline).await, 0.0);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_response(openai_stream(&[
            chunk(json!({ "role": "assistant", "content": "In May." }), None),
            chunk(json!({}), Some("stop")),
        ])))
        .mount(&server)
        .await;
    let app = spawn_with_openai(&server).await;
    let memory = app
        .post(
            "/v1/memories",
            "lena",
            json!({ "content": "my sister's birthday is 3 May" }),
        )
        .await;
    assert_eq!(memory.status, StatusCode::CREATED, "{}", memory.body);
    say(&app, "lena", "when is my sister's birthday?").await;
    assert_eq!(recalls(&app).await, 1.0);
    let requests = server.received_requests().await.unwrap();
    let prompt = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(
        prompt.contains("3 May"),
        "the memory reaches the model: {prompt}"
    );
}

#[tokio::test]
async fn a_model_tool_call_runs_as_the_user_and_the_result_goes_back() {
    let server = MockServer::start().await;
    // Second round (the request carries the tool result): the answer.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("\"role\":\"tool\""))
        .respond_with(sse_response(openai_stream(&[
            chunk(json!({ "role": "assistant", "content": "Added " }), None),
            chunk(json!({ "content": "it." }), None),
            chunk(json!({}), Some("stop")),
        ])))
        .with_priority(1)
        .mount(&server)
        .await;
    // First round: one create_task call, its arguments split across chunks, and one call
    // with arguments that are not JSON.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse_response(openai_stream(&[
            chunk(json!({ "role": "assistant", "tool_calls": [{ "index": 0, "id": "call_a", "type": "function", "function": { "name": "create_task", "arguments": "" } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "{\"title\": \"Pay " } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 0, "function": { "arguments": "rent\", \"priority\": \"high\"}" } }] }), None),
            chunk(json!({ "tool_calls": [{ "index": 1, "id": "call_b", "type": "function", "function": { "name": "create_task", "arguments": "{\"title\": " } }] }), None),
            chunk(json!({}), Some("tool_calls")),
        ])))
        .with_priority(2)
        .mount(&server)
        .await;
    let app = spawn_with_openai(&server).await;
    let turn = say(&app, "kate", "I need to pay rent").await;
    let calls = turn["assistantMessage"]["toolCalls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{turn}");
    assert_eq!(calls[0]["status"], "ok");
    assert_eq!(
        calls[0]["arguments"],
        json!({ "title": "Pay rent", "priority": "high" })
    );
    assert_eq!(calls[0]["result"]["task"]["title"], "Pay rent");
    assert_eq!(calls[1]["status"], "error");
    assert_eq!(calls[1]["arguments"], json!({ "raw": "{\"title\": " }));
    assert!(
        calls[1]["error"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(calls[1]["errorCode"], "validation_failed");
    assert_eq!(calls[0]["errorCode"], Value::Null);
    assert_eq!(turn["assistantMessage"]["content"], "Added it.");
    let tasks = app.get("/v1/tasks", "kate").await.body["items"].clone();
    assert_eq!(tasks.as_array().unwrap().len(), 1);
    assert_eq!(tasks[0]["priority"], "high");

    // The second request told the model about both results, the bad one as an error.
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    let second: Value = serde_json::from_slice(&requests[1].body).unwrap();
    let tool_messages: Vec<&Value> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_messages.len(), 2);
    assert_eq!(tool_messages[0]["tool_call_id"], "call_a");
    assert!(
        tool_messages[1]["content"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    let told: Value = serde_json::from_str(tool_messages[1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(told["code"], "validation_failed", "{told}");
    let first: Value = serde_json::from_slice(&requests[0].body).unwrap();
    let offered: Vec<&str> = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(offered, pixie::domain::tools::TOOL_NAMES);
    assert!(offered.contains(&"create_reminder") && offered.contains(&"snooze_reminder"));
    assert_eq!(first["messages"][0]["role"], "system");
}

#[tokio::test]
async fn a_provider_failure_keeps_the_user_message_and_answers_json_errors() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("overloaded please"))
        .respond_with(
            ResponseTemplate::new(503).set_body_json(json!({"error": {"message": "overloaded"}})),
        )
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(body_string_contains("refuse please"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"message": "model not found"}})),
        )
        .mount(&server)
        .await;
    let app = spawn_with_openai(&server).await;

    let down = chat(
        &app,
        "liam",
        json!({ "text": "overloaded please", "clientMessageId": "f-1" }),
    )
    .await;
    assert_eq!(
        down.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        down.body
    );
    assert_eq!(down.error_code(), "unavailable");
    assert!(down.headers.contains_key("retry-after"));

    // (Another user: liam's first message would be recalled into this request's context.)
    let refused = chat(&app, "mona", json!({ "text": "refuse please" })).await;
    assert_eq!(refused.status, StatusCode::BAD_GATEWAY, "{}", refused.body);
    assert_eq!(refused.error_code(), "bad_gateway");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model not found")
    );

    // Both user messages are stored, with no answer.
    for user in ["liam", "mona"] {
        let conversations = app.get("/v1/conversations", user).await.body["items"].clone();
        assert_eq!(conversations.as_array().unwrap().len(), 1);
        let id = conversations[0]["id"].as_str().unwrap();
        let messages = app
            .get(&format!("/v1/conversations/{id}/messages"), user)
            .await;
        let items = messages.body["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["role"], "user");
    }
    // A retry with the same client id runs the failed turn again (no answer was stored).
    let retry = chat(
        &app,
        "liam",
        json!({ "text": "overloaded please", "clientMessageId": "f-1" }),
    )
    .await;
    assert_eq!(retry.status, StatusCode::SERVICE_UNAVAILABLE);
    // 1 + max_retries attempts on each 503 turn, one on the 400.
    assert_eq!(server.received_requests().await.unwrap().len(), 5);
}

/// Polls `/v1/search` until `done` holds (the indexer works in the background).
pub async fn wait_for_search(
    app: &TestApp,
    user: &str,
    q: &str,
    done: impl Fn(&Vec<Value>) -> bool,
) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let reply = app
            .get(&format!("/v1/search?q={}", urlencode(q)), user)
            .await;
        if reply.status == StatusCode::OK {
            let items = reply.body["items"].as_array().unwrap().clone();
            if done(&items) {
                return items;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "search for {q:?} as {user} never settled: {}",
            reply.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

async fn sse_turn(app: &TestApp, user: &str, body: Value) -> Vec<(String, Value)> {
    let res = app
        .client
        .post(app.url("/v1/chat"))
        .bearer_auth(format!("dev:{user}"))
        .header("accept", "text/event-stream")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    sse_events(&res.text().await.unwrap())
}

fn terminal_events(events: &[(String, Value)]) -> Vec<&str> {
    events
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| matches!(*n, "chat:done" | "chat:error"))
        .collect()
}

#[tokio::test]
async fn a_failed_turn_ends_its_event_stream_with_one_chat_error() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(400)
                .set_body_json(json!({"error": {"message": "model not found"}})),
        )
        .mount(&server)
        .await;
    let app = spawn_with_openai(&server).await;

    // The model refuses.
    let events = sse_turn(
        &app,
        "nina",
        json!({ "text": "hello", "clientMessageId": "e-1" }),
    )
    .await;
    assert_eq!(terminal_events(&events), ["chat:error"], "{events:?}");
    let (name, error) = events.last().unwrap();
    assert_eq!(name, "chat:error");
    assert_eq!(error["code"], "bad_gateway");
    assert_eq!(error["retryable"], false);
    assert_eq!(error["clientMessageId"], "e-1");

    // Gathering the context fails, before the model is called.
    let before = server.received_requests().await.unwrap().len();
    app.execute("ALTER TABLE events RENAME TO events_away");
    let events = sse_turn(&app, "omar", json!({ "text": "what is on today" })).await;
    app.execute("ALTER TABLE events_away RENAME TO events");
    assert_eq!(terminal_events(&events), ["chat:error"], "{events:?}");
    assert_eq!(events[0].0, "chat:message", "{events:?}");
    assert_eq!(events.last().unwrap().1["code"], "internal");
    assert_eq!(server.received_requests().await.unwrap().len(), before);
    let id = events[0].1["message"]["conversationId"].as_str().unwrap();
    let stored = app
        .get(&format!("/v1/conversations/{id}/messages"), "omar")
        .await;
    assert_eq!(
        stored.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        stored.body
    );

    // The same failure answers a JSON request with the error itself.
    app.execute("ALTER TABLE events RENAME TO events_away");
    let reply = chat(&app, "omar", json!({ "text": "and tomorrow?" })).await;
    app.execute("ALTER TABLE events_away RENAME TO events");
    assert_eq!(
        reply.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), "internal");
}
