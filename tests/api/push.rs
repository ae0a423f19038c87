//! Web Push through the public interfaces: subscriptions over REST with the endpoint policy
//! (SSRF), and the push itself against a push service written for the test (tests/push/, in
//! Node, decrypting with npm's http_ece).

use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::spawn_app;
use crate::node::{require_package, run_node_tests};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A valid uncompressed P-256 point (the generator) and an auth secret.
pub(crate) fn keys() -> Value {
    let point = concat!(
        "04",
        "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
        "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5"
    );
    let bytes: Vec<u8> = (0..point.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&point[i..i + 2], 16).unwrap())
        .collect();
    json!({ "p256dh": b64(&bytes), "auth": b64(&[7; 16]) })
}

#[tokio::test]
async fn push_is_delivered_to_a_local_push_service_and_decrypted_by_another_implementation() {
    require_package("http_ece");
    let app = spawn_app().await;
    run_node_tests(
        "tests/push",
        &[("PIXIE_URL", format!("http://{}", app.addr))],
        Duration::from_secs(90),
    )
    .await;
}

#[tokio::test]
async fn endpoints_elsewhere_than_public_https_are_refused_and_dev_mode_allows_loopback_http() {
    let app = spawn_app().await;
    for endpoint in [
        "https://127.0.0.1/push",
        "https://localhost/push",
        "https://[::1]/push",
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/push",
        "https://192.168.1.10/push",
        "https://[fd00:ec2::254]/push",
        "http://10.0.0.1/push",
        "http://8.8.8.8/push",
        "ftp://127.0.0.1/push",
        "https://user:secret@8.8.8.8/push",
        "not a url",
    ] {
        let reply = app
            .post(
                "/v1/push/subscriptions",
                "alice",
                json!({ "endpoint": endpoint, "keys": keys() }),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{endpoint}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "validation_failed");
        assert!(
            reply.body["error"]["details"]["endpoint"].is_string(),
            "{endpoint}: {}",
            reply.body
        );
    }
    // Dev mode (the embedded default): http on loopback is accepted, for local push services.
    let ok = app
        .post(
            "/v1/push/subscriptions",
            "alice",
            json!({ "endpoint": "http://127.0.0.1:9/push/x", "keys": keys() }),
        )
        .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.body);
    let listed = app.get("/v1/push/subscriptions", "alice").await;
    assert_eq!(
        listed.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.body
    );
    assert_eq!(app.count("SELECT count(*) FROM push_subscriptions"), 1);
}

#[tokio::test]
async fn subscriptions_are_validated_bounded_and_the_owners_only() {
    let app = spawn_app().await;
    let endpoint = |n: usize| format!("http://127.0.0.1:9/push/{n}");
    for (body, field) in [
        (
            json!({ "endpoint": endpoint(0), "keys": { "p256dh": "short", "auth": b64(&[1; 16]) } }),
            "keys.p256dh",
        ),
        (
            json!({ "endpoint": endpoint(0), "keys": { "p256dh": b64(&[4; 65]), "auth": b64(&[1; 16]) } }),
            "keys.p256dh",
        ),
        (
            json!({ "endpoint": endpoint(0), "keys": { "p256dh": keys()["p256dh"], "auth": "!!" } }),
            "keys.auth",
        ),
        (
            json!({ "endpoint": format!("http://127.0.0.1:9/{}", "x".repeat(2100)), "keys": keys() }),
            "endpoint",
        ),
        (json!({ "endpoint": "", "keys": keys() }), "endpoint"),
        (json!({ "endpoint": endpoint(0) }), "keys"),
    ] {
        let reply = app.post("/v1/push/subscriptions", "bob", body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(
            reply.body["error"]["details"][field].is_string(),
            "{field}: {}",
            reply.body
        );
    }
    let mut first = Value::Null;
    for n in 0..20 {
        let reply = app
            .post(
                "/v1/push/subscriptions",
                "bob",
                json!({ "endpoint": endpoint(n), "keys": keys() }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        if n == 0 {
            first = reply.body;
        }
    }
    let over = app
        .post(
            "/v1/push/subscriptions",
            "bob",
            json!({ "endpoint": endpoint(20), "keys": keys() }),
        )
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST, "{}", over.body);
    // Another user sees none of them, and cannot remove them.
    let theirs = app.get("/v1/push/subscriptions", "carol").await;
    assert_eq!(theirs.body, json!([]));
    let path = format!("/v1/push/subscriptions/{}", first["id"].as_str().unwrap());
    assert_eq!(
        app.delete(&path, "carol").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.delete(&path, "bob").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.delete(&path, "bob").await.status, StatusCode::NOT_FOUND);
    let mine = app.get("/v1/push/subscriptions", "bob").await;
    assert_eq!(mine.body.as_array().map(Vec::len), Some(19));
    // Without a token: 401.
    let anonymous = app
        .client
        .get(app.url("/v1/push/vapid-public-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn outside_dev_mode_loopback_http_endpoints_are_refused_too() {
    let app = crate::auth::pem_app().await;
    let token = crate::auth::sign(
        crate::auth::KEY_1,
        "ins_anything",
        &crate::auth::claims("user_strict"),
    );
    for endpoint in ["http://127.0.0.1:9/push/x", "http://localhost:9/push/x"] {
        let reply = crate::helpers::TestApp::send(
            app.client
                .post(app.url("/v1/push/subscriptions"))
                .bearer_auth(&token)
                .json(&json!({ "endpoint": endpoint, "keys": keys() })),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{endpoint}: {}",
            reply.body
        );
        let problem = reply.body["error"]["details"]["endpoint"].as_str().unwrap();
        assert!(problem.contains("https"), "{problem}");
    }
    assert_eq!(app.count("SELECT count(*) FROM push_subscriptions"), 0);
}
