//! `/mcp`: the assistant's tools for other AI clients, driven by the official MCP Python SDK
//! (tests/mcp/client.py) and, for what the SDK hides (status codes, sessions), by raw HTTP.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, python, spawn_app, spawn_app_with, spawn_app_without_indexer};
use crate::sio::Client;

/// Runs the SDK client as `user` (none: "") with these tool calls; `mode` is the SDK's
/// connect mode.
pub(crate) async fn mcp_client(app: &TestApp, user: &str, mode: &str, calls: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
    let mut child = tokio::process::Command::new(python())
        .args([script, &app.url("/mcp"), &format!("dev:{user}"), mode])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    let mut stdin = child.stdin.take().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, calls.to_string().as_bytes())
        .await
        .unwrap();
    drop(stdin);
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the MCP client finishes within a minute")
        .unwrap();
    assert!(
        out.status.success(),
        "tests/mcp/client.py failed (run `.venv/bin/pip install -r tests/mcp/requirements.txt`, \
         or set PIXIE_TEST_PYTHON):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

pub(crate) fn result(out: &Value, call: usize) -> &Value {
    let call = &out["calls"][call];
    assert!(call.get("result").is_some(), "a tool result: {call}");
    &call["result"]
}

fn titles(app_reply: &Value) -> Vec<String> {
    app_reply["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["title"].as_str().unwrap().to_owned())
        .collect()
}

async fn the_sdk_uses_the_assistants_tools(mode: &str, expected_version: &str) {
    // Without the indexer, the outbox keeps what the tool wrote.
    let app = spawn_app_without_indexer().await;
    let mut socket = Client::connect(&app, "alice").await;
    let out = mcp_client(
        &app,
        "alice",
        mode,
        json!([
            { "name": "create_task", "arguments": { "title": "Buy oat milk", "priority": "high" } },
            { "name": "create_task", "arguments": { "priority": "high" } },
            { "name": "create_task", "arguments": { "title": "Late", "due_at": "not a time" } },
            { "name": "format_disk", "arguments": {} },
            { "name": "list_tasks", "arguments": {} },
        ]),
    )
    .await;
    assert_eq!(out["protocolVersion"], expected_version, "{out}");

    // The assistant's tools, with their names, descriptions and schemas.
    let specs = pixie::ai::tools::all();
    let listed = out["tools"].as_array().unwrap();
    assert_eq!(listed.len(), specs.len(), "{out}");
    for (tool, spec) in listed.iter().zip(&specs) {
        assert_eq!(tool["name"], spec.name);
        assert_eq!(tool["description"], spec.description);
        assert_eq!(tool["inputSchema"], spec.parameters, "{}", spec.name);
    }

    let created = result(&out, 0);
    assert_eq!(created["isError"], false, "{created}");
    let task = &created["structuredContent"]["task"];
    assert_eq!(task["title"], "Buy oat milk", "{created}");
    assert_eq!(task["priority"], "high");
    let id = task["id"].as_str().unwrap();

    // The same write as REST's, seen by REST and by the user's sockets.
    let listed = app.get("/v1/tasks", "alice").await;
    assert_eq!(titles(&listed.body), ["Buy oat milk"], "{}", listed.body);
    let event = socket.event("task:created").await;
    assert_eq!(event["task"]["id"], id, "{event}");
    assert_eq!(
        app.outbox(),
        [("task".to_owned(), "upsert".to_owned())],
        "the write is in the outbox"
    );

    // Refusals are tool results the model can read, with the assistant's codes.
    for (call, field) in [(1, "title"), (2, "due_at")] {
        let refused = result(&out, call);
        assert_eq!(refused["isError"], true, "{refused}");
        let error = &refused["structuredContent"]["error"];
        assert_eq!(error["code"], "validation_failed", "{refused}");
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "names {field}: {refused}"
        );
    }
    // An unknown tool is a protocol error (Invalid params).
    let unknown = &out["calls"][3];
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("format_disk"),
        "{unknown}"
    );
    let listed = result(&out, 4);
    assert_eq!(listed["isError"], false, "{listed}");
    assert_eq!(
        listed["structuredContent"]["tasks"][0]["id"], id,
        "{listed}"
    );

    // Another user sees and changes nothing of alice's.
    let out = mcp_client(
        &app,
        "bob",
        mode,
        json!([
            { "name": "list_tasks", "arguments": {} },
            { "name": "complete_task", "arguments": { "id": id } },
            { "name": "delete_task", "arguments": { "title": "Buy oat milk" } },
            { "name": "search_memory", "arguments": { "query": "oat milk" } },
        ]),
    )
    .await;
    let listed = result(&out, 0);
    assert_eq!(listed["structuredContent"]["tasks"], json!([]), "{listed}");
    for call in [1, 2] {
        let refused = result(&out, call);
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(
            refused["structuredContent"]["error"]["code"], "not_found",
            "{refused}"
        );
    }
    let searched = result(&out, 3).to_string();
    assert!(!searched.contains("oat milk"), "{searched}");
    let task = app.get(&format!("/v1/tasks/{id}"), "alice").await;
    // Without a token, the SDK cannot even connect.
    let out = mcp_client(&app, "", mode, json!([])).await;
    assert!(out["refused"].is_string(), "{out}");
    let statuses = out["statuses"].as_array().unwrap();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| s == 401),
        "every request was refused with 401: {out}"
    );
    assert_eq!(task.body["status"], "pending", "{}", task.body);
}

#[tokio::test]
async fn an_mcp_client_of_the_session_era_uses_the_tools_as_its_user() {
    the_sdk_uses_the_assistants_tools("legacy", "2025-11-25").await;
}

#[tokio::test]
async fn an_mcp_client_of_the_current_protocol_uses_the_tools_as_its_user() {
    the_sdk_uses_the_assistants_tools("auto", "2026-07-28").await;
}

const INITIALIZE: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{
    "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}"#;

fn mcp_request(
    app: &TestApp,
    token: Option<&str>,
    session: Option<&str>,
) -> reqwest::RequestBuilder {
    let mut req = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("content-type", "application/json");
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(session) = session {
        req = req
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25");
    }
    req
}

/// Opens a session as `user`: its id.
async fn open_session(app: &TestApp, user: &str) -> Result<String, StatusCode> {
    let reply =
        TestApp::send(mcp_request(app, Some(&format!("dev:{user}")), None).body(INITIALIZE)).await;
    if reply.status != StatusCode::OK {
        return Err(reply.status);
    }
    Ok(reply.headers["mcp-session-id"].to_str().unwrap().to_owned())
}

async fn list_tools_status(app: &TestApp, user: &str, session: &str) -> StatusCode {
    let initialized = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let token = format!("dev:{user}");
    let reply =
        TestApp::send(mcp_request(app, Some(&token), Some(session)).body(initialized)).await;
    if reply.status != StatusCode::ACCEPTED {
        return reply.status;
    }
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    TestApp::send(mcp_request(app, Some(&token), Some(session)).body(list))
        .await
        .status
}

#[tokio::test]
async fn mcp_requires_a_token_and_keeps_sessions_to_their_user() {
    let app = spawn_app().await;
    for token in [None, Some("dev:"), Some("not a token")] {
        let reply = TestApp::send(mcp_request(&app, token, None).body(INITIALIZE)).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{token:?}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "unauthenticated");
        assert!(
            reply.headers.contains_key("www-authenticate"),
            "{:?}",
            reply.headers
        );
    }
    let session = open_session(&app, "alice").await.unwrap();
    assert_eq!(
        list_tools_status(&app, "alice", &session).await,
        StatusCode::OK
    );
    // Bob holding alice's session id is told what a made-up id is told.
    assert_eq!(
        list_tools_status(&app, "bob", &session).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        list_tools_status(&app, "bob", "made-up").await,
        StatusCode::NOT_FOUND
    );
    // Nor can bob end it.
    let ended = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth("dev:bob")
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        list_tools_status(&app, "alice", &session).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn mcp_sessions_are_bounded_per_user_in_all_and_in_time() {
    let app = spawn_app_with(
        |c| {
            c.mcp.max_sessions = 3;
            c.mcp.max_sessions_per_user = 2;
            c.mcp.session_max_secs = 3;
        },
        Default::default(),
    )
    .await;
    let first = open_session(&app, "alice").await.unwrap();
    let second = open_session(&app, "alice").await.unwrap();
    assert_ne!(first, second);
    let refused = TestApp::send(mcp_request(&app, Some("dev:alice"), None).body(INITIALIZE)).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        refused.body
    );
    assert_eq!(refused.error_code(), "rate_limited");
    assert!(refused.headers.contains_key("retry-after"));
    open_session(&app, "bob").await.unwrap();
    assert_eq!(
        open_session(&app, "carol").await,
        Err(StatusCode::SERVICE_UNAVAILABLE),
        "the server's bound"
    );

    // Ending a session frees its place.
    let ended = app
        .client
        .delete(app.url("/mcp"))
        .bearer_auth("dev:alice")
        .header("mcp-session-id", &first)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert!(ended.status().is_success(), "{}", ended.status());
    assert_eq!(
        list_tools_status(&app, "alice", &first).await,
        StatusCode::NOT_FOUND
    );
    let third = open_session(&app, "alice").await.unwrap();

    // No session outlives session_max_secs, in use or not, and its place is freed.
    assert_eq!(
        list_tools_status(&app, "alice", &third).await,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        list_tools_status(&app, "alice", &third).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        list_tools_status(&app, "alice", &second).await,
        StatusCode::NOT_FOUND
    );
    open_session(&app, "carol").await.unwrap();
}

#[tokio::test]
async fn mcp_idle_sessions_close() {
    let app = spawn_app_with(|c| c.mcp.session_idle_secs = 2, Default::default()).await;
    let used = open_session(&app, "alice").await.unwrap();
    let idle = open_session(&app, "alice").await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(
            list_tools_status(&app, "alice", &used).await,
            StatusCode::OK
        );
    }
    assert_eq!(
        list_tools_status(&app, "alice", &idle).await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn mcp_can_be_switched_off() {
    let app = spawn_app_with(|c| c.mcp.enabled = false, Default::default()).await;
    let reply = TestApp::send(mcp_request(&app, Some("dev:alice"), None).body(INITIALIZE)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(reply.error_code(), "not_found");
}
