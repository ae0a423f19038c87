//! PostgreSQL restarting under load: the real binary on a PostgreSQL server of the test's own,
//! 50 socket clients chatting (a third of their messages make tasks), and reminders due while
//! the database is down. The server must stay up, say so on `/readyz`, refuse or fail turns
//! only with retryable errors, and afterwards hold every acknowledged message exactly once,
//! every task once, and have fired every reminder once.
//!
//! `PIXIE_OUTAGE_CLIENTS` and `PIXIE_OUTAGE_RESTARTS` make it longer by hand.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{env_number, serve_binary_to, temp_dir};
use crate::postgres::PrivatePostgres;
use crate::sio::Client;

/// What one client saw.
#[derive(Default)]
struct Seen {
    /// clientMessageId → the task title its text asked for, if any.
    acked: HashMap<String, Option<String>>,
    /// Ended in `chat:done`.
    done: usize,
    /// `chat:send` refused with a retryable code, then sent again.
    refused: usize,
    /// `chat:error` with `retryable: true`, then sent again.
    failed: usize,
    /// Anything else: a non-retryable error, a turn that did not end.
    problems: Vec<String>,
    conversation: Option<String>,
}

/// Sends `text` until its turn ends in `chat:done`: a refusal or a turn error that says it
/// is retryable is retried with the same `clientMessageId`, as a client would.
async fn turn_until_done(
    socket: &mut Client,
    seen: &mut Seen,
    client_id: &str,
    text: &str,
    title: Option<String>,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let mut payload = json!({ "clientMessageId": client_id, "text": text });
        if let Some(conversation) = &seen.conversation {
            payload["conversationId"] = json!(conversation);
        }
        let ack =
            tokio::time::timeout(Duration::from_secs(30), socket.emit("chat:send", payload)).await;
        let Ok(ack) = ack else {
            seen.problems
                .push(format!("{client_id}: no ack within 30 s"));
            return;
        };
        if ack["ok"] != true {
            let code = ack["error"]["code"].as_str().unwrap_or("");
            if code != "unavailable" {
                seen.problems
                    .push(format!("{client_id}: refused with {ack}"));
                return;
            }
            seen.refused += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
            continue;
        }
        let conversation = ack["conversationId"].as_str().unwrap_or("").to_owned();
        seen.conversation.get_or_insert(conversation.clone());
        seen.acked.insert(client_id.to_owned(), title.clone());
        loop {
            let next = tokio::time::timeout(Duration::from_secs(30), socket.next_event()).await;
            let Ok((event, body)) = next else {
                seen.problems
                    .push(format!("{client_id}: the turn did not end within 30 s"));
                return;
            };
            if body["conversationId"] != conversation.as_str() {
                continue;
            }
            match event.as_str() {
                "chat:done" => {
                    seen.done += 1;
                    return;
                }
                "chat:error" if body["retryable"] == true => {
                    seen.failed += 1;
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    break;
                }
                "chat:error" => {
                    seen.problems
                        .push(format!("{client_id}: not retryable: {body}"));
                    return;
                }
                _ => {}
            }
        }
    }
    seen.problems
        .push(format!("{client_id}: not answered within 90 s"));
}

async fn chat_client(addr: String, user: String, stop: Arc<AtomicBool>) -> Seen {
    let mut socket = Client::open_at(&addr).await.0.signed_in(&user).await;
    let mut seen = Seen::default();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let client_id = format!("{user}-{n}");
        let (text, title) = if n % 3 == 0 {
            let title = format!("errand {user} number {n}");
            (format!("todo: {title}"), Some(title))
        } else {
            (format!("hello, this is message {n} from {user}"), None)
        };
        turn_until_done(&mut socket, &mut seen, &client_id, &text, title).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    seen
}

/// Every page of a listing (`items`, `nextCursor`).
async fn all_items(http: &reqwest::Client, addr: &str, user: &str, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("http://{addr}{path}?limit=200");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = http
            .get(url)
            .bearer_auth(format!("dev:{user}"))
            .send()
            .await
            .expect("a listing")
            .json()
            .await
            .expect("a JSON listing");
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

async fn ready(http: &reqwest::Client, addr: &str) -> Option<bool> {
    let reply = http
        .get(format!("http://{addr}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    Some(reply.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarting_under_load_costs_retries_not_messages() {
    let clients = env_number("PIXIE_OUTAGE_CLIENTS", 50);
    let restarts = env_number("PIXIE_OUTAGE_RESTARTS", 1);
    let cluster = Arc::new(
        tokio::task::spawn_blocking(PrivatePostgres::start)
            .await
            .unwrap(),
    );
    let log_file = temp_dir("pixie-outage").join("server.log");
    let (mut server, addr) = serve_binary_to(
        &cluster.url(),
        &[
            ("PIXIE__REALTIME__CHAT_SENDS_PER_HOUR", "0".into()),
            ("PIXIE__REMINDERS__POLL_MS", "1000".into()),
            ("PIXIE__DATABASE__ACQUIRE_TIMEOUT_SECS", "2".into()),
        ],
        Some(&log_file),
    )
    .await;
    let http = reqwest::Client::new();

    // /readyz, watched throughout: how long it said 503, and whether it came back.
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = tokio::spawn({
        let (http, addr, watching) = (http.clone(), addr.clone(), watching.clone());
        async move {
            let mut transitions = Vec::new();
            let mut last = None;
            while watching.load(Ordering::Relaxed) {
                let now = ready(&http, &addr).await;
                if now != last {
                    transitions.push(now);
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            transitions
        }
    });

    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..clients)
        .map(|i| tokio::spawn(chat_client(addr.clone(), format!("pg-u{i}"), stop.clone())))
        .collect();

    // Reminders that fall due while the database is down, heard on a socket of their own.
    let mut listener = Client::open_at(&addr).await.0.signed_in("pg-rem").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut reminders = Vec::new();
    for k in 0..restarts {
        let due = chrono::Utc::now() + chrono::Duration::milliseconds(2500);
        for j in 0..3 {
            let reply: Value = http
                .post(format!("http://{addr}/v1/reminders"))
                .bearer_auth("dev:pg-rem")
                .json(&json!({
                    "text": format!("due in outage {k}.{j}"),
                    "dueAt": (due + chrono::Duration::milliseconds(500 * j)).to_rfc3339(),
                }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            reminders.push(reply["id"].as_str().expect("a reminder").to_owned());
        }
        // Down for about four seconds, mid-run.
        let down = cluster.clone();
        tokio::task::spawn_blocking(move || down.stop())
            .await
            .unwrap();
        eprintln!("outage {k}: PostgreSQL stopped");
        listener.idle(Duration::from_secs(4)).await;
        let up = cluster.clone();
        tokio::task::spawn_blocking(move || up.resume())
            .await
            .unwrap();
        eprintln!("outage {k}: PostgreSQL started again");
        listener.idle(Duration::from_secs(4)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for worker in workers {
        seen.push(worker.await.expect("a chat client"));
    }
    // Every reminder due during an outage fires after it, once.
    let mut fired: HashMap<String, usize> = HashMap::new();
    let until = Instant::now() + Duration::from_secs(15);
    while fired.len() < reminders.len() && Instant::now() < until {
        let events = listener.drain(Duration::from_millis(500)).await;
        for (name, body) in events {
            if name == "reminder:due" {
                let id = body["reminder"]["id"].as_str().unwrap_or("").to_owned();
                *fired.entry(id).or_default() += 1;
            }
        }
    }
    for (name, body) in listener.drain(Duration::from_secs(2)).await {
        if name == "reminder:due" {
            let id = body["reminder"]["id"].as_str().unwrap_or("").to_owned();
            *fired.entry(id).or_default() += 1;
        }
    }
    watching.store(false, Ordering::Relaxed);
    let transitions = watcher.await.unwrap();

    // Every acknowledged message once; every task once.
    let (mut acked, mut lost, mut duplicates, mut task_duplicates, mut tasks_missing) =
        (0, 0, 0, 0, 0);
    let problems: Vec<&String> = seen.iter().flat_map(|s| &s.problems).collect();
    for (i, s) in seen.iter().enumerate() {
        let user = format!("pg-u{i}");
        let Some(conversation) = &s.conversation else {
            continue;
        };
        let messages = all_items(
            &http,
            &addr,
            &user,
            &format!("/v1/conversations/{conversation}/messages"),
        )
        .await;
        let mut stored: HashMap<&str, usize> = HashMap::new();
        for m in messages.iter().filter(|m| m["role"] == "user") {
            *stored
                .entry(m["clientMessageId"].as_str().unwrap_or(""))
                .or_default() += 1;
        }
        let tasks = all_items(&http, &addr, &user, "/v1/tasks").await;
        let mut titles: HashMap<String, usize> = HashMap::new();
        for t in &tasks {
            *titles
                .entry(t["title"].as_str().unwrap_or("").to_lowercase())
                .or_default() += 1;
        }
        for (client_id, title) in &s.acked {
            acked += 1;
            match stored.get(client_id.as_str()).copied().unwrap_or(0) {
                0 => lost += 1,
                1 => {}
                n => duplicates += n - 1,
            }
            if let Some(title) = title {
                match titles.get(title).copied().unwrap_or(0) {
                    0 => tasks_missing += 1,
                    1 => {}
                    n => task_duplicates += n - 1,
                }
            }
        }
    }
    let done: usize = seen.iter().map(|s| s.done).sum();
    let refused: usize = seen.iter().map(|s| s.refused).sum();
    let failed: usize = seen.iter().map(|s| s.failed).sum();
    let fired_once = reminders
        .iter()
        .filter(|id| fired.get(*id) == Some(&1))
        .count();
    let fired_twice = fired.values().filter(|n| **n > 1).count();
    let log = std::fs::read_to_string(&log_file).unwrap_or_default();
    let panics = log.matches("panicked").count();
    eprintln!(
        "postgres restarts: {restarts}, clients {clients}: acked {acked}, answered {done}, \
         retryable refusals {refused}, retryable turn errors {failed}, lost = {lost}, \
         duplicates = {duplicates}, tasks missing {tasks_missing}, tasks twice \
         {task_duplicates}, reminders due in the outage {} fired once {fired_once} twice \
         {fired_twice}, /readyz {transitions:?}, panics = {panics}",
        reminders.len()
    );
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(server.try_wait().unwrap().is_none(), "the server stayed up");
    assert_eq!((lost, duplicates), (0, 0), "lost, duplicated messages");
    assert_eq!(acked, done, "every acked message was answered in the end");
    assert_eq!(
        (tasks_missing, task_duplicates),
        (0, 0),
        "tasks missing, tasks made twice"
    );
    assert_eq!(
        fired_once,
        reminders.len(),
        "reminders fired once: {fired:?}"
    );
    assert!(
        refused + failed > 0,
        "the outage was felt by the clients (else it tested nothing)"
    );
    let went_down_and_up = transitions
        .windows(3)
        .any(|w| w == [Some(true), Some(false), Some(true)]);
    assert!(went_down_and_up, "/readyz: {transitions:?}");
    assert_eq!(panics, 0, "no panic in the log");
    server.kill().await.unwrap();
}
