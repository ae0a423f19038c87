//! Contract-wide behaviour: error bodies, request ids, limits, health.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = TestApp::send(app.client.get(app.url("/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok"}));
    let ready = TestApp::send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["database"], "ok");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = spawn_app().await;
    let generated = TestApp::send(app.client.get(app.url("/healthz"))).await;
    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert!(id.len() >= 16);
    let echoed = TestApp::send(
        app.client
            .get(app.url("/v1/tasks"))
            .header("x-request-id", "client-chosen-42"),
    )
    .await;
    assert_eq!(echoed.status, StatusCode::UNAUTHORIZED);
    assert_eq!(echoed.headers["x-request-id"], "client-chosen-42");
}

#[tokio::test]
async fn router_and_extractor_errors_have_json_bodies() {
    let app = spawn_app().await;
    let nowhere = app.get("/v1/nowhere", "alice").await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.error_code(), "not_found");

    let wrong_method = TestApp::send(
        app.client
            .put(app.url("/v1/tasks"))
            .bearer_auth("dev:alice"),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(wrong_method.body["error"]["message"].is_string());

    let bad_id = app.get("/v1/tasks/not-a-uuid", "alice").await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert!(bad_id.body["error"]["details"]["id"].is_string());

    let syntax = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth("dev:alice")
            .header("content-type", "application/json")
            .body("{\"title\": "),
    )
    .await;
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
    assert_eq!(syntax.error_code(), "invalid_json");

    let not_json = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth("dev:alice")
            .header("content-type", "text/plain")
            .body("{\"title\": \"x\"}"),
    )
    .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json.error_code(), "invalid_json");

    let array = app.post("/v1/tasks", "alice", json!(["title"])).await;
    assert_eq!(array.status, StatusCode::BAD_REQUEST);
    assert_eq!(array.error_code(), "validation_failed");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_with_413() {
    let app = spawn_app_with(|c| c.server.max_body_bytes = 4096, Default::default()).await;
    let big = json!({"title": "x", "description": "d".repeat(5000)});
    let reply = app.post("/v1/tasks", "alice", big).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(reply.error_code(), "payload_too_large");
    // Also when the client streams without announcing the length.
    let stream =
        futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1024])));
    let chunked = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth("dev:alice")
            .header("content-type", "application/json")
            .body(reqwest::Body::wrap_stream(stream)),
    )
    .await;
    assert_eq!(chunked.status, StatusCode::PAYLOAD_TOO_LARGE);
    // Nothing was stored.
    assert_eq!(app.get("/v1/tasks", "alice").await.body["items"], json!([]));
}

#[tokio::test]
async fn a_dead_database_is_503_with_retry_after_and_readyz_says_so() {
    let app = spawn_app_with(
        |c| {
            c.database.acquire_timeout_secs = 1;
        },
        Default::default(),
    )
    .await;
    app.create_task("alice", json!({"title": "before"})).await;
    app.kill_database_connections_and_block();
    let reply = app
        .post("/v1/tasks", "carol", json!({"title": "during"}))
        .await;
    assert_eq!(
        reply.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), "unavailable");
    assert!(reply.headers.contains_key("retry-after"));
    let ready = TestApp::send(app.client.get(app.url("/readyz"))).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["database"], "down");
}

#[tokio::test]
async fn metrics_count_requests_by_route_pattern() {
    let app = spawn_app().await;
    let task = app.create_task("alice", json!({"title": "t"})).await;
    app.get(
        &format!("/v1/tasks/{}", task["id"].as_str().unwrap()),
        "alice",
    )
    .await;
    app.get("/v1/tasks/not-a-uuid", "alice").await;
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"pixie_http_requests_total{method="POST",route="/v1/tasks",status="201"} 1"#
        ),
        "{text}"
    );
    assert!(text.contains(
        r#"pixie_http_requests_total{method="GET",route="/v1/tasks/{id}",status="200"} 1"#
    ));
    assert!(text.contains(
        r#"pixie_http_requests_total{method="GET",route="/v1/tasks/{id}",status="400"} 1"#
    ));
    // Raw paths never become labels.
    assert!(!text.contains(task["id"].as_str().unwrap()));
    assert!(text.contains("pixie_http_request_duration_seconds_bucket"));
}

/// The routes the server has, as (method, path template).
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/v1/me"),
    ("patch", "/v1/me"),
    ("delete", "/v1/me"),
    ("get", "/v1/tasks"),
    ("post", "/v1/tasks"),
    ("get", "/v1/tasks/{id}"),
    ("patch", "/v1/tasks/{id}"),
    ("delete", "/v1/tasks/{id}"),
    ("get", "/v1/reminders"),
    ("post", "/v1/reminders"),
    ("get", "/v1/reminders/{id}"),
    ("patch", "/v1/reminders/{id}"),
    ("delete", "/v1/reminders/{id}"),
    ("get", "/v1/push/vapid-public-key"),
    ("get", "/v1/push/subscriptions"),
    ("post", "/v1/push/subscriptions"),
    ("delete", "/v1/push/subscriptions/{id}"),
    ("get", "/v1/events"),
    ("post", "/v1/events"),
    ("get", "/v1/events/{id}"),
    ("patch", "/v1/events/{id}"),
    ("delete", "/v1/events/{id}"),
    ("get", "/v1/memories"),
    ("post", "/v1/memories"),
    ("delete", "/v1/memories/{id}"),
    ("get", "/v1/conversations"),
    ("post", "/v1/conversations"),
    ("delete", "/v1/conversations/{id}"),
    ("get", "/v1/conversations/{id}/messages"),
    ("post", "/v1/chat"),
    ("get", "/v1/calendar.ics"),
    ("post", "/v1/calendar/feed"),
    ("delete", "/v1/calendar/feed"),
    ("post", "/v1/calendar/import"),
    ("get", "/ics/{token}.ics"),
    ("get", "/v1/search"),
    ("post", "/webhooks/clerk"),
];

#[tokio::test]
async fn the_openapi_document_describes_exactly_the_routes_served() {
    let app = spawn_app().await;
    let doc = TestApp::send(app.client.get(app.url("/openapi.json"))).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    let mut documented: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    documented.sort();
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    assert_eq!(documented, expected);
    // Every documented route exists on the server (no 405, no "no such route").
    for (method, path) in ROUTES {
        let url = app.url(&path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let reply = TestApp::send(
            app.client
                .request(method.clone(), url)
                .bearer_auth("dev:alice")
                .header("content-type", "application/json")
                .body("{}"),
        )
        .await;
        assert_ne!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        if reply.status == StatusCode::NOT_FOUND {
            assert_ne!(
                reply.body["error"]["message"], "no such route",
                "{method} {path}"
            );
        }
    }
    // Another method on a documented path: 405, with the document's methods in Allow.
    for (path, ops) in paths {
        let url = app.url(&path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
        for method in [reqwest::Method::PUT, reqwest::Method::TRACE] {
            let reply = TestApp::send(app.client.request(method.clone(), &url)).await;
            assert_eq!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(reply.error_code(), "method_not_allowed", "{method} {path}");
            let mut allow: Vec<String> = reply.headers["allow"]
                .to_str()
                .unwrap()
                .split(',')
                .map(|m| m.trim().to_lowercase())
                .collect();
            allow.sort();
            let mut declared: Vec<String> = ops.as_object().unwrap().keys().cloned().collect();
            declared.sort();
            assert_eq!(allow, declared, "Allow of {path}");
        }
    }
    // Operation ids are unique.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().expect("an operationId"))
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationIds");
    // Every schema reference resolves.
    let text = doc.body.to_string();
    for part in text.split("\"#/components/schemas/").skip(1) {
        let name = part.split('"').next().unwrap();
        assert!(
            doc.body["components"]["schemas"][name].is_object(),
            "missing schema {name}"
        );
    }
}

/// One series of the metrics text, by its name and labels as written; 0 when absent.
fn series(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_cover_turns_tools_the_model_recall_the_store_sockets_and_the_pool() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message as Ws;

    let app = spawn_app().await;
    let user = "metrics_9f2c1a";
    let turn = app
        .post(
            "/v1/chat",
            user,
            json!({"text": "add a task to water the plants tomorrow"}),
        )
        .await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.body);
    let found = app.get("/v1/search?q=plants", user).await;
    assert_eq!(found.status, StatusCode::OK);
    // A socket signed in while the metrics are read.
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", app.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let open = ws.next().await.unwrap().unwrap();
    assert!(open.to_text().unwrap().starts_with('0'));
    ws.send(Ws::text(format!(r#"40{{"token":"dev:{user}"}}"#)))
        .await
        .unwrap();
    let connected = ws.next().await.unwrap().unwrap();
    assert!(
        connected.to_text().unwrap().starts_with("40"),
        "{connected}"
    );

    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let at_least = |series_name: &str, min: f64| {
        let value = series(&text, series_name);
        assert!(
            value >= min,
            "{series_name} = {value}, expected ≥ {min}\n{text}"
        );
    };
    at_least(
        r#"pixie_chat_turns_total{outcome="answered",code="none"}"#,
        1.0,
    );
    at_least(
        r#"pixie_tool_calls_total{tool="create_task",status="ok"}"#,
        1.0,
    );
    at_least(
        r#"pixie_llm_request_duration_seconds_count{provider="offline",model="offline"}"#,
        1.0,
    );
    at_least(
        r#"pixie_llm_time_to_first_token_seconds_count{provider="offline",model="offline"}"#,
        1.0,
    );
    at_least(
        r#"pixie_llm_tokens_total{provider="offline",model="offline",kind="input"}"#,
        1.0,
    );
    at_least(
        r#"pixie_embedding_duration_seconds_count{embedder="hashed"}"#,
        1.0,
    );
    at_least(
        r#"pixie_vector_store_duration_seconds_count{store="edge",operation="search"}"#,
        1.0,
    );
    for leg in ["meaning", "words", "all"] {
        at_least(
            &format!(r#"pixie_search_duration_seconds_count{{leg="{leg}"}}"#),
            1.0,
        );
    }
    assert_eq!(series(&text, "pixie_sockets_open"), 1.0, "{text}");
    at_least("pixie_db_pool_connections", 1.0);
    for gauge in [
        "pixie_db_pool_in_use",
        "pixie_db_pool_waiting",
        "pixie_outbox_backlog",
        "pixie_outbox_oldest_age_seconds",
    ] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{gauge} "))),
            "{gauge} missing\n{text}"
        );
    }
    // Nothing of the user, the conversation or the text becomes a label.
    let conversation = turn.body["conversationId"].as_str().unwrap();
    for private in [user, conversation, "water", "plants"] {
        assert!(!text.contains(private), "{private} in the metrics");
    }
}
