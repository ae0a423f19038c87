//! Load tool for the realtime edge: speaks Socket.IO over WebSocket like `socket.io-client`.
//!
//! ```text
//! pixie_load idle --url 127.0.0.1:8080 --sockets 10000 --hold 60 --server-pid PID
//! pixie_load chat --url 127.0.0.1:8080 --clients 100 --duration 30
//! pixie_load realistic --url 127.0.0.1:8080 --mock-port 18090 --conversations 2000 --server-pid PID
//! pixie_load floor --server actix --sockets 10000
//! ```
//!
//! `idle` opens authenticated sockets (one user each), holds them while answering the server's
//! pings, and reports the server's resident memory (from `/proc/PID/status`) before and while
//! they are held. `chat` runs closed-loop clients, each its own user with its own
//! conversation: `chat:send`, wait for the ack, wait for `chat:done`, again; it reports turns
//! per second and the latency of the acks and of whole turns. `realistic` serves a mock
//! OpenAI-compatible model itself (first token after 300 ms, then 40 tokens 25 ms apart, a
//! tool call before the text in every other turn) to a server configured to use it, and runs
//! many conversations with a pause between turns, as people type: it reports the latency the
//! server adds to the model's (its first `chat:delta` after the model's first token), and the
//! server's memory and CPU per conversation and turn. `floor` measures what an idle WebSocket
//! costs with no server of ours at all: a bare actix-web + actix-ws server, or a bare
//! tokio-tungstenite one with a given read buffer, in a child process holding plain
//! WebSockets (the floor under `idle`'s figure). `scripts/load.sh` runs them against a
//! release build.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

#[derive(Parser)]
#[command(about = "Socket.IO load for a pixie server")]
struct Args {
    /// host:port of the server.
    #[arg(long, default_value = "127.0.0.1:8080", global = true)]
    url: String,
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Subcommand)]
enum Mode {
    /// Hold many idle authenticated sockets and report the server's memory.
    Idle {
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
        /// Seconds to hold them once all are connected.
        #[arg(long, default_value_t = 60)]
        hold: u64,
        /// Connections being opened at once.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// The server's process id, to read its resident memory.
        #[arg(long)]
        server_pid: Option<u32>,
    },
    /// Closed-loop chat clients.
    Chat {
        #[arg(long, default_value_t = 100)]
        clients: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        #[arg(long, default_value = "list my tasks")]
        text: String,
    },
    /// Conversations with a streaming mock model, measuring the latency the server adds.
    Realistic {
        /// Port of the mock OpenAI-compatible model this tool serves (the server's
        /// `ai.base_url` is `http://127.0.0.1:PORT/v1`).
        #[arg(long)]
        mock_port: u16,
        #[arg(long, default_value_t = 2000)]
        conversations: usize,
        /// Seconds to run once every conversation is connected.
        #[arg(long, default_value_t = 60)]
        duration: u64,
        /// Pause between a turn's end and the next message, milliseconds (spread ±50%).
        #[arg(long, default_value_t = 10_000)]
        think_ms: u64,
        #[arg(long, default_value_t = 300)]
        first_token_ms: u64,
        #[arg(long, default_value_t = 40)]
        tokens: usize,
        #[arg(long, default_value_t = 25)]
        token_ms: u64,
        #[arg(long)]
        server_pid: u32,
    },
    /// Hold idle plain WebSockets on a bare server (no Socket.IO, no pixie) in a child
    /// process and report its memory per socket.
    Floor {
        /// `actix` (actix-web + actix-ws) or `tungstenite` (tokio-tungstenite).
        #[arg(long, default_value = "actix")]
        server: String,
        /// tokio-tungstenite's read buffer, bytes (its default is 128 KiB).
        #[arg(long, default_value_t = 4096)]
        read_buffer: usize,
        #[arg(long, default_value_t = 10_000)]
        sockets: usize,
        #[arg(long, default_value_t = 18_181)]
        port: u16,
    },
    /// The bare server of `floor` (run by it).
    #[command(hide = true)]
    FloorServe {
        #[arg(long)]
        server: String,
        #[arg(long)]
        read_buffer: usize,
        #[arg(long)]
        port: u16,
    },
}

// The server's allocator, so that `floor` measures what the server would hold.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a socket and signs it in as `user`.
async fn connect(addr: &str, user: &str) -> anyhow::Result<Ws> {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        bail!("expected the open packet, got {open}");
    }
    ws.send(Message::text(format!(
        "40{}",
        json!({ "token": format!("dev:{user}") })
    )))
    .await?;
    let answer = next_text(&mut ws).await?;
    if !answer.starts_with("40") {
        bail!("CONNECT refused: {answer}");
    }
    Ok(ws)
}

/// The next text frame; pings are answered on the way.
async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await?;
            }
            Some(Ok(Message::Text(t))) => return Ok(t.to_string()),
            Some(Ok(Message::Close(_))) | None => bail!("the server closed the socket"),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    proc_status(pid, "VmRSS:")
}

/// A number from `/proc/PID/status` (`VmRSS:` in KiB, `Threads:`).
fn proc_status(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

async fn idle(
    addr: String,
    sockets: usize,
    hold: u64,
    concurrency: usize,
    pid: Option<u32>,
) -> anyhow::Result<()> {
    let before = pid.and_then(rss_kib);
    if let Some(kib) = before {
        println!("server RSS before: {:.1} MiB", kib as f64 / 1024.0);
    }
    let gate = Arc::new(Semaphore::new(concurrency));
    let connected = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let settled = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(sockets);
    for i in 0..sockets {
        let (addr, gate, connected, dropped, stop, settled) = (
            addr.clone(),
            gate.clone(),
            connected.clone(),
            dropped.clone(),
            stop.clone(),
            settled.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut ws = {
                let _permit = gate.acquire().await.ok()?;
                let result = connect(&addr, &format!("idle-{i}")).await;
                settled.fetch_add(1, Ordering::Relaxed);
                match result {
                    Ok(ws) => ws,
                    Err(e) => {
                        eprintln!("socket {i}: {e:#}");
                        return None;
                    }
                }
            };
            connected.fetch_add(1, Ordering::Relaxed);
            // Hold: answer pings until told to stop.
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(500), next_text(&mut ws)).await {
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(_)) => {
                        dropped.fetch_add(1, Ordering::Relaxed);
                        return None;
                    }
                }
            }
            Some(ws)
        }));
    }
    while settled.load(Ordering::Relaxed) < sockets as u64 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let up = connected.load(Ordering::Relaxed);
    println!(
        "connected {up}/{sockets} sockets in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let held = Instant::now();
    let mut peak = 0;
    while held.elapsed() < Duration::from_secs(hold) {
        tokio::time::sleep(Duration::from_secs(10).min(Duration::from_secs(hold))).await;
        if let Some(kib) = pid.and_then(rss_kib) {
            peak = peak.max(kib);
            println!(
                "  {:>3.0} s: server RSS {:.1} MiB, {} sockets dropped",
                held.elapsed().as_secs_f64(),
                kib as f64 / 1024.0,
                dropped.load(Ordering::Relaxed)
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    let lost = dropped.load(Ordering::Relaxed);
    println!("held {up} sockets for {hold} s; {lost} dropped by the server");
    if let (Some(before), true) = (before, peak > 0) {
        let per = (peak.saturating_sub(before)) as f64 * 1024.0 / up.max(1) as f64;
        println!(
            "server RSS peak {:.1} MiB (before {:.1} MiB): {:.1} KiB per socket",
            peak as f64 / 1024.0,
            before as f64 / 1024.0,
            per / 1024.0
        );
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

#[derive(Default)]
struct Samples {
    ack_us: Vec<u64>,
    turn_us: Vec<u64>,
    errors: u64,
}

async fn chat_client(
    addr: String,
    id: usize,
    text: String,
    until: Instant,
) -> anyhow::Result<Samples> {
    let mut ws = connect(&addr, &format!("load-{id}"))
        .await
        .with_context(|| format!("client {id}"))?;
    let mut samples = Samples::default();
    let mut conversation: Option<String> = None;
    // Client ids unique across runs against the same database (a repeated id is a retry).
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let mut payload = json!({ "clientMessageId": format!("{run}-{id}-{n}"), "text": text });
        if let Some(c) = &conversation {
            payload["conversationId"] = json!(c);
        }
        let sent = Instant::now();
        ws.send(Message::text(format!(
            "42{n}{}",
            json!(["chat:send", payload])
        )))
        .await?;
        let ack_prefix = format!("43{n}");
        let mut acked = false;
        loop {
            let frame = next_text(&mut ws).await?;
            if let Some(ack) = frame.strip_prefix(&ack_prefix) {
                samples.ack_us.push(sent.elapsed().as_micros() as u64);
                let ack: Value = serde_json::from_str(ack)?;
                if ack[0]["ok"] != true {
                    samples.errors += 1;
                    eprintln!("client {id}: {ack}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    break;
                }
                conversation = ack[0]["conversationId"].as_str().map(str::to_owned);
                acked = true;
            } else if acked
                && (frame.starts_with(r#"42["chat:done""#)
                    || frame.starts_with(r#"42["chat:error""#))
            {
                if frame.starts_with(r#"42["chat:error""#) {
                    samples.errors += 1;
                }
                samples.turn_us.push(sent.elapsed().as_micros() as u64);
                break;
            }
        }
    }
    Ok(samples)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

async fn chat(addr: String, clients: usize, duration: u64, text: String) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(duration);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|id| tokio::spawn(chat_client(addr.clone(), id, text.clone(), until)))
        .collect();
    let mut all = Samples::default();
    for task in tasks {
        match task.await? {
            Ok(s) => {
                all.ack_us.extend(s.ack_us);
                all.turn_us.extend(s.turn_us);
                all.errors += s.errors;
            }
            Err(e) => {
                all.errors += 1;
                eprintln!("{e:#}");
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = own_cpu_ms();
    all.ack_us.sort_unstable();
    all.turn_us.sort_unstable();
    println!(
        "{clients} clients, {:.1} s: {} turns, {:.0} turns/s, {} errors",
        elapsed,
        all.turn_us.len(),
        all.turn_us.len() as f64 / elapsed,
        all.errors
    );
    println!(
        "ack  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        percentile(&all.ack_us, 0.5),
        percentile(&all.ack_us, 0.99),
        percentile(&all.ack_us, 1.0)
    );
    println!(
        "turn p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (chat:send to chat:done)",
        percentile(&all.turn_us, 0.5),
        percentile(&all.turn_us, 0.99),
        percentile(&all.turn_us, 1.0)
    );
    // For scripts/load.sh, which puts the turns next to the CPU every process spent on them.
    println!(
        "result turns={} seconds={elapsed:.3} load_cpu_ms={cpu:.0}",
        all.turn_us.len()
    );
    Ok(())
}

/// CPU time this process has used so far (all threads, user and system), in milliseconds.
fn own_cpu_ms() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let ms = |t: libc::timeval| t.tv_sec as f64 * 1e3 + t.tv_usec as f64 / 1e3;
    ms(usage.ru_utime) + ms(usage.ru_stime)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let addr = args
        .url
        .trim_start_matches("http://")
        .trim_start_matches("ws://")
        .trim_end_matches('/')
        .to_owned();
    match args.mode {
        Mode::Floor {
            server,
            read_buffer,
            sockets,
            port,
        } => floor::run(&server, read_buffer, sockets, port).await,
        Mode::FloorServe {
            server,
            read_buffer,
            port,
        } => floor::serve(&server, read_buffer, port).await,
        Mode::Idle {
            sockets,
            hold,
            concurrency,
            server_pid,
        } => idle(addr, sockets, hold, concurrency, server_pid).await,
        Mode::Chat {
            clients,
            duration,
            text,
        } => chat(addr, clients, duration, text).await,
        Mode::Realistic {
            mock_port,
            conversations,
            duration,
            think_ms,
            first_token_ms,
            tokens,
            token_ms,
            server_pid,
        } => {
            let model = MockModel {
                first_token: Duration::from_millis(first_token_ms),
                tokens,
                token_gap: Duration::from_millis(token_ms),
                first_text: Mutex::default(),
            };
            realistic::run(
                addr,
                mock_port,
                Arc::new(model),
                conversations,
                duration,
                think_ms,
                server_pid,
            )
            .await
        }
    }
}

/// A mock OpenAI-compatible model (`POST /v1/chat/completions`, streamed as server-sent
/// events), timed like a real one. Every user message starts with a marker naming its turn;
/// the model notes when it wrote each turn's first text token, for the latency the server
/// adds on the way to the client.
struct MockModel {
    first_token: Duration,
    tokens: usize,
    token_gap: Duration,
    first_text: Mutex<HashMap<String, Instant>>,
}

impl MockModel {
    fn noted(&self, marker: &str) -> Option<Instant> {
        self.first_text
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(marker)
    }

    async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let _ = socket.set_nodelay(true);
            let model = self.clone();
            tokio::spawn(async move {
                if let Err(e) = model.connection(socket).await {
                    eprintln!("mock model: {e:#}");
                }
            });
        }
    }

    /// HTTP/1.1 with keep-alive, as reqwest speaks it: requests with a Content-Length,
    /// answers chunked.
    async fn connection(&self, mut socket: TcpStream) -> anyhow::Result<()> {
        use tokio::io::AsyncReadExt;
        let mut buf = Vec::with_capacity(8192);
        loop {
            let head_end = loop {
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i + 4;
                }
                if socket.read_buf(&mut buf).await? == 0 {
                    return Ok(());
                }
            };
            let head = std::str::from_utf8(&buf[..head_end])?.to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse())
                .transpose()?
                .unwrap_or(0);
            while buf.len() < head_end + length {
                if socket.read_buf(&mut buf).await? == 0 {
                    bail!("the request body was cut");
                }
            }
            let body: Value = serde_json::from_slice(&buf[head_end..head_end + length])?;
            buf.drain(..head_end + length);
            self.answer(&mut socket, &body).await?;
        }
    }

    async fn answer(&self, socket: &mut TcpStream, request: &Value) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        let messages = request["messages"].as_array().cloned().unwrap_or_default();
        let last_user = messages.iter().rposition(|m| m["role"] == "user");
        let marker = last_user
            .and_then(|i| messages[i]["content"].as_str())
            .and_then(|c| c.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        let tool_answered =
            last_user.is_some_and(|i| messages[i..].iter().any(|m| m["role"] == "tool"));
        // Markers end in the turn's number: even turns call a tool first.
        let even = marker
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n % 2 == 0);
        socket
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                  transfer-encoding: chunked\r\n\r\n",
            )
            .await?;
        tokio::time::sleep(self.first_token).await;
        let chunk = |delta: Value, finish: Option<&str>| {
            json!({
                "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
                "model": "mock", "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }]
            })
        };
        if even && !tool_answered {
            let call = json!({ "role": "assistant", "tool_calls": [{ "index": 0, "id": format!("call-{marker}"),
                "type": "function", "function": { "name": "list_tasks", "arguments": "{}" } }] });
            send_event(socket, &chunk(call, None)).await?;
            send_event(socket, &chunk(json!({}), Some("tool_calls"))).await?;
        } else {
            for i in 0..self.tokens {
                if i > 0 {
                    tokio::time::sleep(self.token_gap).await;
                }
                let text = if i == 0 {
                    "Here".to_owned()
                } else {
                    format!(" word{i}")
                };
                send_event(socket, &chunk(json!({ "content": text }), None)).await?;
                if i == 0 {
                    self.first_text
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(marker.clone(), Instant::now());
                }
            }
            send_event(socket, &chunk(json!({}), Some("stop"))).await?;
        }
        let usage = json!({ "id": "chatcmpl-mock", "object": "chat.completion.chunk", "created": 0,
            "model": "mock", "choices": [],
            "usage": { "prompt_tokens": 100, "completion_tokens": self.tokens, "total_tokens": 100 + self.tokens } });
        send_event(socket, &usage).await?;
        write_chunk(socket, b"data: [DONE]\n\n").await?;
        socket.write_all(b"0\r\n\r\n").await?;
        Ok(())
    }
}

async fn send_event(socket: &mut TcpStream, event: &Value) -> anyhow::Result<()> {
    write_chunk(socket, format!("data: {event}\n\n").as_bytes()).await
}

async fn write_chunk(socket: &mut TcpStream, data: &[u8]) -> anyhow::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut frame = format!("{:x}\r\n", data.len()).into_bytes();
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
    socket.write_all(&frame).await?;
    Ok(())
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name; utime and stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

mod realistic {
    use super::*;

    #[derive(Default)]
    struct Stats {
        /// First `chat:delta` minus the model's first token, microseconds.
        added_us: Vec<u64>,
        /// `chat:send` to `chat:done`, microseconds.
        turn_us: Vec<u64>,
        errors: u64,
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn run(
        addr: String,
        mock_port: u16,
        model: Arc<MockModel>,
        conversations: usize,
        duration: u64,
        think_ms: u64,
        server_pid: u32,
    ) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", mock_port))
            .await
            .with_context(|| format!("mock model port {mock_port}"))?;
        tokio::spawn(model.clone().serve(listener));
        let before = rss_kib(server_pid).unwrap_or(0);
        println!("server RSS before: {:.1} MiB", before as f64 / 1024.0);
        // Sign every conversation in first; the measured window starts with them all there.
        let gate = Arc::new(Semaphore::new(200));
        let mut sockets = Vec::with_capacity(conversations);
        let mut pending = Vec::with_capacity(conversations);
        for id in 0..conversations {
            let (addr, gate) = (addr.clone(), gate.clone());
            pending.push(tokio::spawn(async move {
                let _permit = gate.acquire().await.ok()?;
                connect(&addr, &format!("realistic-{id}")).await.ok()
            }));
        }
        for p in pending {
            if let Some(ws) = p.await? {
                sockets.push(ws);
            }
        }
        let connected = sockets.len();
        let idle = rss_kib(server_pid).unwrap_or(0);
        println!(
            "connected {connected}/{conversations}; server RSS {:.1} MiB with them idle",
            idle as f64 / 1024.0
        );
        let started = Instant::now();
        let until = started + Duration::from_secs(duration);
        let cpu0 = cpu_ticks(server_pid).unwrap_or(0);
        let load0 = own_cpu_ms();
        let tasks: Vec<_> = sockets
            .into_iter()
            .enumerate()
            .map(|(id, ws)| tokio::spawn(conversation(ws, id, model.clone(), until, think_ms)))
            .collect();
        let mut peak = idle;
        let mut active_peak = 0;
        let threads_idle = proc_status(server_pid, "Threads:").unwrap_or(0);
        let mut threads_peak = threads_idle;
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(1)).await;
            peak = peak.max(rss_kib(server_pid).unwrap_or(0));
            threads_peak = threads_peak.max(proc_status(server_pid, "Threads:").unwrap_or(0));
            active_peak = active_peak.max(ACTIVE.load(Ordering::Relaxed));
        }
        let mut all = Stats::default();
        for task in tasks {
            match task.await? {
                Ok(s) => {
                    all.added_us.extend(s.added_us);
                    all.turn_us.extend(s.turn_us);
                    all.errors += s.errors;
                }
                Err(e) => {
                    all.errors += 1;
                    eprintln!("{e:#}");
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let hz = 100.0; // USER_HZ, the unit of /proc/PID/stat on Linux
        let server_ms = (cpu_ticks(server_pid).unwrap_or(0) - cpu0) as f64 * 1000.0 / hz;
        let load_ms = own_cpu_ms() - load0;
        all.added_us.sort_unstable();
        all.turn_us.sort_unstable();
        let turns = all.turn_us.len().max(1) as f64;
        println!(
            "{connected} conversations, {elapsed:.1} s, pause {think_ms} ms ±50%: {} turns ({:.0}/s), \
             at most {active_peak} turns in flight at once, {} errors",
            all.turn_us.len(),
            turns / elapsed,
            all.errors
        );
        println!(
            "added latency (first chat:delta after the model's first token): p50 {:.2} ms  \
             p99 {:.2} ms  max {:.2} ms ({} turns)",
            percentile(&all.added_us, 0.5),
            percentile(&all.added_us, 0.99),
            percentile(&all.added_us, 1.0),
            all.added_us.len()
        );
        println!(
            "turn p50 {:.0} ms  p99 {:.0} ms (chat:send to chat:done; the model alone takes {} ms, \
             {} ms with a tool call)",
            percentile(&all.turn_us, 0.5),
            percentile(&all.turn_us, 0.99),
            model.first_token.as_millis()
                + model.token_gap.as_millis() * (model.tokens as u128 - 1),
            2 * model.first_token.as_millis()
                + model.token_gap.as_millis() * (model.tokens as u128 - 1)
        );
        println!(
            "server RSS peak {:.1} MiB: {:.1} KiB per conversation over the idle server \
             ({:.1} KiB per socket idle)",
            peak as f64 / 1024.0,
            (peak.saturating_sub(before)) as f64 / connected.max(1) as f64,
            (idle.saturating_sub(before)) as f64 / connected.max(1) as f64
        );
        println!("server threads: {threads_idle} idle, at most {threads_peak} under load");
        println!(
            "CPU per turn: server {:.2} ms, load tool and mock model {:.2} ms",
            server_ms / turns,
            load_ms / turns
        );
        Ok(())
    }

    static ACTIVE: AtomicU64 = AtomicU64::new(0);

    async fn conversation(
        mut ws: Ws,
        id: usize,
        model: Arc<MockModel>,
        until: Instant,
        think_ms: u64,
    ) -> anyhow::Result<Stats> {
        let mut stats = Stats::default();
        let mut conversation: Option<String> = None;
        // Spread the first messages over one pause.
        let mut pause = Duration::from_millis(fastrand::u64(0..=think_ms));
        let mut n = 0u64;
        loop {
            if Instant::now() + pause >= until {
                return Ok(stats);
            }
            tokio::time::sleep(pause).await;
            pause = Duration::from_millis(think_ms / 2 + fastrand::u64(0..=think_ms));
            n += 1;
            let marker = format!("c{id}-{n}");
            let mut payload =
                json!({ "clientMessageId": marker, "text": format!("{marker} list my tasks") });
            if let Some(c) = &conversation {
                payload["conversationId"] = json!(c);
            }
            ACTIVE.fetch_add(1, Ordering::Relaxed);
            let sent = Instant::now();
            ws.send(Message::text(format!(
                "42{n}{}",
                json!(["chat:send", payload])
            )))
            .await?;
            let ack_prefix = format!("43{n}");
            let mut first_delta = None;
            loop {
                let frame = next_text(&mut ws).await?;
                if let Some(ack) = frame.strip_prefix(&ack_prefix) {
                    let ack: Value = serde_json::from_str(ack)?;
                    if ack[0]["ok"] != true {
                        stats.errors += 1;
                        eprintln!("conversation {id}: {ack}");
                        break;
                    }
                    conversation = ack[0]["conversationId"].as_str().map(str::to_owned);
                } else if frame.starts_with(r#"42["chat:delta""#) {
                    first_delta.get_or_insert_with(Instant::now);
                } else if frame.starts_with(r#"42["chat:done""#) {
                    stats.turn_us.push(sent.elapsed().as_micros() as u64);
                    break;
                } else if frame.starts_with(r#"42["chat:error""#) {
                    stats.errors += 1;
                    eprintln!("conversation {id}: {frame}");
                    break;
                }
            }
            ACTIVE.fetch_sub(1, Ordering::Relaxed);
            if let (Some(delta), Some(token)) = (first_delta, model.noted(&marker)) {
                stats
                    .added_us
                    .push(delta.saturating_duration_since(token).as_micros() as u64);
            }
        }
    }
}

mod floor {
    use super::*;

    pub(super) async fn run(
        server: &str,
        read_buffer: usize,
        sockets: usize,
        port: u16,
    ) -> anyhow::Result<()> {
        if !matches!(server, "actix" | "tungstenite") {
            bail!("--server is actix or tungstenite, not {server}");
        }
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args([
                "floor-serve",
                "--server",
                server,
                "--port",
                &port.to_string(),
            ])
            .args(["--read-buffer", &read_buffer.to_string()])
            .kill_on_drop(true)
            .spawn()
            .context("starting the bare server")?;
        let pid = child.id().context("the bare server exited")?;
        let addr = format!("127.0.0.1:{port}");
        for _ in 0..100 {
            if TcpStream::connect(&addr).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let before = rss_kib(pid).context("reading the bare server's RSS")?;
        let gate = Arc::new(Semaphore::new(200));
        let pending: Vec<_> = (0..sockets)
            .map(|_| {
                let (url, gate) = (format!("ws://{addr}/ws"), gate.clone());
                tokio::spawn(async move {
                    let _permit = gate.acquire().await.ok()?;
                    tokio_tungstenite::connect_async(url)
                        .await
                        .ok()
                        .map(|(ws, _)| ws)
                })
            })
            .collect();
        let mut held = Vec::with_capacity(sockets);
        for p in pending {
            if let Some(ws) = p.await? {
                held.push(ws);
            }
        }
        // Let what the handshakes allocated and freed settle.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let after = rss_kib(pid).unwrap_or(before);
        let buffer = if server == "tungstenite" {
            format!(", read buffer {read_buffer} B")
        } else {
            String::new()
        };
        println!(
            "bare {server}{buffer}: {} idle sockets, RSS {:.1} -> {:.1} MiB: {:.2} KiB per socket",
            held.len(),
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            after.saturating_sub(before) as f64 / held.len().max(1) as f64
        );
        drop(held);
        child.kill().await?;
        Ok(())
    }

    pub(super) async fn serve(server: &str, read_buffer: usize, port: u16) -> anyhow::Result<()> {
        match server {
            "actix" => {
                // actix-web runs on its own system, off this runtime, as in the server.
                std::thread::spawn(move || {
                    actix_web::rt::System::new().block_on(async move {
                        let server = actix_web::HttpServer::new(|| {
                            actix_web::App::new()
                                .route("/ws", actix_web::web::get().to(actix_socket))
                        })
                        .max_connections(100_000)
                        .backlog(4096)
                        .bind(("127.0.0.1", port))?;
                        server.run().await
                    })
                })
                .join()
                .map_err(|_| anyhow::anyhow!("the actix server panicked"))??;
                Ok(())
            }
            "tungstenite" => {
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .read_buffer_size(read_buffer)
                    .write_buffer_size(0);
                loop {
                    let (socket, _) = listener.accept().await?;
                    tokio::spawn(async move {
                        let ws = tokio_tungstenite::accept_async_with_config(socket, Some(config));
                        if let Ok(mut ws) = ws.await {
                            while let Some(Ok(_)) = ws.next().await {}
                        }
                    });
                }
            }
            other => bail!("--server is actix or tungstenite, not {other}"),
        }
    }

    async fn actix_socket(
        request: actix_web::HttpRequest,
        body: actix_web::web::Payload,
    ) -> actix_web::Result<actix_web::HttpResponse> {
        let (response, session, mut stream) = actix_ws::handle(&request, body)?;
        actix_web::rt::spawn(async move {
            let _session = session;
            while let Some(Ok(_)) = stream.next().await {}
        });
        Ok(response)
    }
}
