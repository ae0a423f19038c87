//! A model that answers on cue: a local OpenAI-compatible `/v1/chat/completions` server that
//! streams the first part of its answer at once and the rest only when the test releases it,
//! so a test can act while a turn is mid-answer (resume, cancel, shutdown).

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::helpers::{TestApp, spawn_app_with};

pub struct SlowLlm {
    pub base_url: String,
    released: watch::Sender<bool>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl SlowLlm {
    /// Streams `first` at once, then `rest` after [`Self::release`].
    pub async fn start(first: &[&str], rest: &[&str]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let (released, _) = watch::channel(false);
        let requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let first: Vec<String> = first.iter().map(|s| s.to_string()).collect();
        let rest: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
        let gate = released.clone();
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (first, rest, gate) = (first.clone(), rest.clone(), gate.subscribe());
                tokio::spawn(serve(stream, first, rest, gate));
            }
        });
        Self {
            base_url,
            released,
            requests,
        }
    }

    /// Requests seen so far.
    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn release(&self) {
        self.released.send_replace(true);
    }

    /// The server on this model (OpenAI-compatible provider, no retries).
    pub async fn spawn_app(&self, tweak: impl FnOnce(&mut pixie::config::Config)) -> TestApp {
        let base_url = self.base_url.clone();
        spawn_app_with(
            move |c| {
                c.ai.provider = pixie::config::AiProvider::Openai;
                c.ai.base_url = Some(base_url);
                c.ai.model = Some("mock".into());
                c.ai.max_retries = 1;
                c.ai.request_timeout_secs = 60;
                c.ai.recall_limit = 0;
                tweak(c);
            },
            pixie::app::Secrets::default(),
        )
        .await
    }
}

fn chunk(delta: Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-slow", "object": "chat.completion.chunk", "created": 1, "model": "mock",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    });
    format!("data: {chunk}\n\n")
}

async fn serve(
    mut stream: TcpStream,
    first: Vec<String>,
    rest: Vec<String>,
    mut gate: watch::Receiver<bool>,
) {
    if crate::helpers::read_http_request(&mut stream)
        .await
        .is_none()
    {
        return;
    }
    let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                transfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let send = async |stream: &mut TcpStream, data: String| {
        let framed = format!("{:x}\r\n{data}\r\n", data.len());
        stream.write_all(framed.as_bytes()).await.is_ok() && stream.flush().await.is_ok()
    };
    if !send(
        &mut stream,
        chunk(json!({"role": "assistant", "content": ""}), None),
    )
    .await
    {
        return;
    }
    for text in first {
        if !send(&mut stream, chunk(json!({ "content": text }), None)).await {
            return;
        }
    }
    if gate.wait_for(|released| *released).await.is_err() {
        return;
    }
    for text in rest {
        if !send(&mut stream, chunk(json!({ "content": text }), None)).await {
            return;
        }
    }
    let _ = send(&mut stream, chunk(json!({}), Some("stop"))).await;
    let _ = send(&mut stream, "data: [DONE]\n\n".to_owned()).await;
    let _ = stream.write_all(b"0\r\n\r\n").await;
}
