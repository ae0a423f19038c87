//! Provider faults, end to end: the real binary, a socket client, and a local model server
//! speaking OpenAI's streaming wire format that misbehaves on cue (429 with `retry-after`,
//! 500 and 529, a reset mid-stream, a stream without its end, a hang, bad tool arguments, an
//! unknown tool, tool calls forever) while its embeddings endpoint fails throughout. Every
//! turn must end, in bounded time, in `chat:done` or a clear `chat:error`, with the user's
//! message stored once, and the process must neither panic nor die.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{TestDatabase, read_http_request, serve_binary_logging, temp_dir};
use crate::sio::Client;

/// What the model server did, per scenario: requests seen and faults injected.
#[derive(Default)]
struct Tally {
    requests: HashMap<String, usize>,
    faults: usize,
    embedding_failures: usize,
}

type Shared = Arc<Mutex<Tally>>;

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 1, "model": "mock",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    });
    format!("data: {chunk}\n\n")
}

fn tool_call(name: &str, arguments: &str) -> Vec<String> {
    vec![
        chunk(
            json!({ "role": "assistant", "tool_calls": [{ "index": 0, "id": "call_1", "type": "function",
                    "function": { "name": name, "arguments": arguments } }] }),
            None,
        ),
        chunk(json!({}), Some("tool_calls")),
        "data: [DONE]\n\n".to_owned(),
    ]
}

fn answer(text: &str) -> Vec<String> {
    vec![
        chunk(json!({ "role": "assistant", "content": text }), None),
        chunk(json!({}), Some("stop")),
        "data: [DONE]\n\n".to_owned(),
    ]
}

async fn status(stream: &mut TcpStream, code: u16, extra: &str) {
    let body = r#"{"error":{"message":"injected fault","type":"server_error"}}"#;
    let head = format!(
        "HTTP/1.1 {code} Fault\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
}

/// Streams `events` as server-sent events; `end` = false leaves the body unterminated.
async fn stream_events(stream: &mut TcpStream, events: &[String], end: bool) -> bool {
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return false;
    }
    for data in events {
        let framed = format!("{:x}\r\n{data}\r\n", data.len());
        if stream.write_all(framed.as_bytes()).await.is_err() {
            return false;
        }
    }
    if end {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
    stream.flush().await.is_ok()
}

/// The scenario named in the request's last user message (`fault:<name>`), and whether the
/// request carries a tool result (a later round of the same turn).
fn scenario(body: &[u8]) -> (String, bool) {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let tool_round = messages.last().is_some_and(|m| m["role"] == "tool");
    let name = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .and_then(|text| text.split("fault:").nth(1))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
        .unwrap_or_default();
    (name, tool_round)
}

async fn serve(mut stream: TcpStream, tally: Shared) {
    let Some((head, body)) = read_http_request(&mut stream).await else {
        return;
    };
    if head.starts_with("post /v1/embeddings") {
        tally.lock().unwrap().embedding_failures += 1;
        return status(&mut stream, 500, "").await;
    }
    let (name, tool_round) = scenario(&body);
    let attempt = {
        let mut tally = tally.lock().unwrap();
        let seen = tally.requests.entry(name.clone()).or_default();
        *seen += 1;
        *seen
    };
    let fault = |tally: &Shared| tally.lock().unwrap().faults += 1;
    match (name.as_str(), attempt, tool_round) {
        ("rate-limited", 1, _) => {
            fault(&tally);
            status(&mut stream, 429, "retry-after: 1\r\n").await;
        }
        ("overloaded", 1, _) => {
            fault(&tally);
            status(&mut stream, 529, "").await;
        }
        ("overloaded", 2, _) => {
            fault(&tally);
            status(&mut stream, 500, "").await;
        }
        ("down", _, _) => {
            fault(&tally);
            status(&mut stream, 500, "").await;
        }
        ("reset", _, _) => {
            fault(&tally);
            let first = [chunk(
                json!({ "role": "assistant", "content": "Half an " }),
                None,
            )];
            stream_events(&mut stream, &first, false).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            // SO_LINGER 0: the close is a TCP reset, not an orderly end (and a zero linger
            // does not block the drop, which the deprecation is about).
            #[allow(deprecated)]
            let _ = stream.set_linger(Some(Duration::ZERO));
            drop(stream);
        }
        ("cut", _, _) => {
            fault(&tally);
            let first = [chunk(
                json!({ "role": "assistant", "content": "Never fin" }),
                None,
            )];
            stream_events(&mut stream, &first, true).await;
        }
        ("hang", _, _) => {
            fault(&tally);
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        ("bad-arguments", _, false) => {
            fault(&tally);
            stream_events(&mut stream, &tool_call("create_task", "{\"title\": "), true).await;
        }
        ("unknown-tool", _, false) => {
            fault(&tally);
            stream_events(&mut stream, &tool_call("format_disk", "{}"), true).await;
        }
        // A tool runs, then the model goes down: the turn fails after changing something.
        ("tool-then-down", _, false) => {
            fault(&tally);
            let arguments = r#"{"title": "Made once"}"#;
            stream_events(&mut stream, &tool_call("create_task", arguments), true).await;
        }
        ("tool-then-down", 2..=4, true) => {
            fault(&tally);
            status(&mut stream, 500, "").await;
        }
        ("forever", _, _) => {
            fault(&tally);
            stream_events(&mut stream, &tool_call("list_tasks", "{}"), true).await;
        }
        (name, _, _) => {
            let text = format!("All good ({name}).");
            stream_events(&mut stream, &answer(&text), true).await;
        }
    }
}

async fn model_server() -> (String, Shared) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let tally = Shared::default();
    let shared = tally.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, shared.clone()));
        }
    });
    (base_url, tally)
}

/// How one turn ended.
struct Ending {
    event: String,
    payload: Value,
    took: Duration,
    conversation: String,
    message: String,
}

async fn turn(socket: &mut Client, client_id: &str, text: &str) -> Ending {
    let started = Instant::now();
    let ack = socket
        .emit(
            "chat:send",
            json!({ "clientMessageId": client_id, "text": text }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{text}: {ack}");
    let conversation = ack["conversationId"].as_str().unwrap().to_owned();
    let message = ack["messageId"].as_str().unwrap().to_owned();
    loop {
        let (event, payload) = tokio::time::timeout(Duration::from_secs(30), socket.next_event())
            .await
            .unwrap_or_else(|_| panic!("{text}: the turn did not end within 30 s"));
        if matches!(event.as_str(), "chat:done" | "chat:error")
            && payload["conversationId"] == conversation.as_str()
        {
            return Ending {
                event,
                payload,
                took: started.elapsed(),
                conversation,
                message,
            };
        }
    }
}

#[tokio::test]
async fn every_provider_fault_ends_the_turn_clearly_and_keeps_the_message() {
    let (base_url, tally) = model_server().await;
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let log_file = temp_dir("pixie-faults").join("server.log");
    std::fs::create_dir_all(log_file.parent().unwrap()).unwrap();
    let (mut server, addr) = serve_binary_logging(
        &db,
        &[
            ("PIXIE__AI__PROVIDER", "openai".into()),
            ("PIXIE__AI__BASE_URL", base_url.clone()),
            ("PIXIE__AI__MODEL", "mock".into()),
            ("PIXIE__AI__MAX_RETRIES", "2".into()),
            ("PIXIE__AI__REQUEST_TIMEOUT_SECS", "2".into()),
            ("PIXIE__AI__MAX_TOOL_ROUNDS", "3".into()),
            ("PIXIE__EMBEDDINGS__PROVIDER", "openai".into()),
            ("PIXIE__EMBEDDINGS__BASE_URL", base_url.clone()),
            ("PIXIE__EMBEDDINGS__DIMENSION", "8".into()),
            ("PIXIE__EMBEDDINGS__REQUEST_TIMEOUT_SECS", "2".into()),
            ("OPENAI_API_KEY", "sk-test-faults".into()),
        ],
        &log_file,
    )
    .await;
    let mut socket = Client::open_at(&addr).await.0.signed_in("fay").await;

    // (scenario, how it must end: Some((code, retryable)) for chat:error, None for an answer).
    // A stream cut short is a malformed answer, not an outage: not retryable.
    let scenarios: [(&str, Option<(&str, bool)>); 11] = [
        ("none", None),
        ("rate-limited", None),
        ("overloaded", None),
        ("down", Some(("unavailable", true))),
        ("reset", Some(("unavailable", true))),
        ("cut", Some(("bad_gateway", false))),
        ("hang", Some(("unavailable", true))),
        ("bad-arguments", None),
        ("unknown-tool", None),
        ("forever", None),
        ("tool-then-down", Some(("unavailable", true))),
    ];
    let mut endings = Vec::new();
    for (name, expected) in scenarios {
        let text = format!("please go ahead fault:{name}");
        let ending = turn(&mut socket, &format!("c-{name}"), &text).await;
        eprintln!(
            "fault {name}: {} in {} ms: {}",
            ending.event,
            ending.took.as_millis(),
            ending.payload
        );
        assert!(
            ending.took < Duration::from_secs(20),
            "{name}: took {:?}",
            ending.took
        );
        match expected {
            None => {
                assert_eq!(ending.event, "chat:done", "{name}: {}", ending.payload);
                let content = ending.payload["message"]["content"].as_str().unwrap();
                assert!(!content.is_empty(), "{name}: an answer: {}", ending.payload);
            }
            Some((code, retryable)) => {
                assert_eq!(ending.event, "chat:error", "{name}: {}", ending.payload);
                assert_eq!(ending.payload["code"], code, "{name}: {}", ending.payload);
                assert_eq!(ending.payload["retryable"], retryable, "{name}");
                let message = ending.payload["message"].as_str().unwrap();
                assert!(
                    !message.is_empty() && !message.contains("sk-test"),
                    "{message}"
                );
            }
        }
        endings.push((name, ending));
    }

    let client = reqwest::Client::new();
    let get = async |path: &str| -> Value {
        client
            .get(format!("http://{addr}{path}"))
            .bearer_auth("dev:fay")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    };
    // Tool faults were told to the model as failed calls, and the loop was cut.
    for (name, ending) in &endings {
        let calls = ending.payload["message"]["toolCalls"].clone();
        match *name {
            "bad-arguments" | "unknown-tool" => {
                assert_eq!(calls[0]["status"], "error", "{name}: {calls}");
                assert!(calls[0]["error"].as_str().is_some(), "{name}: {calls}");
            }
            "forever" => {
                // 3 rounds with tools, one without (which this model ignores).
                let rounds = tally.lock().unwrap().requests["forever"];
                assert_eq!(rounds, 4, "max_tool_rounds = 3 bounds the loop");
                assert_eq!(calls.as_array().unwrap().len(), 3, "{calls}");
                let content = ending.payload["message"]["content"].as_str().unwrap();
                assert!(content.contains("could not"), "says it gave up: {content}");
            }
            _ => {}
        }
    }
    // Every acked message is stored once; a retry of a failed turn adds none.
    let retried = turn(&mut socket, "c-down", "please go ahead fault:down").await;
    let first_down = &endings.iter().find(|(n, _)| *n == "down").unwrap().1;
    assert_eq!(retried.message, first_down.message, "the same message");
    // The retry of a turn that failed after its tool ran runs the turn again; the tool's
    // task is found, not made a second time.
    let retried = turn(
        &mut socket,
        "c-tool-then-down",
        "please go ahead fault:tool-then-down",
    )
    .await;
    assert_eq!(retried.event, "chat:done", "{}", retried.payload);
    let tasks = get("/v1/tasks").await;
    let made: Vec<&Value> = tasks["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["title"] == "Made once")
        .collect();
    assert_eq!(made.len(), 1, "the task is made once: {tasks}");
    let calls = &retried.payload["message"]["toolCalls"];
    assert_eq!(calls[0]["result"]["task"]["id"], made[0]["id"], "{calls}");
    let mut duplicates = 0;
    let mut lost = 0;
    for (name, ending) in &endings {
        let messages = get(&format!(
            "/v1/conversations/{}/messages",
            ending.conversation
        ))
        .await;
        let mine: Vec<&Value> = messages["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "user")
            .collect();
        match mine.as_slice() {
            [] => lost += 1,
            [one] => assert_eq!(one["id"], ending.message.as_str(), "{name}"),
            _ => duplicates += mine.len() - 1,
        }
    }
    assert_eq!((lost, duplicates), (0, 0), "lost, duplicated user messages");

    // Still up, and nothing panicked.
    let health = client
        .get(format!("http://{addr}/healthz"))
        .send()
        .await
        .unwrap();
    assert!(health.status().is_success());
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server is running"
    );
    let log = std::fs::read_to_string(&log_file).unwrap();
    let panics = log.matches("panicked").count();
    let (faults, embedding_failures) = {
        let tally = tally.lock().unwrap();
        (tally.faults, tally.embedding_failures)
    };
    eprintln!(
        "provider faults: {} injected, {} embedding failures, {} turns acked, lost = {lost}, \
         duplicates = {duplicates}, panics = {panics}",
        faults,
        embedding_failures,
        endings.len() + 2
    );
    assert_eq!(panics, 0, "no panic in the log:\n{log}");
    assert!(
        embedding_failures > 0,
        "the embeddings endpoint was called and failed"
    );
    server.kill().await.unwrap();
}
