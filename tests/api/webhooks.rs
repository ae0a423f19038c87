use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pixie::app::Secrets;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn signature(id: &str, ts: i64, body: &str) -> String {
    let key = STANDARD.decode(&SECRET["whsec_".len()..]).unwrap();
    let mut mac = hmac_sha256::HMAC::new(&key);
    mac.update(format!("{id}.{ts}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize()))
}

async fn deliver(
    app: &TestApp,
    body: &Value,
    ts: i64,
    sig: Option<String>,
) -> crate::helpers::Reply {
    deliver_as(app, "msg_1", body, ts, sig).await
}

async fn deliver_as(
    app: &TestApp,
    id: &str,
    body: &Value,
    ts: i64,
    sig: Option<String>,
) -> crate::helpers::Reply {
    let body = body.to_string();
    let sig = sig.unwrap_or_else(|| signature(id, ts, &body));
    TestApp::send(
        app.client
            .post(app.url("/webhooks/clerk"))
            .header("svix-id", id)
            .header("svix-timestamp", ts.to_string())
            .header("svix-signature", sig)
            .header("content-type", "application/json")
            .body(body),
    )
    .await
}

#[tokio::test]
async fn user_deleted_webhook_erases_the_user() {
    let app = spawn_app_with(
        |c| c.vector.outbox_worker = false,
        Secrets {
            clerk_webhook_secret: Some(SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    app.create_task("user_gone", json!({"title": "t"})).await;
    app.create_task("user_stays", json!({"title": "t"})).await;
    let now = chrono::Utc::now().timestamp();
    let event = json!({"type": "user.deleted", "object": "event", "data": {"id": "user_gone", "deleted": true, "object": "user"}});

    // Bad, stale or missing signatures change nothing.
    let forged = deliver(
        &app,
        &event,
        now,
        Some("v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".into()),
    )
    .await;
    assert_eq!(forged.status, StatusCode::UNAUTHORIZED);
    assert_eq!(forged.error_code(), "unauthenticated");
    let stale = deliver(&app, &event, now - 3600, None).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    let unsigned = TestApp::send(
        app.client
            .post(app.url("/webhooks/clerk"))
            .body(event.to_string()),
    )
    .await;
    assert_eq!(unsigned.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/v1/tasks", "user_gone").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let other = deliver_as(
        &app,
        "msg_0",
        &json!({"type": "user.created", "data": {"id": "x"}}),
        now,
        None,
    )
    .await;
    assert_eq!(other.status, StatusCode::NO_CONTENT);

    let ok = deliver(&app, &event, now, None).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT, "{}", ok.body);
    assert_eq!(
        app.get("/v1/tasks", "user_gone").await.body["items"],
        json!([])
    );
    assert_eq!(
        app.get("/v1/tasks", "user_stays").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(app.outbox().contains(&("user".into(), "delete".into())));
}

#[tokio::test]
async fn the_webhook_is_404_when_no_secret_is_configured() {
    let app = spawn_app().await;
    let reply = deliver(
        &app,
        &json!({"type": "user.deleted", "data": {"id": "u"}}),
        chrono::Utc::now().timestamp(),
        None,
    )
    .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_replayed_delivery_does_nothing() {
    let app = spawn_app_with(
        |_| {},
        Secrets {
            clerk_webhook_secret: Some(SECRET.into()),
            ..Default::default()
        },
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    let event = json!({"type": "user.deleted", "data": {"id": "user_r"}});
    app.create_task("user_r", json!({"title": "first life"}))
        .await;
    let first = deliver_as(&app, "msg_replayed", &event, now, None).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT, "{}", first.body);
    // The user comes back (a dev token after the erasure), then the delivery is replayed.
    app.create_task("user_r", json!({"title": "second life"}))
        .await;
    let replay = deliver_as(&app, "msg_replayed", &event, now, None).await;
    assert_eq!(replay.status, StatusCode::NO_CONTENT);
    let tasks = app.get("/v1/tasks", "user_r").await.body;
    assert_eq!(tasks["items"][0]["title"], "second life", "{tasks}");

    // A timestamp of now − 2^63 (whose plain difference from now overflows) is stale.
    let wrapped = i64::MIN + now;
    let stale = deliver_as(&app, "msg_wrapped", &event, wrapped, None).await;
    assert_eq!(stale.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/v1/tasks", "user_r").await.body["items"],
        tasks["items"]
    );
}
