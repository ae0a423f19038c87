//! The embedded vector store's disk filling up: the real binary with its data directory on a
//! small tmpfs of the test's own, filled to the brim while it runs. Chat must go on answering
//! (recalling by words), REST writes must succeed, the process must live (a memory-mapped
//! write on a full disk is a SIGBUS), and once room is made the outbox must catch up, leaving
//! the index with a point for each of PostgreSQL's items.
//!
//! Mounting needs root (CI runs as root, and there a failed mount fails the test); elsewhere
//! the test says so and passes over it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use serde_json::{Value, json};

use crate::helpers::{TestDatabase, count, serve_binary_to, temp_dir};
use crate::sio::Client;

const DIMENSION: usize = 64;
const DISK_MB: u64 = 64;
/// Well above what one batch of this test writes.
const MIN_FREE_MB: u64 = 16;

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(mb: u64) -> Option<Self> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let dir = temp_dir("pixie-disk");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mb}m"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        // Root in a container without the right to mount: passed over by hand, never in CI.
        if !mounted && std::env::var_os("CI").is_none() {
            let _ = std::fs::remove_dir(&dir);
            return None;
        }
        assert!(mounted, "mount a tmpfs at {}", dir.display());
        Some(Self(dir))
    }

    fn available(&self) -> u64 {
        fs4::available_space(&self.0).expect("statvfs")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Writes zeros until the disk is full (tmpfs counts written pages, not file sizes).
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create the filler");
    let chunk = vec![0u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

async fn chat(socket: &mut Client, client_id: &str, text: &str) -> Value {
    let ack = socket
        .emit(
            "chat:send",
            json!({ "clientMessageId": client_id, "text": text }),
        )
        .await;
    assert_eq!(ack["ok"], true, "{text}: {ack}");
    loop {
        let (event, body) = tokio::time::timeout(Duration::from_secs(30), socket.next_event())
            .await
            .unwrap_or_else(|_| panic!("{text}: no end of turn within 30 s"));
        match event.as_str() {
            "chat:done" => return body,
            "chat:error" => panic!("{text}: {body}"),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_pauses_indexing_and_nothing_else() {
    let Some(disk) = Tmpfs::mount(DISK_MB) else {
        eprintln!("disk_full: no tmpfs can be mounted here (not root); this scenario runs in CI");
        return;
    };
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let data_dir = disk.0.join("data");
    let env = [
        ("PIXIE__SERVER__DATA_DIR", data_dir.display().to_string()),
        ("PIXIE__EMBEDDINGS__PROVIDER", "hashed".into()),
        ("PIXIE__EMBEDDINGS__DIMENSION", DIMENSION.to_string()),
        ("PIXIE__VECTOR__EDGE_MIN_FREE_MB", MIN_FREE_MB.to_string()),
        ("PIXIE__VECTOR__OUTBOX_MAX_RETRY_SECS", "1".into()),
    ];
    let log = temp_dir("pixie-disk-log").join("server.log");
    let (mut server, addr) = serve_binary_to(&db.url, &env, Some(&log)).await;
    let http = reqwest::Client::new();
    let post = async |path: &str, body: Value| {
        http.post(format!("http://{addr}{path}"))
            .bearer_auth("dev:dana")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("the server stopped answering (a SIGBUS?): {e}"))
            .status()
    };
    let mut conn = db.connect();
    let backlog =
        |conn: &mut PgConnection| count(conn, "SELECT count(*) AS count FROM vector_outbox");
    let wait_drained = async |conn: &mut PgConnection, secs: u64| {
        let until = Instant::now() + Duration::from_secs(secs);
        while backlog(conn) > 0 && Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        backlog(conn)
    };
    assert!(
        post(
            "/v1/memories",
            json!({"content": "The wifi password is pancake-42"})
        )
        .await
        .is_success()
    );
    assert_eq!(
        wait_drained(&mut conn, 20).await,
        0,
        "indexed while there is room"
    );

    // Full to the last page.
    let filler = disk.0.join("filler");
    fill(&filler);
    let free_when_full = disk.available();
    let mut written = 0;
    for i in 0..40 {
        let status = post(
            "/v1/tasks",
            json!({"title": format!("errand {i} while the disk is full, with a long title")}),
        )
        .await;
        assert!(
            status.is_success(),
            "a write succeeds on a full disk: {status}"
        );
        written += 1;
    }
    let mut socket = Client::open_at(&addr).await.0.signed_in("dana").await;
    let remembered = chat(&mut socket, "d-1", "remember that the boat is called Mira").await;
    let recalled = chat(&mut socket, "d-2", "what is the wifi password").await;
    let answer = recalled["message"]["content"].as_str().unwrap_or("");
    assert!(answer.contains("pancake-42"), "recalled by words: {answer}");
    let search: Value = http
        .get(format!("http://{addr}/v1/search?q=Mira"))
        .bearer_auth("dev:dana")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        search["items"].as_array().is_some_and(|i| !i.is_empty()),
        "a memory written on the full disk is found by its words: {search}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = backlog(&mut conn);
    assert!(waiting > 0, "indexing waits while the disk is full");
    assert!(
        server.try_wait().unwrap().is_none(),
        "the server lives on a full disk"
    );
    let ready = http
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert!(
        ready.status().is_success(),
        "still ready: recall by words serves"
    );

    // Room again: the outbox catches up.
    std::fs::remove_file(&filler).unwrap();
    let left = wait_drained(&mut conn, 30).await;
    assert_eq!(left, 0, "the outbox drained once there was room");
    let items = count(
        &mut conn,
        "SELECT count(*) AS count FROM (SELECT id FROM messages WHERE role = 'user' UNION ALL \
         SELECT id FROM tasks UNION ALL SELECT id FROM memories) items",
    );
    let pid = server.id().expect("a pid") as i32;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("a graceful stop")
        .unwrap();
    use pixie::ai::vector::VectorStore;
    let store = pixie::ai::vector::edge::EdgeStore::open(&data_dir.join("vectors")).unwrap();
    store.ensure_collection(DIMENSION, false).await.unwrap();
    let points = store.count("dana").await.unwrap() as i64;
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = text.matches("panicked").count();
    eprintln!(
        "disk full: {free_when_full} bytes free, {written} tasks and {} chat turns written, \
         {waiting} outbox jobs waited, drained to {left}; items {items}, points {points}; \
         panics = {panics}",
        [&remembered, &recalled].len()
    );
    assert_eq!(points, items, "the index holds every item once more");
    assert_eq!(panics, 0, "no panic in the log");
}
