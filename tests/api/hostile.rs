//! Hostile input at the HTTP edge: made-up methods against the metrics, compressed bodies,
//! recurrence rules that would never finish expanding, bodies that trickle in, NUL in queries.

use std::time::{Duration, Instant};

use pixie::app::Secrets;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, TestDatabase, rss_kib, serve_binary, spawn_app, spawn_app_with};

const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Series of the request counter in a `/metrics` scrape.
async fn request_series(app: &TestApp) -> Vec<String> {
    let text = app.client.get(app.url("/metrics")).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("pixie_http_requests_total{"))
        .map(|l| {
            l.rsplit_once(' ')
                .map_or(l, |(series, _)| series)
                .to_owned()
        })
        .collect()
}

async fn junk_requests(app: &TestApp, from: usize, to: usize) {
    for i in from..to {
        let method = Method::from_bytes(format!("Q{i:07}XXXXXXXXXXXXXXXX").as_bytes()).unwrap();
        let reply = app
            .client
            .request(method, app.url("/healthz"))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_client_error(), "{}", reply.status());
        let path = format!("/nowhere/{i}/{}", "x".repeat(i % 50));
        app.client.get(app.url(&path)).send().await.unwrap();
    }
}

#[tokio::test]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let app = spawn_app().await;
    junk_requests(&app, 0, 100).await;
    request_series(&app).await;
    let before = request_series(&app).await;
    junk_requests(&app, 100, 600).await;
    let after = request_series(&app).await;
    assert_eq!(before, after, "new series from request text");
    assert!(
        after.iter().any(|s| s.contains(r#"method="OTHER""#)),
        "{after:?}"
    );
    assert!(
        after
            .iter()
            .all(|s| !s.contains("Q000") && !s.contains("/nowhere"))
    );
}

#[tokio::test]
async fn compressed_bodies_are_refused_without_being_inflated() {
    // 200 MB of zeros in about 200 KB of gzip.
    let bomb = tokio::task::spawn_blocking(|| {
        std::process::Command::new("sh")
            .args(["-c", "head -c 200000000 /dev/zero | gzip -1"])
            .output()
            .expect("gzip")
            .stdout
    })
    .await
    .unwrap();
    assert!(bomb.len() < 1_000_000, "{} bytes", bomb.len());
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let (server, addr) =
        serve_binary(&db, &[("CLERK_WEBHOOK_SECRET", WEBHOOK_SECRET.into())]).await;
    let pid = server.id().expect("running");
    let client = reqwest::Client::new();
    let ready = client
        .get(format!("http://{addr}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let before = rss_kib(pid);

    let now = chrono::Utc::now().timestamp().to_string();
    let sends = (0..8).map(|i| {
        let request = if i % 2 == 0 {
            client
                .post(format!("http://{addr}/webhooks/clerk"))
                .header("svix-id", format!("msg_{i}"))
                .header("svix-timestamp", &now)
                .header("svix-signature", "v1,AAAA")
        } else {
            client
                .post(format!("http://{addr}/v1/tasks"))
                .bearer_auth("dev:alice")
        };
        request
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
    });
    for reply in futures_util::future::join_all(sends).await {
        let reply = reply.expect("an answer");
        assert_eq!(reply.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let body: serde_json::Value = reply.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unsupported_encoding", "{body}");
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 50 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    // `identity` is no encoding at all.
    let plain = client
        .post(format!("http://{addr}/v1/tasks"))
        .bearer_auth("dev:alice")
        .header("content-encoding", "identity")
        .json(&json!({"title": "plain"}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), StatusCode::CREATED);
}

fn list(range: std::ops::Range<u32>) -> String {
    range.map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

#[tokio::test]
async fn recurring_events_cost_a_listing_a_bounded_amount() {
    let app = spawn_app().await;
    let dense = format!(
        "FREQ=HOURLY;BYMINUTE={};BYSECOND={}",
        list(0..60),
        list(0..60)
    );
    // Today's writes refuse rules finer than hourly.
    let refused = app
        .post(
            "/v1/events",
            "alice",
            json!({"title": "tick", "startAt": "0001-01-01T00:00:00Z",
                   "endAt": "0001-01-01T00:00:01Z", "recurrence": dense}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert!(refused.body["error"]["details"]["recurrence"].is_string());

    // An hourly series from year one lists a day at once.
    app.create_event(
        "alice",
        json!({"title": "chime", "startAt": "0001-01-01T00:00:00Z",
               "endAt": "0001-01-01T00:10:00Z", "recurrence": "FREQ=HOURLY"}),
    )
    .await;
    let day = "from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z";
    let listing = app
        .get(&format!("/v1/events?{day}&limit=50"), "alice")
        .await;
    assert_eq!(listing.status, StatusCode::OK, "{}", listing.body);
    assert_eq!(listing.body["items"].as_array().unwrap().len(), 24);

    // 300 series finer than hourly, stored before today's checks.
    app.get("/v1/me", "mallory").await;
    app.execute(&format!(
        "INSERT INTO events (id, user_id, title, start_at, end_at, recurrence, created_at, updated_at)
         SELECT gen_random_uuid(), 'mallory', 'tick', '0001-01-01T00:00:00Z',
                '0001-01-01T00:00:01Z', '{dense}', now(), now()
           FROM generate_series(1, 300)"
    ));
    let started = Instant::now();
    let path = format!("/v1/events?{day}");
    let listing = app.get(&path, "mallory");
    // The expansion does not hold the (one) request worker.
    let health = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let asked = Instant::now();
        assert_eq!(app.get("/healthz", "x").await.status, StatusCode::OK);
        asked.elapsed()
    };
    let (listing, health) = tokio::join!(listing, health);
    let took = started.elapsed();
    assert_eq!(listing.status, StatusCode::BAD_REQUEST, "{}", listing.body);
    assert_eq!(listing.error_code(), "validation_failed");
    let why = listing.body["error"]["details"]["range"].as_str().unwrap();
    assert!(why.contains("too many occurrences"), "{why}");
    // Before the bounds this listing did not finish in minutes.
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(health < Duration::from_secs(5), "{health:?}");

    // The assistant's view of the week leaves them out, and the turn ends.
    let chat = app
        .post(
            "/v1/chat",
            "mallory",
            json!({"text": "what's on my calendar today"}),
        )
        .await;
    assert_eq!(chat.status, StatusCode::OK, "{}", chat.body);
}

/// Sends a request head declaring a 100,000-byte body, then a byte every 300 ms; returns what
/// the server answered and how long until it closed the connection.
async fn trickle(addr: std::net::SocketAddr, head: String) -> (String, Duration) {
    let started = Instant::now();
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let drip = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut answer)).await;
    drip.abort();
    assert!(read.is_ok(), "the connection was held past 20 s");
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn bodies_that_trickle_in_are_cut_at_the_deadline() {
    let app = spawn_app_with(
        |c| c.server.body_timeout_secs = 1,
        Secrets {
            clerk_webhook_secret: Some(WEBHOOK_SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let heads = (0..40).map(|i| {
        let (path, extra) = if i % 2 == 0 {
            ("/v1/tasks", "Authorization: Bearer dev:alice\r\n".to_owned())
        } else {
            (
                "/webhooks/clerk",
                format!("svix-id: msg_{i}\r\nsvix-timestamp: {now}\r\nsvix-signature: v1,AAAA\r\n"),
            )
        };
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}Content-Length: 100000\r\n\r\n"
        )
    });
    let answers = futures_util::future::join_all(heads.map(|head| trickle(app.addr, head))).await;
    for (answer, held) in answers {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"request_timeout""#), "{answer}");
        assert!(held < Duration::from_secs(10), "held for {held:?}");
    }
    // The server serves on.
    assert_eq!(app.get("/v1/tasks", "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn query_strings_are_validated_like_bodies() {
    let app = spawn_app().await;
    for path in [
        "/v1/tasks?project=%00",
        "/v1/search?q=a%00b",
        "/v1/events?cursor=%00",
    ] {
        let reply = app.get(path, "alice").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{path}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "validation_failed", "{path}");
    }
    let long = format!("/v1/tasks?project={}", "p".repeat(101));
    let reply = app.get(&long, "alice").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["error"]["details"]["project"].is_string());
}

#[tokio::test]
async fn another_method_on_a_known_path_is_a_json_405() {
    let app = spawn_app_with(
        |_| {},
        Secrets {
            clerk_webhook_secret: Some(WEBHOOK_SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    for (method, path) in [
        (Method::GET, "/webhooks/clerk"),
        (Method::DELETE, "/healthz"),
        (Method::POST, "/metrics"),
        (Method::PUT, "/v1/chat"),
    ] {
        let reply = TestApp::send(app.client.request(method.clone(), app.url(path))).await;
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert_eq!(reply.error_code(), "method_not_allowed");
    }
}
