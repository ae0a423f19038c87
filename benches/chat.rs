//! Chat-turn overhead through `POST /v1/chat`: the server with a zero-latency mock
//! OpenAI-compatible model that answers one `create_task` tool call, then text.
//!
//! `cargo bench --bench chat` (PostgreSQL at `PIXIE_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/pixie_bench?sslmode=disable`: no TLS on loopback;
//! dropped and created again first).
//! `PIXIE_BENCH_SECS` sets the duration of each level (default 10). Latency is measured by the
//! client around each request, so it includes the mock model's and the client's own time on
//! the same cores: an upper bound of the server's time.

use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use mimalloc::MiMalloc;
use pixie::app::{Application, Secrets};
use pixie::config::{AiProvider, Config, Source};
use serde_json::json;

/// The allocator of the `pixie` binary, so that the numbers are the server's.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn chunk(delta: serde_json::Value, finish: Option<&str>) -> String {
    let chunk = json!({
        "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 0, "model": "mock",
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
    });
    format!("data: {chunk}\n\n")
}

/// The mock model: a tool call first, text once the request carries a tool result.
async fn completions(_: HttpRequest, body: web::Bytes) -> HttpResponse {
    let has_result = body.windows(13).any(|w| w == b"\"role\":\"tool\"");
    let body = if has_result {
        [
            chunk(json!({"role": "assistant", "content": "Done: "}), None),
            chunk(json!({"content": "added it."}), None),
            chunk(json!({}), Some("stop")),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat()
    } else {
        [
            chunk(
                json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                    "function": {"name": "create_task", "arguments": "{\"title\":\"Benchmark task\",\"priority\":\"low\"}"}}]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            "data: [DONE]\n\n".to_owned(),
        ]
        .concat()
    };
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .body(body)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

async fn level(url: &str, clients: usize, secs: u64) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let mut workers = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let url = url.to_owned();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut failures = 0u64;
            let token = format!("dev:bench{c}");
            while Instant::now() < deadline {
                let t = Instant::now();
                let ok = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"text": "add a benchmark task"}))
                    .send()
                    .await
                    .map(|r| r.status().is_success())
                    .unwrap_or(false);
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = Vec::new();
    let mut failures = 0;
    for w in workers {
        let (l, f) = w.await?;
        all.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort();
    println!(
        "{clients:>4} clients: {:>7.0} turns/s  p50 {:>6.2} ms  p90 {:>6.2} ms  p99 {:>6.2} ms  max {:>7.2} ms  ({} turns, {failures} failed)",
        all.len() as f64 / elapsed,
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.90).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        all.len(),
    );
    Ok(())
}

fn reset_database(url: &str) -> anyhow::Result<()> {
    use diesel::{Connection, PgConnection, RunQueryDsl};
    let (base, rest) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("no database name in {url}"))?;
    let (name, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut admin = PgConnection::establish(&format!("{base}/postgres?{params}"))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)?;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let secs: u64 = std::env::var("PIXIE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let db_url = std::env::var("PIXIE_BENCH_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/pixie_bench?sslmode=disable".into()
    });
    reset_database(&db_url)?;
    let data_dir = std::env::temp_dir().join(format!("pixie-bench-{}", std::process::id()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mock = HttpServer::new(|| {
            App::new().route("/v1/chat/completions", web::post().to(completions))
        })
        .workers(1)
        .bind("127.0.0.1:0")?;
        let mock_addr = mock.addrs()[0];
        let mock = mock.run();
        tokio::spawn(mock);

        // The shipped defaults, with PIXIE__SECTION__KEY overrides to experiment with.
        let mut config = Config::load(&Source::Default)?;
        // Quiet unless asked (RUST_LOG=pixie=debug shows each turn).
        if std::env::var_os("RUST_LOG").is_none() {
            config.log.level = "warn".into();
        }
        // No exporter is configured here: nothing to flush at the end.
        drop(pixie::telemetry::init(&config.log));
        config.server.bind = "127.0.0.1:0".parse()?;
        config.server.data_dir = data_dir.clone();
        config.database.url = db_url.clone();
        config.ai.provider = AiProvider::Openai;
        config.ai.base_url = Some(format!("http://{mock_addr}/v1"));
        config.ai.model = Some("mock".into());
        let app = Application::build(config, Secrets::default()).await?;
        let url = format!("http://{}/v1/chat", app.local_addr());
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        println!(
            "chat turns through /v1/chat, {secs} s per level (mock model, one tool call + text)"
        );
        // Warm-up: connections, users, caches.
        level(&url, 10, 2).await?;
        for clients in [1, 10, 100] {
            level(&url, clients, secs).await?;
        }
        handle.stop(true).await;
        let _ = server.await;
        anyhow::Ok(())
    })?;
    // Background work (the indexer) stops with the runtime, before its files go.
    drop(runtime);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
