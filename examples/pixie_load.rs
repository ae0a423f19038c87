//! Load tool for the realtime edge: speaks Socket.IO over WebSocket like `socket.io-client`.
//!
//! ```text
//! pixie_load idle --url 127.0.0.1:8080 --sockets 10000 --hold 60 --server-pid PID
//! pixie_load chat --url 127.0.0.1:8080 --clients 100 --duration 30
//! ```
//!
//! `idle` opens authenticated sockets (one user each), holds them while answering the server's
//! pings, and reports the server's resident memory (from `/proc/PID/status`) before and while
//! they are held. `chat` runs closed-loop clients, each its own user with its own
//! conversation: `chat:send`, wait for the ack, wait for `chat:done`, again; it reports turns
//! per second and the latency of the acks and of whole turns. `scripts/load.sh` runs both
//! against a release build.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
}

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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
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
    Ok(())
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
    }
}
