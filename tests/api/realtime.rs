//! The realtime edge through a raw WebSocket client: the Engine.IO / Socket.IO protocol
//! details, chat events, fan-out to the user's sockets, limits.

use std::time::Duration;

use futures_util::SinkExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};
use crate::sio::{Client, Frame, WAIT};
use crate::slow_llm::SlowLlm;

fn send(id: &str, text: &str) -> Value {
    json!({ "clientMessageId": id, "text": text })
}

fn names(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(n, _)| n.as_str()).collect()
}

#[tokio::test]
async fn polling_and_old_protocols_get_a_json_400() {
    let app = spawn_app().await;
    let polling = app
        .client
        .get(app.url("/socket.io/?EIO=4&transport=polling&t=abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(polling.status(), StatusCode::BAD_REQUEST);
    let body: Value = polling.json().await.unwrap();
    assert_eq!(body["error"]["code"], "validation_failed");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(r#"transports: ["websocket"]"#),
        "{message}"
    );

    let post = app
        .client
        .post(app.url("/socket.io/?EIO=4&transport=polling"))
        .body("40")
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), StatusCode::BAD_REQUEST);

    let v3 = app
        .client
        .get(app.url("/socket.io/?EIO=3&transport=websocket"))
        .send()
        .await
        .unwrap();
    assert_eq!(v3.status(), StatusCode::BAD_REQUEST);
    let body: Value = v3.json().await.unwrap();
    assert_eq!(body["error"]["details"]["EIO"], "must be 4");
}

#[tokio::test]
async fn the_handshake_follows_engine_io_4() {
    let app = spawn_app().await;
    let (mut client, open) = Client::open(&app).await;
    assert!(
        open["sid"].as_str().is_some_and(|s| !s.is_empty()),
        "{open}"
    );
    assert_eq!(open["upgrades"], json!([]));
    assert_eq!(open["pingInterval"], 25_000);
    assert_eq!(open["pingTimeout"], 20_000);
    assert_eq!(open["maxPayload"], 1_000_000);

    // Another namespace is refused without closing the connection.
    client.text(r#"40/admin,{"token":"dev:alice"}"#).await;
    let Frame::Text(refused) = client.frame().await else {
        panic!("closed")
    };
    assert_eq!(refused, r#"44/admin,{"message":"Invalid namespace"}"#);

    let answer = client.send_connect(json!({"token": "dev:alice"})).await;
    let connected: Value = serde_json::from_str(answer.strip_prefix("40").unwrap()).unwrap();
    assert!(connected["sid"].as_str().is_some(), "{answer}");

    // An Engine.IO ping from the client gets its pong.
    client.text("2probe").await;
    let Frame::Text(pong) = client.frame().await else {
        panic!("closed")
    };
    assert_eq!(pong, "3probe");
}

#[tokio::test]
async fn bad_or_missing_tokens_get_connect_error_and_close() {
    let app = spawn_app().await;
    for auth in [json!({"token": "nope"}), json!({}), json!({"token": 42})] {
        let (mut client, _) = Client::open(&app).await;
        let answer = client.send_connect(auth.clone()).await;
        assert_eq!(answer, r#"44{"message":"unauthenticated"}"#, "{auth}");
        client.closed().await;
    }
    // No auth object at all.
    let (mut client, _) = Client::open(&app).await;
    client.text("40").await;
    let Frame::Text(answer) = client.frame().await else {
        panic!("closed before CONNECT_ERROR")
    };
    assert_eq!(answer, r#"44{"message":"unauthenticated"}"#);
    client.closed().await;
}

#[tokio::test]
async fn a_chat_turn_streams_to_every_socket_of_the_user_and_no_one_else() {
    let app = spawn_app().await;
    let mut phone = Client::connect(&app, "alice").await;
    let mut laptop = Client::connect(&app, "alice").await;
    let mut bob = Client::connect(&app, "bob").await;

    let ack = phone
        .emit("chat:send", send("m1", "add a task buy milk tomorrow"))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let conversation = ack["conversationId"].as_str().unwrap().to_owned();
    let message_id = ack["messageId"].as_str().unwrap().to_owned();

    let on_phone = phone.events_until("chat:done").await;
    let seen = names(&on_phone);
    let messages_to_sender: Vec<_> = on_phone
        .iter()
        .filter(|(n, _)| n == "chat:message")
        .map(|(_, p)| p["message"]["role"].clone())
        .collect();
    assert_eq!(
        messages_to_sender,
        ["assistant"],
        "no echo to the sender: {seen:?}"
    );
    assert!(seen.contains(&"task:created"), "{seen:?}");
    assert!(seen.contains(&"chat:tool"), "{seen:?}");
    let first_delta = seen
        .iter()
        .position(|n| *n == "chat:delta")
        .expect("deltas");
    assert!(first_delta < seen.len() - 1, "deltas come before done");
    let streamed: String = on_phone
        .iter()
        .filter(|(n, _)| n == "chat:delta")
        .map(|(_, p)| p["text"].as_str().unwrap())
        .collect();
    let (_, done) = on_phone.last().unwrap();
    assert_eq!(done["conversationId"], conversation.as_str());
    assert_eq!(done["message"]["role"], "assistant");
    assert_eq!(done["message"]["content"], streamed.as_str());

    let on_laptop = laptop.events_until("chat:done").await;
    let (name, echo) = &on_laptop[0];
    assert_eq!(name, "chat:message");
    assert_eq!(echo["message"]["id"], message_id.as_str());
    assert_eq!(echo["message"]["role"], "user");
    let task = on_laptop
        .iter()
        .find(|(n, _)| n == "task:created")
        .map(|(_, p)| p)
        .expect("task:created on the other socket");
    assert!(task["task"]["title"].as_str().unwrap().contains("milk"));

    assert_eq!(bob.drain(Duration::from_millis(300)).await, []);
}

#[tokio::test]
async fn a_retry_with_the_same_client_message_id_starts_no_second_turn() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let first = socket
        .emit("chat:send", send("same", "list my tasks"))
        .await;
    let done = socket.event("chat:done").await;
    let mut other = Client::connect(&app, "alice").await;
    let again = socket
        .emit("chat:send", send("same", "list my tasks"))
        .await;
    assert_eq!(again["ok"], true);
    assert_eq!(again["messageId"], first["messageId"]);
    assert_eq!(again["conversationId"], first["conversationId"]);
    // The retrying socket gets the stored answer again; no turn runs, no one else hears.
    assert_eq!(
        socket.drain(Duration::from_millis(300)).await,
        [("chat:done".to_owned(), done)]
    );
    assert_eq!(other.drain(Duration::from_millis(100)).await, []);

    let conflict = socket.emit("chat:send", send("same", "other text")).await;
    assert_eq!(conflict["ok"], false);
    assert_eq!(conflict["error"]["code"], "conflict");

    let path = format!(
        "/v1/conversations/{}/messages",
        first["conversationId"].as_str().unwrap()
    );
    let messages = app.get(&path, "alice").await.body;
    let roles: Vec<_> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "assistant"]);
}

#[tokio::test]
async fn bad_payloads_get_ok_false_and_the_socket_stays_up() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let long = "x".repeat(8001);
    let cases = [
        ("chat:send", send("a", &long), "validation_failed"),
        ("chat:send", send("a", "   "), "validation_failed"),
        (
            "chat:send",
            send(&"i".repeat(65), "hi"),
            "validation_failed",
        ),
        ("chat:send", json!({"text": "no id"}), "validation_failed"),
        ("chat:send", json!("a string"), "validation_failed"),
        (
            "chat:send",
            json!({"clientMessageId": "a", "text": "hi", "extra": 1}),
            "validation_failed",
        ),
        (
            "chat:send",
            json!({"clientMessageId": "a", "text": "hi", "conversationId": "nope"}),
            "validation_failed",
        ),
        (
            "chat:send",
            json!({"clientMessageId": "a", "text": "hi", "conversationId": uuid::Uuid::now_v7()}),
            "not_found",
        ),
        ("chat:cancel", json!({}), "validation_failed"),
        ("chat:resume", json!([1]), "validation_failed"),
        ("chat:nonsense", json!({}), "unknown_event"),
    ];
    for (event, payload, code) in cases {
        let ack = socket.emit(event, payload.clone()).await;
        assert_eq!(ack["ok"], false, "{event} {payload}: {ack}");
        assert_eq!(ack["error"]["code"], code, "{event} {payload}: {ack}");
        assert!(ack["error"]["message"].as_str().is_some());
    }
    let long_ack = socket.emit("chat:send", send("a", &long)).await;
    assert_eq!(
        long_ack["error"]["details"]["text"],
        "must be at most 8000 characters"
    );

    // A binary event is refused, its attachment ignored.
    socket
        .text(r#"451-7["chat:send",{"_placeholder":true,"num":0}]"#)
        .await;
    socket
        .ws
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .unwrap();
    let Frame::Text(ack) = socket.frame().await else {
        panic!("closed")
    };
    assert!(
        ack.starts_with("437[") && ack.contains("validation_failed"),
        "{ack}"
    );

    let ok = socket
        .emit("chat:send", send("fine", "list my tasks"))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    socket.event("chat:done").await;
}

#[tokio::test]
async fn a_malformed_packet_or_a_frame_over_max_payload_closes_that_socket_only() {
    let app = spawn_app_with(|c| c.realtime.max_payload_bytes = 4096, Default::default()).await;
    let mut other = Client::connect(&app, "alice").await;

    let mut big = Client::connect(&app, "alice").await;
    big.text(format!(
        "42{}",
        json!(["chat:send", send("b", &"y".repeat(5000))])
    ))
    .await;
    big.closed().await;

    let mut garbled = Client::connect(&app, "alice").await;
    garbled.text("42[\"chat:send\",").await;
    garbled.closed().await;

    let ack = other.emit("chat:send", send("c", "list my tasks")).await;
    assert_eq!(ack["ok"], true);
    other.event("chat:done").await;
}

#[tokio::test]
async fn rest_changes_reach_every_socket_of_the_user() {
    let app = spawn_app().await;
    let mut one = Client::connect(&app, "alice").await;
    let mut two = Client::connect(&app, "alice").await;
    let mut bob = Client::connect(&app, "bob").await;
    let task = app
        .create_task("alice", json!({"title": "from rest"}))
        .await;
    let id = task["id"].as_str().unwrap();
    for socket in [&mut one, &mut two] {
        let created = socket.event("task:created").await;
        assert_eq!(created["task"], task);
    }
    app.delete(&format!("/v1/tasks/{id}"), "alice").await;
    for socket in [&mut one, &mut two] {
        assert_eq!(socket.event("task:deleted").await, json!({"id": id}));
    }
    let event = app
        .post(
            "/v1/events",
            "alice",
            json!({"title": "standup", "startAt": "2030-01-01T09:00:00Z", "endAt": "2030-01-01T09:15:00Z"}),
        )
        .await;
    assert_eq!(one.event("event:created").await["event"], event.body);
    assert_eq!(bob.drain(Duration::from_millis(300)).await, []);
}

#[tokio::test]
async fn a_silent_client_is_dropped_after_the_ping_timeout() {
    let app = spawn_app_with(
        |c| {
            c.realtime.ping_interval_secs = 1;
            c.realtime.ping_timeout_secs = 1;
        },
        Default::default(),
    )
    .await;
    let mut alive = Client::connect(&app, "alice").await;
    let mut silent = Client::connect(&app, "alice").await;
    silent.answer_pings = false;
    let started = std::time::Instant::now();
    tokio::join!(silent.closed(), alive.idle(Duration::from_secs(4)));
    assert!(started.elapsed() >= Duration::from_secs(1));
    // The one that answers pings is still served.
    let ack = alive.emit("chat:send", send("p", "list my tasks")).await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn a_socket_that_does_not_read_its_events_is_disconnected() {
    let app = spawn_app_with(|c| c.realtime.socket_queue = 16, Default::default()).await;
    let mut reader = Client::connect(&app, "alice").await;
    // Signed in, then never read from until the end: the TCP buffers fill, then its queue.
    let mut stalled = Client::connect_small(&app, "alice").await;
    // Over loopback the server's send buffer alone takes a few megabytes.
    let description = "x".repeat(9_900);
    let created = 800;
    for i in 0..created {
        app.create_task(
            "alice",
            json!({"title": format!("task {i}"), "description": description}),
        )
        .await;
        // The socket that reads keeps up and is served throughout.
        reader.event("task:created").await;
    }
    let mut delivered = 0;
    loop {
        match stalled.frame().await {
            Frame::Text(t) if t.starts_with(r#"42["task:created""#) => delivered += 1,
            Frame::Text(_) => {}
            Frame::Closed => break,
        }
    }
    assert!(
        delivered < created,
        "the stalled socket got all {delivered} events instead of being dropped"
    );
    // The user's other socket is still up.
    let ack = reader
        .emit("chat:send", send("after", "list my tasks"))
        .await;
    assert_eq!(ack["ok"], true);
}

#[tokio::test]
async fn limits_on_sockets_and_sends_per_user() {
    let app = spawn_app_with(
        |c| {
            c.realtime.max_sockets_per_user = 2;
            c.realtime.chat_sends_per_hour = 2;
        },
        Default::default(),
    )
    .await;
    let mut one = Client::connect(&app, "alice").await;
    let _two = Client::connect(&app, "alice").await;
    let (mut third, _) = Client::open(&app).await;
    let answer = third.send_connect(json!({"token": "dev:alice"})).await;
    assert_eq!(answer, r#"44{"message":"too many sockets for this user"}"#);
    // Another user is not affected.
    Client::connect(&app, "bob").await;

    for id in ["r1", "r2"] {
        let ack = one.emit("chat:send", send(id, "list my tasks")).await;
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let limited = one.emit("chat:send", send("r3", "list my tasks")).await;
    assert_eq!(limited["ok"], false);
    assert_eq!(limited["error"]["code"], "rate_limited");
    assert!(limited["error"]["retryAfter"].as_u64().unwrap() > 0);
    // The budget is the user's, whatever the edge: `POST /v1/chat` has used it up too.
    let over = app
        .post("/v1/chat", "alice", json!({"text": "list my tasks"}))
        .await;
    assert_eq!(over.status, StatusCode::TOO_MANY_REQUESTS, "{}", over.body);
    assert_eq!(over.body["error"]["code"], "rate_limited");
    let wait: u64 = over.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 1800, "Retry-After {wait}");
    let bob = app
        .post("/v1/chat", "bob", json!({"text": "list my tasks"}))
        .await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);
}

#[tokio::test]
async fn a_message_over_the_configured_length_is_refused_on_every_edge() {
    let app = spawn_app_with(|c| c.realtime.max_text_chars = 40, Default::default()).await;
    let long = "a".repeat(41);
    let mut socket = Client::connect(&app, "alice").await;
    let ack = socket.emit("chat:send", send("l1", &long)).await;
    assert_eq!(ack["error"]["code"], "validation_failed", "{ack}");
    assert_eq!(
        ack["error"]["details"]["text"],
        "must be at most 40 characters"
    );
    for accept in ["application/json", "text/event-stream"] {
        let reply = TestApp::send(
            app.client
                .post(app.url("/v1/chat"))
                .bearer_auth("dev:alice")
                .header("accept", accept)
                .json(&json!({ "text": long })),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{accept}: {}",
            reply.body
        );
        assert_eq!(
            reply.body["error"]["details"]["text"],
            "must be at most 40 characters"
        );
    }
    // Nothing was stored.
    let conversations = app.get("/v1/conversations", "alice").await;
    assert_eq!(
        conversations.body["items"],
        json!([]),
        "{}",
        conversations.body
    );
}

#[tokio::test]
async fn turns_in_one_conversation_run_in_order() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let first = socket
        .emit("chat:send", send("o1", "add a task alpha"))
        .await;
    let conversation = first["conversationId"].clone();
    let mut ids = vec![first["messageId"].clone()];
    for (i, title) in ["beta", "gamma", "delta"].iter().enumerate() {
        let ack = socket
            .emit(
                "chat:send",
                json!({"conversationId": conversation, "clientMessageId": format!("o{}", i + 2),
                       "text": format!("add a task {title}")}),
            )
            .await;
        ids.push(ack["messageId"].clone());
    }
    let mut created = Vec::new();
    for _ in 0..4 {
        let events = socket.events_until("chat:done").await;
        for (name, payload) in events {
            if name == "task:created" {
                created.push(payload["task"]["title"].as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(created.len(), 4, "{created:?}");
    for (title, expected) in created.iter().zip(["alpha", "beta", "gamma", "delta"]) {
        assert!(title.to_lowercase().contains(expected), "{created:?}");
    }
    // Messages are listed by when they were stored: the later user messages were stored while
    // the first turns ran, and the answers one after the other.
    let path = format!(
        "/v1/conversations/{}/messages",
        conversation.as_str().unwrap()
    );
    let messages = app.get(&path, "alice").await.body;
    let answers: Vec<_> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "assistant")
        .map(|m| {
            m["toolCalls"][0]["arguments"]["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
        })
        .collect();
    assert_eq!(answers, ["alpha", "beta", "gamma", "delta"], "{messages}");
    let users: Vec<_> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(users, ids);
}

#[tokio::test]
async fn a_socket_that_reconnects_mid_answer_resumes_it() {
    let llm = SlowLlm::start(&["Hel"], &["lo", " world"]).await;
    let app = llm.spawn_app(|_| {}).await;
    let mut first = Client::connect(&app, "alice").await;
    let ack = first.emit("chat:send", send("r", "say hello")).await;
    let conversation = ack["conversationId"].clone();
    let delta = first.event("chat:delta").await;
    assert_eq!(delta["text"], "Hel");
    drop(first);

    let mut second = Client::connect(&app, "alice").await;
    let resumed = second
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await;
    assert_eq!(resumed["ok"], true);
    assert_eq!(resumed["inFlight"], true, "{resumed}");
    assert_eq!(resumed["messageId"], delta["messageId"]);
    let mut text = resumed["text"].as_str().unwrap().to_owned();
    assert_eq!(text, "Hel");
    llm.release();
    let events = second.events_until("chat:done").await;
    for (name, payload) in &events {
        if name == "chat:delta" {
            text.push_str(payload["text"].as_str().unwrap());
        }
    }
    let done = &events.last().unwrap().1;
    assert_eq!(done["message"]["content"], "Hello world");
    assert_eq!(done["message"]["id"], delta["messageId"]);
    assert_eq!(text, "Hello world");

    let after = second
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await;
    assert_eq!(after, json!({"ok": true, "inFlight": false}));
}

#[tokio::test]
async fn a_turn_is_in_flight_before_its_first_token() {
    // The model streams nothing until released: the turn waits for its first token.
    let llm = SlowLlm::start(&[], &["Hi", " there"]).await;
    let app = llm.spawn_app(|_| {}).await;
    let mut sender = Client::connect(&app, "alice").await;
    let mut other = Client::connect(&app, "alice").await;
    let ack = sender.emit("chat:send", send("w", "say hi")).await;
    let conversation = ack["conversationId"].clone();
    other.event("chat:message").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while llm.requests() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the model was never called"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resumed = other
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await;
    assert_eq!(resumed["ok"], true, "{resumed}");
    assert_eq!(resumed["inFlight"], true, "{resumed}");
    assert_eq!(resumed["text"], "", "{resumed}");
    llm.release();
    let events = other.events_until("chat:done").await;
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert!(!names.contains(&"chat:started"), "internal: {names:?}");
    let done = &events.last().unwrap().1;
    // The id announced before the first token is the answer's.
    assert_eq!(done["message"]["id"], resumed["messageId"], "{events:?}");
    assert_eq!(done["message"]["content"], "Hi there");
    let after = other
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await;
    assert_eq!(after, json!({"ok": true, "inFlight": false}));
}

#[tokio::test]
async fn cancel_stops_the_turn_and_keeps_what_was_streamed() {
    let llm = SlowLlm::start(&["Hel"], &["lo"]).await;
    let app = llm.spawn_app(|_| {}).await;
    let mut socket = Client::connect(&app, "alice").await;
    let mut bob = Client::connect(&app, "bob").await;
    let ack = socket.emit("chat:send", send("c", "say hello")).await;
    let conversation = ack["conversationId"].clone();
    socket.event("chat:delta").await;

    // Another user cannot cancel it.
    let ok = bob
        .emit("chat:cancel", json!({"conversationId": conversation}))
        .await;
    assert_eq!(ok, json!({"ok": true}));
    let ok = socket
        .emit("chat:cancel", json!({"conversationId": conversation}))
        .await;
    assert_eq!(ok, json!({"ok": true}));
    let done = socket.event("chat:done").await;
    assert_eq!(done["message"]["content"], "Hel");
    assert_eq!(llm.requests(), 1, "a cancelled turn is not retried");

    let path = format!(
        "/v1/conversations/{}/messages",
        conversation.as_str().unwrap()
    );
    let messages = app.get(&path, "alice").await.body;
    assert_eq!(messages["items"][1]["content"], "Hel");
    assert_eq!(messages["items"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn chat_over_http_reaches_the_sockets_too() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let reply = app
        .post(
            "/v1/chat",
            "alice",
            json!({"text": "add a task water plants"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let events = socket.events_until("chat:done").await;
    let seen = names(&events);
    assert_eq!(seen[0], "chat:message", "{seen:?}");
    assert!(seen.contains(&"task:created"), "{seen:?}");
    assert_eq!(
        events.last().unwrap().1["message"],
        reply.body["assistantMessage"]
    );
}

/// `pixie serve` as a child process on a fresh database, with the slow model; returns the
/// child and its address. Its log goes to the test's output.
async fn serve_binary(
    llm: &SlowLlm,
    db: &crate::helpers::TestDatabase,
    grace_secs: u64,
) -> (tokio::process::Child, String) {
    crate::helpers::serve_binary(
        db,
        &[
            ("PIXIE__SERVER__SHUTDOWN_GRACE_SECS", grace_secs.to_string()),
            ("PIXIE__AI__PROVIDER", "openai".into()),
            ("PIXIE__AI__BASE_URL", llm.base_url.clone()),
            ("PIXIE__AI__MODEL", "mock".into()),
            ("PIXIE__AI__RECALL_LIMIT", "0".into()),
        ],
    )
    .await
}

async fn sign_in_at(addr: &str, user: &str) -> Client {
    let (mut client, _) = Client::open_at(addr).await;
    let answer = client
        .send_connect(json!({ "token": format!("dev:{user}") }))
        .await;
    assert!(answer.starts_with("40{"), "{answer}");
    client
}

/// After SIGTERM: the socket gets the rest of its answer, then a Socket.IO DISCONNECT, then
/// the connection closes, and the process exits 0. New connections are refused meanwhile.
async fn sigterm_mid_answer(grace_secs: u64, release: bool) -> String {
    let llm = SlowLlm::start(&["Hel"], &["lo"]).await;
    let db = tokio::task::spawn_blocking(crate::helpers::TestDatabase::migrated)
        .await
        .unwrap();
    let (mut child, addr) = serve_binary(&llm, &db, grace_secs).await;
    let mut socket = sign_in_at(&addr, "alice").await;
    socket.emit("chat:send", send("s", "say hello")).await;
    socket.event("chat:delta").await;

    let pid = child.id().expect("running") as i32;
    unsafe { libc::kill(pid, libc::SIGTERM) };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a new connection was accepted while stopping"
    );
    if release {
        llm.release();
    }
    let done = socket.event("chat:done").await;
    let Frame::Text(last) = socket.frame().await else {
        panic!("closed without a Socket.IO DISCONNECT")
    };
    assert_eq!(last, "41");
    socket.closed().await;
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the server exits in time")
        .unwrap();
    assert!(status.success(), "exit status {status}");
    done["message"]["content"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn sigterm_lets_the_turn_in_flight_finish() {
    assert_eq!(sigterm_mid_answer(20, true).await, "Hello");
}

#[tokio::test]
async fn sigterm_past_the_grace_period_stores_the_partial_answer() {
    assert_eq!(sigterm_mid_answer(1, false).await, "Hel");
}

/// Two instances on one database with the PostgreSQL fan-out, as behind a load balancer.
async fn two_instances(llm: Option<&SlowLlm>) -> (TestApp, TestApp) {
    let postgres = |c: &mut pixie::config::Config| {
        c.realtime.fanout = pixie::config::Fanout::Postgres;
    };
    let first = match llm {
        Some(llm) => llm.spawn_app(postgres).await,
        None => spawn_app_with(postgres, Default::default()).await,
    };
    let second = first.spawn_peer(postgres).await;
    (first, second)
}

#[tokio::test]
async fn changes_on_one_instance_reach_sockets_on_the_other() {
    let (one, two) = two_instances(None).await;
    let mut here = Client::connect(&one, "alice").await;
    let mut there = Client::connect(&two, "alice").await;
    let mut bob_there = Client::connect(&two, "bob").await;

    // A REST change through the first instance.
    let task = one
        .create_task("alice", json!({"title": "from instance one"}))
        .await;
    assert_eq!(there.event("task:created").await["task"], task);
    assert_eq!(here.event("task:created").await["task"], task);

    // A chat turn on the second instance, with an echo too large for a NOTIFY payload.
    let long = format!("add a task {}", "z".repeat(7_900));
    let ack = there.emit("chat:send", send("big", &long)).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let events = here.events_until("chat:done").await;
    let (name, echo) = &events[0];
    assert_eq!(name, "chat:message");
    assert_eq!(echo["message"]["content"], long.as_str());
    assert!(
        names(&events).contains(&"chat:delta"),
        "{:?}",
        names(&events)
    );
    there.event("chat:done").await;

    assert_eq!(bob_there.drain(Duration::from_millis(300)).await, []);
}

#[tokio::test]
async fn resume_and_cancel_work_across_instances() {
    let llm = SlowLlm::start(&["Hel"], &["lo"]).await;
    let (one, two) = two_instances(Some(&llm)).await;
    let mut sender = Client::connect(&one, "alice").await;
    // A laptop on the second instance shows when the first delta has got there (a resume
    // answers with what its instance has received).
    let mut laptop = Client::connect(&two, "alice").await;
    let ack = sender.emit("chat:send", send("x", "say hello")).await;
    let conversation = ack["conversationId"].clone();
    sender.event("chat:delta").await;
    assert_eq!(laptop.event("chat:delta").await["text"], "Hel");

    // The phone reconnects to the other instance mid-answer.
    let mut phone = Client::connect(&two, "alice").await;
    let resumed = phone
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await;
    assert_eq!(resumed["inFlight"], true, "{resumed}");
    assert_eq!(resumed["text"], "Hel");
    // And cancels the turn, which runs on the first instance.
    let ok = phone
        .emit("chat:cancel", json!({"conversationId": conversation}))
        .await;
    assert_eq!(ok["ok"], true);
    let done = phone.event("chat:done").await;
    assert_eq!(done["message"]["content"], "Hel");
    assert_eq!(sender.event("chat:done").await, done);
}

// ----- sessions the server ends ------------------------------------------------------------

/// Reads until `session:ended` with this reason, then expects the DISCONNECT and the close.
async fn ends_with(client: &mut Client, reason: &str) {
    let ended = client.event("session:ended").await;
    assert_eq!(ended["reason"], reason, "{ended}");
    assert!(ended["message"].is_string(), "{ended}");
    loop {
        match client.frame().await {
            Frame::Text(t) if t == "41" => break,
            Frame::Text(_) => {}
            Frame::Closed => panic!("closed before the DISCONNECT"),
        }
    }
    client.closed().await;
}

#[tokio::test]
async fn erasure_ends_the_users_sockets_and_turns_on_every_instance() {
    let llm = SlowLlm::start(&["Hel"], &["lo"]).await;
    let (one, two) = two_instances(Some(&llm)).await;
    let mut here = Client::connect(&one, "alice").await;
    let mut there = Client::connect(&two, "alice").await;
    let mut bob = Client::connect(&two, "bob").await;
    let ack = here.emit("chat:send", send("e1", "say hello")).await;
    assert_eq!(ack["ok"], true, "{ack}");
    here.event("chat:delta").await;
    assert_eq!(one.app_domain.turns().in_flight(), 1);

    assert_eq!(
        one.delete("/v1/me", "alice").await.status,
        StatusCode::NO_CONTENT
    );
    ends_with(&mut here, "user_erased").await;
    ends_with(&mut there, "user_erased").await;
    // The turn in flight was cancelled; nothing of the user came back.
    let deadline = tokio::time::Instant::now() + WAIT;
    while one.app_domain.turns().in_flight() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the turn was not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        one.count("SELECT count(*) FROM users WHERE id = 'alice'"),
        0
    );
    assert_eq!(
        one.count("SELECT count(*) FROM messages WHERE user_id = 'alice'"),
        0
    );
    // Another user's socket is untouched.
    let ack = bob
        .emit("chat:send", send("b1", "add a task buy milk"))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

#[tokio::test]
async fn a_write_racing_the_erasure_is_refused_and_ends_the_session() {
    let one = spawn_app().await;
    // Local fan-out on both: the second instance never hears of the erasure, as when the
    // notice is still on its way.
    let two = one.spawn_peer(|_| {}).await;
    let mut there = Client::connect(&two, "alice").await;
    assert_eq!(
        one.delete("/v1/me", "alice").await.status,
        StatusCode::NO_CONTENT
    );

    let ack = there
        .emit("chat:send", send("late", "add a task buy milk tomorrow"))
        .await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "unauthenticated", "{ack}");
    ends_with(&mut there, "user_erased").await;
    // A REST write on that instance (which still remembers the user as signed in) too.
    let task = two
        .post("/v1/tasks", "alice", json!({"title": "late"}))
        .await;
    assert_eq!(task.status, StatusCode::UNAUTHORIZED, "{}", task.body);
    assert_eq!(
        one.count("SELECT count(*) FROM users WHERE id = 'alice'"),
        0
    );
    assert_eq!(one.count("SELECT count(*) FROM tasks"), 0);
    assert_eq!(one.count("SELECT count(*) FROM conversations"), 0);
}

/// A socket signed in with a Clerk token that is accepted for `left` more seconds (the
/// token's `exp` is past, within the leeway of 60 s).
async fn socket_expiring_in(app: &TestApp, user: &str, left: i64) -> Client {
    let mut short = crate::auth::claims(user);
    short["exp"] = json!(crate::auth::now() - 60 + left);
    let token = crate::auth::sign(crate::auth::KEY_1, "k", &short);
    let (mut socket, _) = Client::open(app).await;
    let answer = socket.send_connect(json!({ "token": token })).await;
    assert!(answer.starts_with("40{"), "{answer}");
    socket
}

#[tokio::test]
async fn a_socket_ends_when_its_token_expires() {
    let app = crate::auth::pem_app().await;
    let mut socket = socket_expiring_in(&app, "user_short", 2).await;
    ends_with(&mut socket, "token_expired").await;
}

#[tokio::test]
async fn a_fresh_token_on_the_socket_keeps_it_open() {
    let app = crate::auth::pem_app().await;
    let mut socket = socket_expiring_in(&app, "user_refresh", 2).await;
    let key = crate::auth::KEY_1;
    let other = crate::auth::sign(key, "k", &crate::auth::claims("user_other"));
    let refused = socket.emit("auth:refresh", json!({ "token": other })).await;
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["code"], "unauthenticated");
    let garbage = socket
        .emit("auth:refresh", json!({ "token": "not.a.jwt" }))
        .await;
    assert_eq!(garbage["error"]["code"], "unauthenticated", "{garbage}");

    let fresh = crate::auth::sign(key, "k", &crate::auth::claims("user_refresh"));
    let ack = socket.emit("auth:refresh", json!({ "token": fresh })).await;
    assert_eq!(ack["ok"], true, "{ack}");
    assert!(ack["expiresAt"].is_string(), "{ack}");
    // Past the first token's end, the socket serves on.
    socket.idle(Duration::from_secs(4)).await;
    let sent = socket.emit("chat:send", send("r1", "help")).await;
    assert_eq!(sent["ok"], true, "{sent}");
}

#[tokio::test]
async fn a_payload_with_a_repeated_key_is_refused_like_a_rest_body() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;
    let ack = socket
        .emit_raw(
            r#"["chat:send",{"clientMessageId":"d1","text":"add a task a","text":"add a task b"}]"#,
        )
        .await;
    assert_eq!(ack["ok"], false, "{ack}");
    assert_eq!(ack["error"]["code"], "validation_failed");
    assert_eq!(ack["error"]["details"]["text"], "is given more than once");
    // As REST says of a body with a repeated field.
    let rest = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth("dev:alice")
            .header("content-type", "application/json")
            .body(r#"{"title": "a", "title": "b"}"#),
    )
    .await;
    assert_eq!(rest.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        rest.body["error"]["details"]["title"],
        "is given more than once"
    );
    // Nothing was stored, and the socket still serves.
    let ok = socket.emit("chat:send", send("d2", "help")).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(app.count("SELECT count(*) FROM tasks"), 0);
}

/// A turn's events up to its first terminal one (`chat:done` or `chat:error`), and then
/// what else comes within a moment: there must be no second terminal event.
async fn turn_events(socket: &mut Client) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    loop {
        let event = socket.next_event().await;
        let terminal = matches!(event.0.as_str(), "chat:done" | "chat:error");
        events.push(event);
        if terminal {
            break;
        }
    }
    events.extend(socket.drain(Duration::from_millis(300)).await);
    let terminals: Vec<&str> = names(&events)
        .into_iter()
        .filter(|n| matches!(*n, "chat:done" | "chat:error"))
        .collect();
    assert_eq!(terminals.len(), 1, "one terminal event: {events:?}");
    events
}

async fn resume(socket: &mut Client, conversation: &Value) -> Value {
    socket
        .emit("chat:resume", json!({"conversationId": conversation}))
        .await
}

#[tokio::test]
async fn a_turn_ends_with_one_terminal_event_whatever_fails() {
    let app = spawn_app().await;
    let mut socket = Client::connect(&app, "alice").await;

    // Gathering the turn's context fails (its upcoming events cannot be read).
    app.execute("ALTER TABLE events RENAME TO events_away");
    let ack = socket
        .emit("chat:send", send("f1", "what is on my calendar"))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let conversation = ack["conversationId"].clone();
    let events = turn_events(&mut socket).await;
    let (name, error) = events
        .iter()
        .find(|(n, _)| n.starts_with("chat:e"))
        .unwrap();
    assert_eq!(name, "chat:error", "{events:?}");
    assert_eq!(error["code"], "internal", "{error}");
    assert_eq!(error["conversationId"], conversation);
    assert_eq!(error["clientMessageId"], "f1");
    assert!(error["messageId"].is_string(), "{error}");
    app.execute("ALTER TABLE events_away RENAME TO events");
    assert_eq!(
        resume(&mut socket, &conversation).await,
        json!({"ok": true, "inFlight": false})
    );

    // Storing the answer fails, after the model ran a tool.
    app.execute(
        "CREATE FUNCTION refuse_answers() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.role = 'assistant' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
    );
    app.execute(
        "CREATE TRIGGER refuse_answers BEFORE INSERT ON messages
         FOR EACH ROW EXECUTE FUNCTION refuse_answers()",
    );
    let ack = socket
        .emit(
            "chat:send",
            json!({"conversationId": conversation, "clientMessageId": "f2",
                   "text": "add a task to water the plants"}),
        )
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let events = turn_events(&mut socket).await;
    assert!(names(&events).contains(&"chat:tool"), "{events:?}");
    assert_eq!(names(&events).last(), Some(&"chat:error"), "{events:?}");
    app.execute("DROP TRIGGER refuse_answers ON messages");
    assert_eq!(
        resume(&mut socket, &conversation).await,
        json!({"ok": true, "inFlight": false})
    );

    // Nothing of the failed turns is left holding the conversation: the next is answered.
    let ack = socket
        .emit(
            "chat:send",
            json!({"conversationId": conversation, "clientMessageId": "f3",
                   "text": "list my tasks"}),
        )
        .await;
    let events = turn_events(&mut socket).await;
    assert_eq!(names(&events).last(), Some(&"chat:done"), "{events:?}");
    assert_eq!(
        events.last().unwrap().1["conversationId"],
        ack["conversationId"]
    );

    // Every user message is stored, and the one answer.
    let path = format!(
        "/v1/conversations/{}/messages",
        conversation.as_str().unwrap()
    );
    let messages = app.get(&path, "alice").await.body;
    let roles: Vec<&str> = messages["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, ["user", "user", "user", "assistant"], "{messages}");
}

#[tokio::test]
async fn a_queued_turn_is_in_flight_and_resume_reports_the_one_running() {
    let llm = SlowLlm::start(&[], &["Hi"]).await;
    let app = llm.spawn_app(|_| {}).await;
    let mut socket = Client::connect(&app, "alice").await;
    let first = socket.emit("chat:send", send("q1", "say hi")).await;
    let conversation = first["conversationId"].clone();
    let second = socket
        .emit(
            "chat:send",
            json!({"conversationId": conversation, "clientMessageId": "q2", "text": "again"}),
        )
        .await;
    assert_eq!(second["ok"], true, "{second}");
    let running = resume(&mut socket, &conversation).await;
    assert_eq!(running["inFlight"], true, "{running}");
    assert_eq!(running["text"], "", "{running}");
    llm.release();
    let done = socket.event("chat:done").await;
    assert_eq!(done["message"]["id"], running["messageId"], "{done}");
    let next = socket.event("chat:done").await;
    assert_ne!(next["message"]["id"], done["message"]["id"]);
    assert_eq!(
        resume(&mut socket, &conversation).await,
        json!({"ok": true, "inFlight": false})
    );
}
