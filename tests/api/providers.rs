//! Provider wire-format tests against a local mock server: the HTTP providers are called
//! directly, with streams copied from Anthropic's and OpenAI's documentation.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pixie::ai::embed::{EmbedError, Embedder};
use pixie::ai::llm::{
    LlmError, LlmEvent, LlmMessage, LlmProvider, LlmRequest, LlmStream, LlmToolCall, StopReason,
    ToolResult, ToolSpec,
};
use pixie::ai::providers::{
    AnthropicProvider, AnthropicSettings, HttpSettings, OpenAiEmbedder, OpenAiEmbedderSettings,
    OpenAiProvider, OpenAiSettings,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// Anthropic's documented "streaming request with tool use" answer: text, then a `tool_use`
/// whose input arrives in several `input_json_delta`s, with a `ping` in between.
const ANTHROPIC_TOOL_USE: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_014p7gG3wDgGV9EUtLvnow3U","type":"message","role":"assistant","model":"claude-sonnet-4-5","stop_sequence":null,"usage":{"input_tokens":472,"output_tokens":2},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Okay"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", let's check the weather for"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" San Francisco, CA:"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01T1x1fJ34qAmk2tNTrN7Up6","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" \"San"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":" Francisc"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"o, CA\""}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":", "}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"\"unit\": \"fah"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"renheit\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":89}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// The beginning of a plain text answer (Anthropic's documented basic stream).
const ANTHROPIC_TEXT_START: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}

"#;

const ANTHROPIC_TEXT_END: &str = r#"event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// OpenAI chunks (the documented `chat.completion.chunk` shape) with text, then two tool calls
/// whose fragments are interleaved by `index`, `finish_reason`, and the usage chunk that
/// `stream_options.include_usage` adds.
pub(crate) const OPENAI_TOOL_CALLS: &str = r#"data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"On it."},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_xZtWnTjjc0jhgtsMMpq6kC0w","type":"function","function":{"name":"create_task","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_Ab12Cd34Ef56Gh78Ij90Kl12","type":"function","function":{"name":"list_events","arguments":""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ti"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"{\"from\": \"2026-05-01\""}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"tle\": \"Buy milk\"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"}"}}]},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"tool_calls"}],"usage":null}

data: {"id":"chatcmpl-xyz","object":"chat.completion.chunk","created":1730391658,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],"usage":{"prompt_tokens":82,"completion_tokens":41,"total_tokens":123}}

data: [DONE]

"#;

pub(crate) const OPENAI_TEXT: &str = r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":" there!"},"logprobs":null,"finish_reason":null}]}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12}}

data: [DONE]

"#;

/// Short timeouts and backoffs, so that failure tests take milliseconds.
fn fast() -> HttpSettings {
    HttpSettings {
        connect_timeout: Duration::from_secs(1),
        response_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        max_retries: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        max_retry_after: Duration::from_secs(5),
    }
}

fn anthropic_with(base_url: &str, http: HttpSettings) -> AnthropicProvider {
    AnthropicProvider::new(AnthropicSettings {
        base_url: base_url.to_owned(),
        api_key: Some("test-key".to_owned()),
        http,
        ..AnthropicSettings::default()
    })
    .unwrap()
}

fn anthropic(server: &MockServer) -> AnthropicProvider {
    anthropic_with(&server.uri(), fast())
}

fn openai(server: &MockServer, api_key: Option<&str>) -> OpenAiProvider {
    OpenAiProvider::new(OpenAiSettings {
        base_url: format!("{}/v1", server.uri()),
        api_key: api_key.map(str::to_owned),
        http: fast(),
        ..OpenAiSettings::default()
    })
    .unwrap()
}

pub(crate) fn sse(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.as_bytes().to_vec(), "text/event-stream")
}

async fn mount(server: &MockServer, path_: &str, response: impl Respond + 'static) {
    Mock::given(method("POST"))
        .and(path(path_))
        .respond_with(response)
        .mount(server)
        .await;
}

/// Mounts `response` for the first `times` calls only; later calls fall through.
async fn mount_first(server: &MockServer, path_: &str, times: u64, response: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(path_))
        .respond_with(response)
        .up_to_n_times(times)
        .with_priority(1)
        .mount(server)
        .await;
}

fn tool(name: &'static str) -> ToolSpec {
    ToolSpec {
        name,
        description: "A tool.",
        parameters: json!({"type": "object", "properties": {"title": {"type": "string"}}}),
    }
}

fn ask(text: &str) -> LlmRequest {
    LlmRequest {
        system: "You are Pixie.".to_owned(),
        messages: vec![LlmMessage::User(text.to_owned())],
        tools: std::sync::Arc::from([]),
        max_tokens: 1024,
    }
}

/// A conversation after one tool round: the assistant called a tool (once with arguments it
/// got wrong), the results came back, and the user asked again.
fn after_tool_round() -> LlmRequest {
    LlmRequest {
        system: "You are Pixie.".to_owned(),
        messages: vec![
            LlmMessage::User("Add milk to my list".to_owned()),
            LlmMessage::Assistant {
                text: "Adding it.".to_owned(),
                tool_calls: vec![
                    LlmToolCall {
                        id: "call_1".to_owned(),
                        name: "create_task".to_owned(),
                        arguments: r#"{"title": "Buy milk"}"#.to_owned(),
                    },
                    LlmToolCall {
                        id: "call_2".to_owned(),
                        name: "create_task".to_owned(),
                        arguments: r#"{"title": "#.to_owned(),
                    },
                ],
            },
            LlmMessage::ToolResults(vec![
                ToolResult {
                    call_id: "call_1".to_owned(),
                    content: r#"{"id":"t1"}"#.to_owned(),
                    is_error: false,
                },
                ToolResult {
                    call_id: "call_2".to_owned(),
                    content: r#"{"error":"invalid JSON arguments"}"#.to_owned(),
                    is_error: true,
                },
            ]),
            LlmMessage::Assistant {
                text: String::new(),
                tool_calls: vec![LlmToolCall {
                    id: "call_3".to_owned(),
                    name: "list_tasks".to_owned(),
                    arguments: String::new(),
                }],
            },
            LlmMessage::ToolResults(vec![ToolResult {
                call_id: "call_3".to_owned(),
                content: "[]".to_owned(),
                is_error: false,
            }]),
            LlmMessage::User("Thanks".to_owned()),
        ],
        tools: vec![tool("create_task"), tool("list_tasks")].into(),
        max_tokens: 512,
    }
}

async fn collect(stream: LlmStream) -> Vec<Result<LlmEvent, LlmError>> {
    stream.collect().await
}

fn text(events: &[Result<LlmEvent, LlmError>]) -> String {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(LlmEvent::TextDelta(text)) => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_calls(events: &[Result<LlmEvent, LlmError>]) -> Vec<LlmToolCall> {
    events
        .iter()
        .filter_map(|event| match event {
            Ok(LlmEvent::ToolCall(call)) => Some(call.clone()),
            _ => None,
        })
        .collect()
}

async fn stream_err(provider: &dyn LlmProvider, request: &LlmRequest) -> LlmError {
    match provider.stream(request).await {
        Ok(_) => panic!("expected the call to fail"),
        Err(error) => error,
    }
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.unwrap()
}

#[tokio::test]
async fn anthropic_streams_text_then_a_tool_call_and_sends_the_documented_request() {
    let server = MockServer::start().await;
    mount(&server, "/v1/messages", sse(ANTHROPIC_TOOL_USE)).await;

    let events = collect(
        anthropic(&server)
            .stream(&after_tool_round())
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(
        text(&events),
        "Okay, let's check the weather for San Francisco, CA:"
    );
    let tail: Vec<_> = events.into_iter().skip(3).collect();
    assert_eq!(
        tail,
        vec![
            Ok(LlmEvent::ToolCall(LlmToolCall {
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
                name: "get_weather".to_owned(),
                arguments: r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#.to_owned(),
            })),
            Ok(LlmEvent::Usage {
                input_tokens: 472,
                output_tokens: 89
            }),
            Ok(LlmEvent::Stop(StopReason::ToolUse)),
        ]
    );

    let sent = &requests(&server).await[0];
    assert_eq!(sent.headers["x-api-key"], "test-key");
    assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    assert_eq!(sent.headers["content-type"], "application/json");
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}});
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 512,
            "stream": true,
            "system": "You are Pixie.",
            "tools": [
                {"name": "create_task", "description": "A tool.", "input_schema": schema},
                {"name": "list_tasks", "description": "A tool.", "input_schema": schema},
            ],
            // Same-role messages merged: the API requires alternation.
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Add milk to my list"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Adding it."},
                    {"type": "tool_use", "id": "call_1", "name": "create_task", "input": {"title": "Buy milk"}},
                    {"type": "tool_use", "id": "call_2", "name": "create_task", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "{\"id\":\"t1\"}", "is_error": false},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "{\"error\":\"invalid JSON arguments\"}", "is_error": true},
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "call_3", "name": "list_tasks", "input": {}},
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_3", "content": "[]", "is_error": false},
                    {"type": "text", "text": "Thanks"},
                ]},
            ],
        })
    );
}

#[tokio::test]
async fn anthropic_plain_answer_has_no_tools_key() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/v1/messages",
        sse(&format!("{ANTHROPIC_TEXT_START}{ANTHROPIC_TEXT_END}")),
    )
    .await;

    let events = collect(anthropic(&server).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(text(&events), "Hello!");
    assert_eq!(
        events[events.len() - 2..],
        [
            Ok(LlmEvent::Usage {
                input_tokens: 25,
                output_tokens: 15
            }),
            Ok(LlmEvent::Stop(StopReason::EndTurn)),
        ]
    );
    let body: Value = requests(&server).await[0].body_json().unwrap();
    assert!(body.get("tools").is_none(), "{body}");
}

#[tokio::test]
async fn anthropic_passes_invalid_tool_arguments_through_raw() {
    let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"create_task","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"title\": "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"milk"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_2","name":"list_tasks","input":{}}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":20}}

event: message_stop
data: {"type":"message_stop"}

"#;
    let server = MockServer::start().await;
    mount(&server, "/v1/messages", sse(stream)).await;

    let events = collect(anthropic(&server).stream(&ask("milk")).await.unwrap()).await;

    let calls = tool_calls(&events);
    assert_eq!(calls[0].arguments, r#"{"title": "milk"#);
    assert_eq!(calls[1].arguments, "{}");
    assert_eq!(
        events.last(),
        Some(&Ok(LlmEvent::Stop(StopReason::ToolUse)))
    );
}

#[tokio::test]
async fn anthropic_stream_cut_before_message_stop_is_a_protocol_error() {
    let server = MockServer::start().await;
    mount(&server, "/v1/messages", sse(ANTHROPIC_TEXT_START)).await;

    let events = collect(anthropic(&server).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(events[0], Ok(LlmEvent::TextDelta("Hello".to_owned())));
    assert!(
        matches!(events[1], Err(LlmError::Protocol(_))),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn anthropic_overloaded_error_event_is_unavailable() {
    let overloaded = r#"event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

"#;
    let server = MockServer::start().await;
    mount(
        &server,
        "/v1/messages",
        sse(&format!("{ANTHROPIC_TEXT_START}{overloaded}")),
    )
    .await;

    let events = collect(anthropic(&server).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(text(&events), "Hello");
    assert!(
        matches!(&events[1], Err(LlmError::Unavailable { message, .. }) if message.contains("Overloaded")),
        "{events:?}"
    );
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn anthropic_529_then_500_are_retried_then_the_answer_streams() {
    let server = MockServer::start().await;
    let overloaded =
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}});
    mount_first(
        &server,
        "/v1/messages",
        1,
        ResponseTemplate::new(529).set_body_json(&overloaded),
    )
    .await;
    mount_first(&server, "/v1/messages", 1, ResponseTemplate::new(500)).await;
    mount(
        &server,
        "/v1/messages",
        sse(&format!("{ANTHROPIC_TEXT_START}{ANTHROPIC_TEXT_END}")),
    )
    .await;

    let events = collect(anthropic(&server).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(text(&events), "Hello!");
    assert_eq!(requests(&server).await.len(), 3);
}

#[tokio::test]
async fn anthropic_400_is_upstream_with_the_providers_message_and_no_key() {
    let server = MockServer::start().await;
    let error = json!({"type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: 100000 > 64000, which is the maximum allowed number of output tokens for claude-sonnet-4-5"}});
    mount(
        &server,
        "/v1/messages",
        ResponseTemplate::new(400).set_body_json(error),
    )
    .await;

    let error = stream_err(&anthropic(&server), &ask("Hi")).await;

    let LlmError::Upstream(message) = error else {
        panic!("expected Upstream, got {error:?}");
    };
    assert!(message.contains("400"), "{message}");
    assert!(message.contains("max_tokens: 100000 > 64000"), "{message}");
    assert!(!message.contains("test-key"), "{message}");
    assert_eq!(requests(&server).await.len(), 1, "a 400 is not retried");
}

#[tokio::test]
async fn anthropic_requires_a_key() {
    let result = AnthropicProvider::new(AnthropicSettings::default());
    assert!(result.is_err());
}

#[tokio::test]
async fn openai_reassembles_interleaved_tool_calls_and_maps_the_history() {
    let server = MockServer::start().await;
    mount(&server, "/v1/chat/completions", sse(OPENAI_TOOL_CALLS)).await;

    let events = collect(
        openai(&server, Some("sk-test"))
            .stream(&after_tool_round())
            .await
            .unwrap(),
    )
    .await;

    assert_eq!(
        events,
        vec![
            Ok(LlmEvent::TextDelta("On it.".to_owned())),
            Ok(LlmEvent::ToolCall(LlmToolCall {
                id: "call_xZtWnTjjc0jhgtsMMpq6kC0w".to_owned(),
                name: "create_task".to_owned(),
                arguments: r#"{"title": "Buy milk"}"#.to_owned(),
            })),
            Ok(LlmEvent::ToolCall(LlmToolCall {
                id: "call_Ab12Cd34Ef56Gh78Ij90Kl12".to_owned(),
                name: "list_events".to_owned(),
                arguments: r#"{"from": "2026-05-01"}"#.to_owned(),
            })),
            Ok(LlmEvent::Usage {
                input_tokens: 82,
                output_tokens: 41
            }),
            Ok(LlmEvent::Stop(StopReason::ToolUse)),
        ]
    );

    let sent = &requests(&server).await[0];
    assert_eq!(sent.headers["authorization"], "Bearer sk-test");
    let schema = json!({"type": "object", "properties": {"title": {"type": "string"}}});
    assert_eq!(
        sent.body_json::<Value>().unwrap(),
        json!({
            "model": "gpt-4o-mini",
            "max_tokens": 512,
            "stream": true,
            "stream_options": {"include_usage": true},
            "tools": [
                {"type": "function", "function": {"name": "create_task", "description": "A tool.", "parameters": schema}},
                {"type": "function", "function": {"name": "list_tasks", "description": "A tool.", "parameters": schema}},
            ],
            "messages": [
                {"role": "system", "content": "You are Pixie."},
                {"role": "user", "content": "Add milk to my list"},
                {"role": "assistant", "content": "Adding it.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "create_task", "arguments": "{\"title\": \"Buy milk\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "create_task", "arguments": "{\"title\": "}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "{\"id\":\"t1\"}"},
                {"role": "tool", "tool_call_id": "call_2", "content": "{\"error\":\"invalid JSON arguments\"}"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "list_tasks", "arguments": ""}},
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "[]"},
                {"role": "user", "content": "Thanks"},
            ],
        })
    );
}

#[tokio::test]
async fn openai_without_tools_or_key_sends_neither() {
    let server = MockServer::start().await;
    mount(&server, "/v1/chat/completions", sse(OPENAI_TEXT)).await;

    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(text(&events), "Hello there!");
    assert_eq!(
        events[events.len() - 2..],
        [
            Ok(LlmEvent::Usage {
                input_tokens: 9,
                output_tokens: 3
            }),
            Ok(LlmEvent::Stop(StopReason::EndTurn)),
        ]
    );
    let sent = &requests(&server).await[0];
    assert!(sent.headers.get("authorization").is_none());
    let body: Value = sent.body_json().unwrap();
    assert!(body.get("tools").is_none(), "{body}");
    assert!(body.get("tool_choice").is_none(), "{body}");
}

#[tokio::test]
async fn openai_accepts_ollama_style_whole_calls_without_index() {
    // Ollama: each call whole in one chunk, one index (or none) for several calls, told apart
    // by id; finish_reason "stop" after tool calls; no usage chunk.
    let stream = r#"data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_a","index":0,"type":"function","function":{"name":"create_task","arguments":"{\"title\":\"Buy milk\"}"}}]},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_b","index":0,"type":"function","function":{"name":"list_tasks","arguments":"{}"}}]},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_c","type":"function","function":{"name":"list_events","arguments":"{\"from\":\"today\"}"}}]},"finish_reason":null}]}

data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"llama3.2","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}

data: [DONE]

"#;
    let server = MockServer::start().await;
    mount(&server, "/v1/chat/completions", sse(stream)).await;

    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    let calls: Vec<_> = tool_calls(&events)
        .into_iter()
        .map(|call| (call.id, call.name, call.arguments))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "call_a".into(),
                "create_task".into(),
                r#"{"title":"Buy milk"}"#.into()
            ),
            ("call_b".into(), "list_tasks".into(), "{}".into()),
            (
                "call_c".into(),
                "list_events".into(),
                r#"{"from":"today"}"#.into()
            ),
        ] as [(String, String, String); 3]
    );
    assert_eq!(
        events.last(),
        Some(&Ok(LlmEvent::Stop(StopReason::ToolUse)))
    );
}

#[tokio::test]
async fn openai_garbage_chunk_is_a_protocol_error() {
    let stream = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n\
                  data: {\"choices\":[{\"index\":0,\"delta\":{\"content\n\n\
                  data: [DONE]\n\n";
    let server = MockServer::start().await;
    mount(&server, "/v1/chat/completions", sse(stream)).await;

    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(events[0], Ok(LlmEvent::TextDelta("Hi".to_owned())));
    assert!(
        matches!(events[1], Err(LlmError::Protocol(_))),
        "{events:?}"
    );
    assert_eq!(events.len(), 2, "nothing after the error");
}

#[tokio::test]
async fn openai_stream_cut_before_done_is_a_protocol_error() {
    // Everything before the chunk with the finish_reason.
    let end = OPENAI_TEXT.find(r#""finish_reason":"stop""#).unwrap();
    let cut = &OPENAI_TEXT[..OPENAI_TEXT[..end].rfind("data:").unwrap()];
    let server = MockServer::start().await;
    mount(&server, "/v1/chat/completions", sse(cut)).await;

    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(text(&events), "Hello there!");
    assert!(
        matches!(events.last(), Some(Err(LlmError::Protocol(_)))),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_waited_for_then_retried() {
    let server = MockServer::start().await;
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "1")
        .set_body_json(json!({"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}));
    mount_first(&server, "/v1/chat/completions", 1, limited).await;
    mount(&server, "/v1/chat/completions", sse(OPENAI_TEXT)).await;

    let started = Instant::now();
    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after was not honoured"
    );
    assert_eq!(requests(&server).await.len(), 2);
    assert_eq!(text(&events), "Hello there!");
    assert_eq!(
        events.last(),
        Some(&Ok(LlmEvent::Stop(StopReason::EndTurn)))
    );
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_fails_at_once_and_carries_the_delay() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/v1/chat/completions",
        ResponseTemplate::new(429).insert_header("retry-after", "120"),
    )
    .await;

    let started = Instant::now();
    let error = stream_err(&openai(&server, None), &ask("Hi")).await;

    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(error, LlmError::Unavailable { retry_after: Some(delay), .. } if delay == Duration::from_secs(120)),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn two_500s_are_retried_then_the_answer_streams() {
    let server = MockServer::start().await;
    mount_first(
        &server,
        "/v1/chat/completions",
        2,
        ResponseTemplate::new(500),
    )
    .await;
    mount(&server, "/v1/chat/completions", sse(OPENAI_TEXT)).await;

    let events = collect(openai(&server, None).stream(&ask("Hi")).await.unwrap()).await;

    assert_eq!(requests(&server).await.len(), 3);
    assert_eq!(text(&events), "Hello there!");
}

#[tokio::test]
async fn server_errors_until_retries_run_out_are_unavailable() {
    let server = MockServer::start().await;
    let error = json!({"error": {"message": "The server had an error while processing your request.", "type": "server_error"}});
    mount(
        &server,
        "/v1/chat/completions",
        ResponseTemplate::new(503).set_body_json(error),
    )
    .await;

    let error = stream_err(&openai(&server, None), &ask("Hi")).await;

    assert!(
        matches!(&error, LlmError::Unavailable { message, retry_after: None } if message.contains("503") && message.contains("server had an error")),
        "{error:?}"
    );
    assert_eq!(
        requests(&server).await.len(),
        3,
        "one call and max_retries = 2 retries"
    );
}

#[tokio::test]
async fn openai_400_is_upstream_with_the_providers_message() {
    let server = MockServer::start().await;
    let error = json!({"error": {"message": "Invalid schema for function 'create_task'.", "type": "invalid_request_error", "param": "tools[0].function.parameters", "code": "invalid_function_parameters"}});
    mount(
        &server,
        "/v1/chat/completions",
        ResponseTemplate::new(400).set_body_json(error),
    )
    .await;

    let error = stream_err(&openai(&server, Some("sk-secret")), &ask("Hi")).await;

    assert!(
        matches!(&error, LlmError::Upstream(message) if message.contains("Invalid schema for function 'create_task'.") && !message.contains("sk-secret")),
        "{error:?}"
    );
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_response_that_never_starts_is_unavailable_in_bounded_time() {
    let server = MockServer::start().await;
    mount(
        &server,
        "/v1/messages",
        sse(ANTHROPIC_TEXT_START).set_delay(Duration::from_secs(30)),
    )
    .await;
    let http = HttpSettings {
        response_timeout: Duration::from_millis(200),
        max_retries: 1,
        ..fast()
    };

    let provider = anthropic_with(&server.uri(), http);

    let started = Instant::now();
    let request = ask("Hi");
    let call = stream_err(&provider, &request);
    let error = tokio::time::timeout(Duration::from_secs(5), call)
        .await
        .unwrap();

    assert!(matches!(error, LlmError::Unavailable { .. }), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();

    let error = stream_err(
        &anthropic_with(&format!("http://127.0.0.1:{port}"), fast()),
        &ask("Hi"),
    )
    .await;

    assert!(matches!(error, LlmError::Unavailable { .. }), "{error:?}");
}

/// A server that answers the first request with response headers and `first_chunk` of a
/// chunked body, then stays silent; the handle completes when the client hangs up.
async fn stalling_server(first_chunk: &'static str) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = vec![0; 64 * 1024];
        let _ = socket.read(&mut buffer).await.unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{first_chunk}\r\n",
            first_chunk.len()
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        while let Ok(1..) = socket.read(&mut buffer).await {}
    });
    (url, handle)
}

#[tokio::test]
async fn a_stream_that_stalls_mid_answer_is_unavailable_after_the_idle_timeout() {
    let (url, _server) = stalling_server(ANTHROPIC_TEXT_START).await;
    let http = HttpSettings {
        idle_timeout: Duration::from_millis(300),
        ..fast()
    };

    let provider = anthropic_with(&url, http);

    let started = Instant::now();
    let stream = provider.stream(&ask("Hi")).await.unwrap();
    let events = tokio::time::timeout(Duration::from_secs(5), collect(stream))
        .await
        .unwrap();

    assert_eq!(events[0], Ok(LlmEvent::TextDelta("Hello".to_owned())));
    assert!(
        matches!(events[1], Err(LlmError::Unavailable { .. })),
        "{events:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn dropping_the_stream_closes_the_connection() {
    let (url, server) = stalling_server(ANTHROPIC_TEXT_START).await;
    let http = HttpSettings {
        idle_timeout: Duration::from_secs(60),
        ..fast()
    };
    let provider = anthropic_with(&url, http);
    let mut stream = provider.stream(&ask("Hi")).await.unwrap();
    assert_eq!(
        stream.next().await,
        Some(Ok(LlmEvent::TextDelta("Hello".to_owned())))
    );

    drop(stream);

    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the connection stayed open after the stream was dropped")
        .unwrap();
}

/// Answers an embeddings request with one vector per input, `[len(text), 0.5, …]`, listed in
/// reverse order (the client must sort by `index`).
struct Embeddings {
    dimension: usize,
}

impl Respond for Embeddings {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = request.body_json().unwrap();
        let inputs = body["input"].as_array().unwrap();
        let data: Vec<Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(index, text)| {
                let mut vector = vec![0.5; self.dimension];
                vector[0] = text.as_str().unwrap().len() as f32;
                json!({"object": "embedding", "index": index, "embedding": vector})
            })
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "object": "list",
            "data": data,
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 8, "total_tokens": 8},
        }))
    }
}

fn embedder(server: &MockServer, dimension: usize) -> OpenAiEmbedder {
    OpenAiEmbedder::new(OpenAiEmbedderSettings {
        base_url: format!("{}/v1", server.uri()),
        api_key: Some("sk-test".to_owned()),
        dimension,
        request_dimension: true,
        batch_size: 2,
        http: fast(),
        ..OpenAiEmbedderSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn the_embedder_batches_and_keeps_the_order() {
    let server = MockServer::start().await;
    mount_first(&server, "/v1/embeddings", 1, ResponseTemplate::new(503)).await;
    mount(&server, "/v1/embeddings", Embeddings { dimension: 3 }).await;
    let texts: Vec<String> = ["a", "bb", "ccc", "dddd", "eeeee"]
        .map(str::to_owned)
        .to_vec();

    let vectors = embedder(&server, 3).embed(&texts).await.unwrap();

    let firsts: Vec<f32> = vectors.iter().map(|vector| vector[0]).collect();
    assert_eq!(firsts, [1.0, 2.0, 3.0, 4.0, 5.0]);
    assert!(vectors.iter().all(|vector| vector.len() == 3));
    let sent: Vec<Value> = requests(&server)
        .await
        .iter()
        .map(|request| {
            assert_eq!(request.headers["authorization"], "Bearer sk-test");
            request.body_json().unwrap()
        })
        .collect();
    let inputs: Vec<&Value> = sent.iter().map(|body| &body["input"]).collect();
    // The first request got a 503 and was retried.
    assert_eq!(
        inputs,
        [
            &json!(["a", "bb"]),
            &json!(["a", "bb"]),
            &json!(["ccc", "dddd"]),
            &json!(["eeeee"])
        ]
    );
    assert_eq!(sent[0]["model"], "text-embedding-3-small");
    assert_eq!(sent[0]["dimensions"], 3);
}

#[tokio::test]
async fn the_embedder_rejects_vectors_of_the_wrong_dimension() {
    let server = MockServer::start().await;
    mount(&server, "/v1/embeddings", Embeddings { dimension: 4 }).await;

    let error = embedder(&server, 3)
        .embed(&["milk".to_owned()])
        .await
        .unwrap_err();

    assert!(
        matches!(&error, EmbedError::BadResponse(message) if message.contains("4 dimensions") && message.contains("is 3")),
        "{error:?}"
    );
}
