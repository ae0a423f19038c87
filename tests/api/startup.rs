//! Start-up: database creation, migrations on boot, configuration errors, the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pixie::app::{Application, Secrets};
use pixie::config::Config;
use reqwest::StatusCode;

use crate::helpers::TestDatabase;

fn config_for(url: &str) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 1;
    config.database.url = url.to_owned();
    config.server.data_dir = crate::helpers::temp_dir("pixie-startup");
    config
}

#[tokio::test]
async fn a_missing_database_is_created_and_migrated() {
    let url = TestDatabase::missing_url();
    let app = Application::build(config_for(&url), Secrets::default())
        .await
        .expect("start on a missing database");
    let addr = app.local_addr();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    let ready = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let created = reqwest::Client::new()
        .post(format!("http://{addr}/v1/tasks"))
        .bearer_auth("dev:alice")
        .json(&serde_json::json!({"title": "works"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    handle.stop(false).await;
    tokio::task::spawn_blocking(move || TestDatabase::drop_by_url(&url))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_missing_database_is_an_error_when_creation_is_off() {
    let url = TestDatabase::missing_url();
    let mut config = config_for(&url);
    config.database.create_if_missing = false;
    let err = Application::build(config, Secrets::default())
        .await
        .err()
        .expect("refuses to start");
    assert!(format!("{err:#}").contains("database.url"), "{err:#}");
}

/// A plain HTTP/1.1 GET from a synchronous test; the status code, if any answer came.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn pixie() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pixie"));
    cmd.env_remove("PIXIE_CONFIG")
        .env_remove("RUST_LOG")
        .env("PIXIE__LOG__FORMAT", "text")
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    cmd
}

#[test]
fn bad_configuration_stops_the_start_naming_the_key() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[("PIXIE__SERVER__BIND", "nowhere")], "server.bind"),
        (&[("PIXIE__DATABASE__POOL_SIZE", "0")], "database.pool_size"),
        (&[("PIXIE__AUTH__MODE", "root")], "auth.mode"),
        (&[("PIXIE__SERVER__BIND", "0.0.0.0:8080")], "auth.mode"),
    ];
    for (env, key) in cases {
        let out = pixie()
            .arg("check-config")
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} was accepted");
        assert!(stderr.contains(key), "{env:?}: {stderr}");
    }
    let out = pixie()
        .args(["--config", "/nonexistent/pixie.toml", "check-config"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    // Clerk mode without a key source.
    let out = pixie()
        .arg("check-config")
        .env("PIXIE__AUTH__MODE", "clerk")
        .env_remove("CLERK_SECRET_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CLERK_SECRET_KEY"));
    let ok = pixie().arg("check-config").output().unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn the_binary_migrates_on_boot_and_serves_on_a_free_port() {
    let url = TestDatabase::missing_url();
    let migrate = pixie()
        .arg("migrate")
        .env("PIXIE__DATABASE__URL", &url)
        .output()
        .unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("applied 13 migration"));

    let data_dir = crate::helpers::temp_dir("pixie-binary");
    let mut child = pixie()
        .arg("serve")
        .env("PIXIE__DATABASE__URL", &url)
        .env("PIXIE__SERVER__DATA_DIR", &data_dir)
        .env("PIXIE__SERVER__BIND", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let rest = &line[at + "listening on http://".len()..];
                let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                let _ = tx.send(addr);
            }
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the server logs its address");
    let started = Instant::now();
    let mut ok = false;
    while started.elapsed() < Duration::from_secs(10) {
        if http_status(&addr, "/readyz") == Some(200) {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM: a graceful stop that exits 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    TestDatabase::drop_by_url(&url);
    let _ = std::fs::remove_dir_all(&data_dir);
    assert!(ok, "readyz never answered 200 at {addr}");
    assert!(status.success(), "exit status {status:?}");
}

async fn serve_once(url: &str, data_dir: &std::path::Path, work: impl AsyncFnOnce(String)) {
    let mut config = config_for(url);
    config.server.data_dir = data_dir.to_owned();
    // Nothing is indexed while serving: only `pixie reindex` fills the store.
    config.vector.outbox_worker = false;
    let app = Application::build(config, Secrets::default())
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    work(base).await;
    handle.stop(true).await;
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn reindex_rebuilds_the_vector_store_from_the_database() {
    let url = TestDatabase::missing_url();
    let data_dir = crate::helpers::temp_dir("pixie-reindex");
    let client = reqwest::Client::new();
    serve_once(&url, &data_dir, async |base| {
        for title in ["Renew the passport", "Buy a birthday present"] {
            let created = client
                .post(format!("{base}/v1/tasks"))
                .bearer_auth("dev:alice")
                .json(&serde_json::json!({ "title": title }))
                .send()
                .await
                .unwrap();
            assert_eq!(created.status(), StatusCode::CREATED);
        }
        client
            .post(format!("{base}/v1/memories"))
            .bearer_auth("dev:bob")
            .json(&serde_json::json!({ "content": "The passport office opens at 9" }))
            .send()
            .await
            .unwrap();
    })
    .await;

    // The stopped server's worker threads may hold the store a moment longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let reindex = loop {
        let reindex = pixie()
            .arg("reindex")
            .env("PIXIE__DATABASE__URL", &url)
            .env("PIXIE__SERVER__DATA_DIR", &data_dir)
            .output()
            .unwrap();
        let busy = String::from_utf8_lossy(&reindex.stderr).contains("in use by another process");
        if !busy || Instant::now() > deadline {
            break reindex;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        reindex.status.success(),
        "{}",
        String::from_utf8_lossy(&reindex.stderr)
    );
    let stdout = String::from_utf8_lossy(&reindex.stdout);
    assert!(stdout.contains("reindexed 3 documents"), "{stdout}");

    serve_once(&url, &data_dir, async |base| {
        let found: serde_json::Value = client
            .get(format!("{base}/v1/search?q=passport"))
            .bearer_auth("dev:alice")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let items = found["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{found}");
        assert_eq!(items[0]["snippet"], "Renew the passport");
    })
    .await;
    TestDatabase::drop_by_url(&url);
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn an_embedder_that_does_not_fit_the_vector_store_stops_the_start() {
    let url = TestDatabase::missing_url();
    let data_dir = crate::helpers::temp_dir("pixie-dimension");
    serve_once(&url, &data_dir, async |_| {}).await;
    let mut config = config_for(&url);
    config.server.data_dir = data_dir.clone();
    config.embeddings.dimension = Some(128);
    // The stopped server's worker threads may hold the store a moment longer.
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let error = match Application::build(config.clone(), Secrets::default()).await {
            Ok(_) => panic!("a 128-d embedder must not open a 384-d store"),
            Err(e) => format!("{e:#}"),
        };
        if !error.contains("in use by another process") || Instant::now() > deadline {
            break error;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        error.contains("384") && error.contains("128") && error.contains("pixie reindex"),
        "{error}"
    );
    TestDatabase::drop_by_url(&url);
    let _ = std::fs::remove_dir_all(&data_dir);
}

/// `pixie healthcheck` as a container runs it: its exit status, and how long it took.
async fn healthcheck(bind: &str, extra: &[(&str, &str)]) -> (std::process::Output, Duration) {
    let started = Instant::now();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pixie"))
        .args(["healthcheck", "--timeout-secs", "1"])
        .env_remove("PIXIE_CONFIG")
        .env("PIXIE__SERVER__BIND", bind)
        .envs(extra.iter().copied())
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .output()
        .await
        .expect("run pixie healthcheck");
    (out, started.elapsed())
}

#[tokio::test]
async fn healthcheck_exits_0_for_a_ready_server_and_1_otherwise_in_bounded_time() {
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let (_server, addr) = crate::helpers::serve_binary(&db, &[]).await;
    let (out, _) = healthcheck(&addr, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("\"database\":\"ok\""), "{stdout}");

    // Nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = free.local_addr().unwrap().to_string();
    drop(free);
    let (out, _) = healthcheck(&closed, &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/readyz"));

    // A listener that never answers: the timeout decides.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (out, took) = healthcheck(&silent_addr, &[]).await;
    hold.abort();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        took < Duration::from_secs(5),
        "took {took:?} with a 1 s timeout"
    );

    // A configuration it cannot read is unhealthy too (1: Docker reserves 2).
    let (out, _) = healthcheck(&addr, &[("PIXIE__DATABASE__POOL_SIZE", "0")]).await;
    assert_eq!(out.status.code(), Some(1));
    let (out, _) = healthcheck("127.0.0.1:0", &[]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port 0"));
}
