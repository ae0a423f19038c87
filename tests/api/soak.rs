//! Soak: the real binary under mixed load (socket chat, REST writes and reads, reminders that
//! fire) for `PIXIE_SOAK_SECS` (120 here and in CI; 1800 by hand). Its resident memory and open
//! file descriptors are sampled every second and drawn to an SVG (`PIXIE_SOAK_OUT`, default the
//! build's tmp folder). After the warm-up, descriptors must stay flat and anonymous memory may
//! grow only with the items the load adds (the store holds new vectors in memory until it
//! optimises a segment); every request must succeed, every reminder must fire, and the log must
//! hold no warning or error but the expected ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestDatabase, env_number, serve_binary_to, temp_dir};
use crate::sio::Client;

/// Log lines at WARN or ERROR that are expected of this run.
const EXPECTED: [&str; 3] = [
    // Dev mode says it is dev mode.
    "auth.mode = \"dev\"",
    // The embedded store's start-up probe.
    "MULTI_MMAP_SUPPORT_CHECK_RESULT",
    // No model files in a fresh data directory: the hashed embedder.
    "using the hashed embedder",
];

#[derive(Default)]
struct Tally {
    turns: AtomicUsize,
    requests: AtomicUsize,
    reminders: AtomicUsize,
    due_heard: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failures.lock().unwrap().push(what);
    }
}

/// Resident memory in MiB, anonymous (the heap) and file-backed (the vector store's
/// memory-mapped segments, which grow with the data and are the kernel's to reclaim), and
/// open file descriptors.
fn sample(pid: u32) -> (f64, f64, usize) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0)
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    (kib("RssAnon:") / 1024.0, kib("RssFile:") / 1024.0, fds)
}

async fn chatter(addr: String, user: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let mut socket = Client::open_at(&addr).await.0.signed_in(&user).await;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let text = match n % 4 {
            0 => format!("todo: soak errand {n}"),
            1 => format!("remember that soak fact {n} is {}", n * 7),
            2 => "what are my tasks".to_owned(),
            _ => format!("hello, message {n}"),
        };
        let ack = socket
            .try_emit(
                "chat:send",
                json!({ "clientMessageId": format!("{user}-{n}"), "text": text }),
            )
            .await;
        if ack.as_ref().and_then(|a| a["ok"].as_bool()) != Some(true) {
            tally.fail(format!("{user}: chat:send {n}: {ack:?}"));
            return;
        }
        loop {
            match socket.try_next_event().await {
                Some((event, _)) if event == "chat:done" => break,
                Some((event, body)) if event == "chat:error" => {
                    tally.fail(format!("{user}: {body}"));
                    break;
                }
                Some(_) => {}
                None => return tally.fail(format!("{user}: the socket closed")),
            }
        }
        tally.turns.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn rest_client(addr: String, user: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let start = chrono::Utc::now() + chrono::Duration::days(1 + n % 30);
        let calls: Vec<reqwest::RequestBuilder> = vec![
            http.post(url("/v1/tasks"))
                .json(&json!({ "title": format!("rest task {n}"), "priority": "high" })),
            http.post(url("/v1/events")).json(&json!({
                "title": format!("rest event {n}"),
                "startAt": start.to_rfc3339(),
                "endAt": (start + chrono::Duration::hours(1)).to_rfc3339(),
                "recurrence": if n % 5 == 0 { Some("FREQ=WEEKLY;COUNT=10") } else { None },
                "alerts": [15],
            })),
            http.post(url("/v1/memories"))
                .json(&json!({ "content": format!("rest memory {n} about gardening") })),
            http.get(url("/v1/tasks?limit=20")),
            http.get(url(&format!(
                "/v1/events?from={}&to={}",
                urlencode(&chrono::Utc::now().to_rfc3339()),
                urlencode(&(chrono::Utc::now() + chrono::Duration::days(31)).to_rfc3339())
            ))),
            http.get(url("/v1/search?q=gardening")),
        ];
        let mut created_task = None;
        for (i, call) in calls.into_iter().enumerate() {
            match call.bearer_auth(format!("dev:{user}")).send().await {
                Ok(reply) if reply.status().is_success() => {
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                    if i == 0 {
                        let body: Value = reply.json().await.unwrap_or_default();
                        created_task = body["id"].as_str().map(str::to_owned);
                    }
                }
                Ok(reply) => {
                    let status = reply.status();
                    let body = reply.text().await.unwrap_or_default();
                    tally.fail(format!("{user}: call {i}: {status} {body:.200}"));
                }
                Err(e) => tally.fail(format!("{user}: call {i}: {e}")),
            }
        }
        // Tasks come and go, so the tables do not only grow.
        if let Some(id) = created_task.filter(|_| n % 2 == 0) {
            let reply = http
                .delete(url(&format!("/v1/tasks/{id}")))
                .bearer_auth(format!("dev:{user}"))
                .send()
                .await;
            match reply {
                Ok(r) if r.status().is_success() => {
                    tally.requests.fetch_add(1, Ordering::Relaxed);
                }
                other => tally.fail(format!("{user}: delete: {other:?}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn urlencode(text: &str) -> String {
    text.replace('+', "%2B").replace(':', "%3A")
}

/// Reminders due a few seconds ahead, heard as `reminder:due` on a socket.
async fn reminders(addr: String, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let http = reqwest::Client::new();
    let mut socket = Client::open_at(&addr).await.0.signed_in("soak-rem").await;
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let due = chrono::Utc::now() + chrono::Duration::seconds(2);
        let reply = http
            .post(format!("http://{addr}/v1/reminders"))
            .bearer_auth("dev:soak-rem")
            .json(&json!({ "text": format!("soak reminder {n}"), "dueAt": due.to_rfc3339() }))
            .send()
            .await;
        match reply {
            Ok(r) if r.status().is_success() => {
                tally.reminders.fetch_add(1, Ordering::Relaxed);
            }
            other => tally.fail(format!("reminder {n}: {other:?}")),
        }
        for (name, _) in socket.drain(Duration::from_millis(1000)).await {
            if name == "reminder:due" {
                tally.due_heard.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    // The last ones fall due after the load stops.
    let until = Instant::now() + Duration::from_secs(10);
    while tally.due_heard.load(Ordering::Relaxed) < tally.reminders.load(Ordering::Relaxed)
        && Instant::now() < until
    {
        for (name, _) in socket.drain(Duration::from_millis(500)).await {
            if name == "reminder:due" {
                tally.due_heard.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// Two panels against seconds: resident memory (anonymous in red, file-backed in grey, MiB)
/// and open file descriptors.
fn svg(samples: &[Sample], path: &std::path::Path) {
    let (width, height, pad) = (800.0, 220.0, 40.0);
    let t_max = samples.last().map(|s| s.0).unwrap_or(1.0).max(1.0);
    let panel = |lines: &[(Vec<f64>, &str)], top: f64, label: &str| {
        let max = lines
            .iter()
            .flat_map(|(values, _)| values.iter().copied())
            .fold(1.0_f64, f64::max)
            * 1.1;
        let mut out = format!(
            "<rect x=\"{pad}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>\
             <text x=\"{pad}\" y=\"{ty}\" font-size=\"13\">{label} (0 to {max:.0}; {t_max:.0} s)</text>",
            y0 = top + pad,
            w = width - 2.0 * pad,
            h = height - 2.0 * pad,
            ty = top + pad - 6.0,
        );
        for (values, colour) in lines {
            let points: Vec<String> = samples
                .iter()
                .zip(values)
                .map(|(s, v)| {
                    let x = pad + s.0 / t_max * (width - 2.0 * pad);
                    let y = top + height - pad - v / max * (height - 2.0 * pad);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" points=\"{}\"/>",
                points.join(" ")
            ));
        }
        out
    };
    let rss = panel(
        &[
            (samples.iter().map(|s| s.1).collect(), "#c0392b"),
            (samples.iter().map(|s| s.2).collect(), "#999999"),
        ],
        0.0,
        "resident memory, MiB: anonymous (red), file-backed (grey)",
    );
    let fds = panel(
        &[(samples.iter().map(|s| s.3 as f64).collect(), "#2471a3")],
        height,
        "open file descriptors",
    );
    let doc = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{}\">\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>{rss}{fds}</svg>",
        height * 2.0
    );
    std::fs::write(path, doc).expect("write the plot");
}

/// Seconds, anonymous and file-backed RSS (MiB), open fds, items the index holds a point for.
type Sample = (f64, f64, f64, usize, i64);

/// What the index holds points for: the users' messages, tasks, events and memories.
fn indexed_items(conn: &mut diesel::PgConnection) -> i64 {
    use diesel::RunQueryDsl;
    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(
        "SELECT (SELECT count(*) FROM messages WHERE role = 'user') + (SELECT count(*) FROM \
         tasks) + (SELECT count(*) FROM events) + (SELECT count(*) FROM memories) AS n",
    )
    .get_result::<N>(conn)
    .map(|r| r.n)
    .unwrap_or(0)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_soak_of_mixed_load_keeps_memory_and_descriptors_flat() {
    let secs: u64 = env_number("PIXIE_SOAK_SECS", 120);
    let out = std::env::var("PIXIE_SOAK_OUT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&out).unwrap();
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let log = temp_dir("pixie-soak").join("server.log");
    let (mut server, addr) = serve_binary_to(
        &db.url,
        &[
            ("PIXIE__REALTIME__CHAT_SENDS_PER_HOUR", "0".into()),
            ("PIXIE__REMINDERS__POLL_MS", "1000".into()),
        ],
        Some(&log),
    )
    .await;
    let pid = server.id().expect("a pid");
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let mut tasks = Vec::new();
    for i in 0..8 {
        tasks.push(tokio::spawn(chatter(
            addr.clone(),
            format!("soak-chat-{i}"),
            stop.clone(),
            tally.clone(),
        )));
    }
    for i in 0..4 {
        tasks.push(tokio::spawn(rest_client(
            addr.clone(),
            format!("soak-rest-{i}"),
            stop.clone(),
            tally.clone(),
        )));
    }
    tasks.push(tokio::spawn(reminders(
        addr.clone(),
        stop.clone(),
        tally.clone(),
    )));

    let started = Instant::now();
    let mut samples = Vec::new();
    let mut conn = db.connect();
    let mut items = 0;
    while started.elapsed() < Duration::from_secs(secs) {
        let (anon, file, fds) = sample(pid);
        if samples.len() % 5 == 0 {
            items = tokio::task::block_in_place(|| indexed_items(&mut conn));
        }
        samples.push((started.elapsed().as_secs_f64(), anon, file, fds, items));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("a load task");
    }
    let plot = out.join("soak.svg");
    svg(&samples, &plot);

    // Flat: the last third against the middle one (the first is the warm-up).
    let third = samples.len() / 3;
    let anon = |range: std::ops::Range<usize>| median(samples[range].iter().map(|s| s.1).collect());
    let file = |range: std::ops::Range<usize>| median(samples[range].iter().map(|s| s.2).collect());
    let fds = |range: std::ops::Range<usize>| samples[range].iter().map(|s| s.3).max().unwrap_or(0);
    let (rss_mid, rss_end) = (anon(third..2 * third), anon(2 * third..samples.len()));
    let (file_mid, file_end) = (file(third..2 * third), file(2 * third..samples.len()));
    // The load writes all along, and the store keeps new points' vectors in memory until a
    // segment is optimised: anonymous memory may grow with the items added, not otherwise.
    let items_at = |at: usize| samples[at.min(samples.len() - 1)].4;
    let added = (items_at(samples.len() * 5 / 6) - items_at(samples.len() / 2)).max(0);
    let per_item_kib = (rss_end - rss_mid).max(0.0) * 1024.0 / added.max(1) as f64;
    let (fds_mid, fds_end) = (fds(third..2 * third), fds(2 * third..samples.len()));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .filter(|l| !EXPECTED.iter().any(|e| l.contains(e)))
        .collect();
    let panics = text.matches("panicked").count();
    let failures = tally.failures.lock().unwrap().clone();
    let (turns, requests) = (
        tally.turns.load(Ordering::Relaxed),
        tally.requests.load(Ordering::Relaxed),
    );
    let (reminders, heard) = (
        tally.reminders.load(Ordering::Relaxed),
        tally.due_heard.load(Ordering::Relaxed),
    );
    eprintln!(
        "soak: {secs} s, {turns} turns, {requests} REST requests, {reminders} reminders ({heard} \
         heard due); {} items indexed; anonymous RSS median {rss_mid:.1} -> {rss_end:.1} MiB \
         ({per_item_kib:.2} KiB per item added), file-backed \
         {file_mid:.1} -> {file_end:.1} MiB, fds max {fds_mid} -> \
         {fds_end}; {} unexpected warnings, {} failures, panics = {panics}; plot {}",
        samples.last().map(|s| s.4).unwrap_or(0),
        unexpected.len(),
        failures.len(),
        plot.display()
    );
    assert!(failures.is_empty(), "{failures:#?}");
    assert!(unexpected.is_empty(), "{unexpected:#?}");
    assert_eq!(panics, 0);
    assert_eq!(heard, reminders, "every reminder fired");
    // A 384-dimension vector is 1.5 KiB; payload and bookkeeping fit in the rest.
    assert!(
        rss_end - rss_mid <= added as f64 * 4.0 / 1024.0 + 16.0,
        "anonymous RSS grows with the data only: {rss_mid:.1} -> {rss_end:.1} MiB for {added} \
         items (plot {})",
        plot.display()
    );
    assert!(
        fds_end <= fds_mid + 10,
        "fds stay flat: {fds_mid} -> {fds_end}"
    );
    assert!(turns > 0 && requests > 0);
    assert!(server.try_wait().unwrap().is_none());
}
