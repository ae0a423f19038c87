//! The logs of a full run of the real binary, at the most verbose level of the server's own
//! code: no key, token, webhook secret or message body in them, and each line of a turn carries
//! the request it belongs to (request → turn → model and tool calls).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::helpers::TestDatabase;
use crate::providers::{OPENAI_TEXT, OPENAI_TOOL_CALLS, sse};

const API_KEY: &str = "sk-test-4f9c2b7e1d8a6f3c5b0e9d2a7c4f1b8e";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The webhook secret's key, as it could also leak.
const WEBHOOK_KEY_B64: &str = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const USER: &str = "logscan_7d1e";
const TEXT: &str = "please remember the zucchini are under the porch light";

#[tokio::test]
async fn a_full_run_logs_no_secret_and_no_message_body() {
    let model = MockServer::start().await;
    // The first call runs tools, every later one answers in text.
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(OPENAI_TOOL_CALLS))
        .up_to_n_times(1)
        .mount(&model)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(sse(OPENAI_TEXT))
        .mount(&model)
        .await;
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let log_file = crate::helpers::temp_dir("pixie-logs").join("server.log");
    let (mut server, addr) = crate::helpers::serve_binary_logging(
        &db,
        &[
            ("RUST_LOG", "pixie=trace,debug".into()),
            ("PIXIE__LOG__FORMAT", "json".into()),
            ("PIXIE__AI__PROVIDER", "openai".into()),
            ("PIXIE__AI__BASE_URL", format!("{}/v1", model.uri())),
            ("PIXIE__AI__MODEL", "gpt-4o-mini".into()),
            ("PIXIE__EMBEDDINGS__PROVIDER", "hashed".into()),
            ("OPENAI_API_KEY", API_KEY.into()),
            ("CLERK_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
        ],
        &log_file,
    )
    .await;
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let token = format!("dev:{USER}");

    // A chat turn with tool calls, a search, a memory, a refused request, a webhook.
    let turn = client
        .post(format!("{base}/v1/chat"))
        .bearer_auth(&token)
        .json(&json!({ "text": TEXT, "clientMessageId": "logscan-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(turn.status(), 200);
    let turn: Value = turn.json().await.unwrap();
    assert_eq!(
        turn["assistantMessage"]["content"], "On it.\n\nHello there!",
        "{turn}"
    );
    let calls = turn["assistantMessage"]["toolCalls"].as_array().unwrap();
    assert!(calls.iter().any(|c| c["name"] == "create_task"), "{turn}");
    let found = client
        .get(format!("{base}/v1/search?q=zucchini%20porch"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(found.status(), 200);
    let memory = client
        .post(format!("{base}/v1/memories"))
        .bearer_auth(&token)
        .json(&json!({ "content": TEXT }))
        .send()
        .await
        .unwrap();
    assert_eq!(memory.status(), 201);
    let refused = client
        .post(format!("{base}/v1/tasks"))
        .bearer_auth(&token)
        .json(&json!({ "title": TEXT, "nope": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    let body = json!({ "type": "user.deleted", "data": { "id": "logscan_gone" } }).to_string();
    let ts = chrono::Utc::now().timestamp();
    let key = STANDARD.decode(WEBHOOK_KEY_B64).unwrap();
    let mut mac = hmac_sha256::HMAC::new(&key);
    mac.update(format!("msg_logscan.{ts}.{body}").as_bytes());
    let signature = format!("v1,{}", STANDARD.encode(mac.finalize()));
    let hook = client
        .post(format!("{base}/webhooks/clerk"))
        .header("svix-id", "msg_logscan")
        .header("svix-timestamp", ts.to_string())
        .header("svix-signature", &signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(hook.status(), 204);

    // The turn reached the model with the key: the secret was really in play.
    let sent = model.received_requests().await.unwrap();
    assert!(
        sent.iter().any(|r| r
            .headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap_or_default().contains(API_KEY))),
        "the model was not called with the key"
    );

    let _ = server.kill().await;
    let _ = server.wait().await;
    // The last lines still on their way from the pipe to the file.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let logs = std::fs::read_to_string(&log_file).expect("the server's log");
    assert!(logs.lines().count() > 20, "too few log lines:\n{logs}");
    for secret in [
        API_KEY,
        WEBHOOK_SECRET,
        WEBHOOK_KEY_B64,
        &signature,
        &token,
        TEXT,
        "zucchini",
        "Hello there",
        "On it.",
        "Buy milk",
    ] {
        let leak = logs.lines().find(|line| line.contains(secret));
        assert!(
            leak.is_none(),
            "{secret:?} is in the log: {}",
            leak.unwrap_or_default()
        );
    }

    // A tool call's log line names its request: request → turn → tool call.
    let tool_line = logs
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "tool call")
        .expect("a tool call was logged");
    let spans: Vec<&str> = tool_line["spans"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    let at = |name: &str| spans.iter().position(|s| *s == name);
    assert!(
        at("http_request") < at("chat_turn") && at("chat_turn") < at("tool_call"),
        "{tool_line}"
    );
    assert!(at("http_request").is_some(), "{tool_line}");
    assert!(
        tool_line["spans"][0]["request_id"]
            .as_str()
            .is_some_and(|id| id.len() == 32),
        "{tool_line}"
    );
}

/// A stand-in OpenTelemetry collector: records each request's head and body, answers 200.
async fn collector() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>,
) {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = received.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let record = record.clone();
            tokio::spawn(async move {
                let Some((head, body)) = crate::helpers::read_http_request(&mut stream).await
                else {
                    return;
                };
                record.lock().unwrap().push((head, body));
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n\
                          content-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn spans_go_to_an_otlp_collector_when_one_is_configured() {
    let (collector, received) = collector().await;
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let (mut server, addr) = crate::helpers::serve_binary(
        &db,
        &[(
            "PIXIE__LOG__OTLP_ENDPOINT",
            format!("http://{collector}/v1/traces"),
        )],
    )
    .await;
    let me = reqwest::Client::new()
        .get(format!("http://{addr}/v1/me"))
        .bearer_auth(format!("dev:{USER}"))
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    // A graceful stop sends the spans still batched.
    let pid = server.id().expect("the server runs") as i32;
    // SAFETY: signals the child this test started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(std::time::Duration::from_secs(40), server.wait())
        .await
        .expect("the server stops")
        .unwrap();
    assert!(status.success(), "{status}");

    let received = received.lock().unwrap().clone();
    let export = received
        .iter()
        .find(|(head, body)| {
            head.starts_with("post /v1/traces ")
                && head.contains("content-type: application/x-protobuf")
                && body.windows(12).any(|w| w == b"http_request")
        })
        .unwrap_or_else(|| {
            panic!(
                "no OTLP export with the request's span: {:?}",
                received
                    .iter()
                    .map(|(h, b)| (h, b.len()))
                    .collect::<Vec<_>>()
            )
        });
    // The resource names the service; the span carries the route's path.
    assert!(export.1.windows(5).any(|w| w == b"pixie"));
    assert!(export.1.windows(6).any(|w| w == b"/v1/me"));
}
