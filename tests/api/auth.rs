//! Authentication: dev tokens, and Clerk session JWTs against a local JWKS or a PEM key.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use pixie::app::Secrets;
use pixie::config::AuthMode;
use reqwest::StatusCode;
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

pub(crate) const KEY_1: &str = include_str!("../fixtures/test-key-1.pem");
const KEY_2: &str = include_str!("../fixtures/test-key-2.pem");
const PUB_1: &str = include_str!("../fixtures/test-key-1.pub.pem");
const JWKS_1: &str = include_str!("../fixtures/jwks-1.json");

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn claims(sub: &str) -> Value {
    let now = now();
    json!({"sub": sub, "iat": now, "nbf": now - 5, "exp": now + 300,
           "iss": "https://clerk.example.test", "azp": "https://app.example.test", "sid": "sess_1"})
}

pub(crate) fn sign(private_pem: &str, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn status_with(app: &TestApp, authorization: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.client.get(app.url("/v1/me"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let reply = TestApp::send(req).await;
    (reply.status, reply.body)
}

async fn assert_401(app: &TestApp, authorization: Option<&str>) {
    let (status, body) = status_with(app, authorization).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "{authorization:?} → {body}"
    );
    assert_eq!(body["error"]["code"], "unauthenticated");
}

async fn jwks_server() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/jwks"))
        .and(header("authorization", "Bearer sk_test_local"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS_1, "application/json"))
        .mount(&server)
        .await;
    server
}

async fn clerk_app(server: &MockServer, parties: Vec<String>) -> TestApp {
    let uri = server.uri();
    spawn_app_with(
        move |c| {
            c.auth.mode = AuthMode::Clerk;
            c.auth.clerk.api_url = uri;
            c.auth.clerk.authorized_parties = parties;
        },
        Secrets {
            clerk_secret_key: Some("sk_test_local".into()),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn dev_tokens_and_their_failures() {
    let app = spawn_app().await;
    let (status, body) = status_with(&app, Some("Bearer dev:alice")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["id"], "alice");
    for bad in [
        None,
        Some(""),
        Some("Bearer"),
        Some("Bearer "),
        Some("Basic dev:alice"),
        Some("Bearer alice"),
        Some("Bearer dev:"),
        Some("Bearer dev:has space"),
        Some("Bearer dev:a/b"),
    ] {
        assert_401(&app, bad).await;
    }
    let long = format!("Bearer dev:{}", "a".repeat(65));
    assert_401(&app, Some(&long)).await;
}

#[tokio::test]
async fn a_non_ascii_authorization_header_is_401_not_a_crash() {
    let app = spawn_app().await;
    let value = reqwest::header::HeaderValue::from_bytes(b"Bearer dev:\xe9\xff").unwrap();
    let reply = TestApp::send(
        app.client
            .get(app.url("/v1/me"))
            .header("authorization", value),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    // The worker is still serving.
    let (status, _) = status_with(&app, Some("Bearer dev:alice")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn clerk_tokens_verified_against_the_jwks() {
    let jwks = jwks_server().await;
    let app = clerk_app(&jwks, Vec::new()).await;

    let token = sign(KEY_1, "test-key-1", &claims("user_2abc"));
    let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "user_2abc");
    // The user's data is theirs: a task made with the token lists with it.
    let created = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .bearer_auth(&token)
            .json(&json!({"title": "via clerk"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);

    // Dev tokens mean nothing in clerk mode.
    assert_401(&app, Some("Bearer dev:user_2abc")).await;

    // Expired (beyond the leeway), not yet valid, wrong key, unknown kid, tampered.
    let mut expired = claims("user_2abc");
    expired["exp"] = json!(now() - 600);
    expired["iat"] = json!(now() - 900);
    expired["nbf"] = json!(now() - 900);
    assert_401(
        &app,
        Some(&format!("Bearer {}", sign(KEY_1, "test-key-1", &expired))),
    )
    .await;
    let mut early = claims("user_2abc");
    early["nbf"] = json!(now() + 600);
    assert_401(
        &app,
        Some(&format!("Bearer {}", sign(KEY_1, "test-key-1", &early))),
    )
    .await;
    assert_401(
        &app,
        Some(&format!(
            "Bearer {}",
            sign(KEY_2, "test-key-1", &claims("x"))
        )),
    )
    .await;
    assert_401(
        &app,
        Some(&format!(
            "Bearer {}",
            sign(KEY_2, "test-key-2", &claims("x"))
        )),
    )
    .await;
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(claims("user_admin").to_string());
    assert_401(&app, Some(&format!("Bearer {}", parts.join(".")))).await;

    // `alg: none` with no signature.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT","kid":"test-key-1"}"#);
    let none_claims = URL_SAFE_NO_PAD.encode(claims("user_2abc").to_string());
    assert_401(&app, Some(&format!("Bearer {none_header}.{none_claims}."))).await;
    // HS256 signed with the public key as the secret (key confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("test-key-1".into());
    let confused = jsonwebtoken::encode(
        &hs,
        &claims("user_2abc"),
        &EncodingKey::from_secret(PUB_1.as_bytes()),
    )
    .unwrap();
    assert_401(&app, Some(&format!("Bearer {confused}"))).await;
    // Malformed and missing.
    for bad in ["Bearer not.a.jwt", "Bearer a.b", "Bearer ...", "Bearer x"] {
        assert_401(&app, Some(bad)).await;
    }
    assert_401(&app, None).await;
}

#[tokio::test]
async fn authorized_parties_are_enforced_when_configured() {
    let jwks = jwks_server().await;
    let app = clerk_app(&jwks, vec!["https://app.example.test".into()]).await;
    let ok = sign(KEY_1, "test-key-1", &claims("user_1"));
    assert_eq!(
        status_with(&app, Some(&format!("Bearer {ok}"))).await.0,
        StatusCode::OK
    );
    let mut other = claims("user_1");
    other["azp"] = json!("https://evil.example.test");
    assert_401(
        &app,
        Some(&format!("Bearer {}", sign(KEY_1, "test-key-1", &other))),
    )
    .await;
    let mut missing = claims("user_1");
    missing.as_object_mut().unwrap().remove("azp");
    assert_401(
        &app,
        Some(&format!("Bearer {}", sign(KEY_1, "test-key-1", &missing))),
    )
    .await;
}

#[tokio::test]
async fn the_jwks_is_cached() {
    let jwks = jwks_server().await;
    let app = clerk_app(&jwks, Vec::new()).await;
    for i in 0..3 {
        let token = sign(KEY_1, "test-key-1", &claims(&format!("user_{i}")));
        assert_eq!(
            status_with(&app, Some(&format!("Bearer {token}"))).await.0,
            StatusCode::OK
        );
    }
    let fetches = jwks.received_requests().await.unwrap().len();
    assert_eq!(fetches, 1);
}

#[tokio::test]
async fn an_unreachable_jwks_is_503_not_401() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/jwks"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let app = clerk_app(&server, Vec::new()).await;
    let token = sign(KEY_1, "test-key-1", &claims("user_1"));
    let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable");
}

/// The server in clerk mode with the PEM key of `KEY_1`: no network.
pub(crate) async fn pem_app() -> TestApp {
    spawn_app_with(
        |c| {
            c.auth.mode = AuthMode::Clerk;
            c.auth.clerk.jwt_key = Some(PUB_1.replace('\n', "\\n"));
            // Nothing listens here: a network call would fail the test.
            c.auth.clerk.api_url = "http://127.0.0.1:9".into();
        },
        Secrets::default(),
    )
    .await
}

#[tokio::test]
async fn clerk_tokens_verified_against_a_pem_key_without_network() {
    let app = pem_app().await;
    let token = sign(KEY_1, "ins_anything", &claims("user_pem"));
    let (status, body) = status_with(&app, Some(&format!("Bearer {token}"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], "user_pem");
    assert_401(
        &app,
        Some(&format!(
            "Bearer {}",
            sign(KEY_2, "ins_anything", &claims("x"))
        )),
    )
    .await;
}

#[tokio::test]
async fn an_unknown_kid_refreshes_the_jwks_for_rotated_keys() {
    let server = MockServer::start().await;
    // The first fetch knows key 1 only; after rotation the JWKS serves key 2.
    Mock::given(method("GET"))
        .and(path("/v1/jwks"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(JWKS_1, "application/json"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/jwks"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(include_str!("../fixtures/jwks-2.json"), "application/json"),
        )
        .mount(&server)
        .await;
    let uri = server.uri();
    let app = spawn_app_with(
        move |c| {
            c.auth.mode = AuthMode::Clerk;
            c.auth.clerk.api_url = uri;
            c.auth.clerk.jwks_min_refresh_secs = 0;
        },
        Secrets {
            clerk_secret_key: Some("sk_test_local".into()),
            ..Default::default()
        },
    )
    .await;
    let old = sign(KEY_1, "test-key-1", &claims("user_1"));
    assert_eq!(
        status_with(&app, Some(&format!("Bearer {old}"))).await.0,
        StatusCode::OK
    );
    let rotated = sign(KEY_2, "test-key-2", &claims("user_1"));
    assert_eq!(
        status_with(&app, Some(&format!("Bearer {rotated}")))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_token_naming_critical_extensions_is_refused() {
    let app = pem_app().await;
    // RFC 7515 §4.1.11: `crit` lists extensions the verifier must understand; none are.
    let header =
        URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT","kid":"k","crit":["exp"],"exp":1}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("user_crit").to_string());
    let signing_input = format!("{header}.{body}");
    let key = EncodingKey::from_rsa_pem(KEY_1.as_bytes()).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key, Algorithm::RS256).unwrap();
    let token = format!("{signing_input}.{signature}");
    assert_401(&app, Some(&format!("Bearer {token}"))).await;
    // The same claims without `crit` are fine: the refusal is the header's.
    let plain = sign(KEY_1, "k", &claims("user_crit"));
    assert_eq!(
        status_with(&app, Some(&format!("Bearer {plain}"))).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_token_issued_before_the_users_erasure_cannot_bring_them_back() {
    let app = pem_app().await;
    let mut before = claims("user_erased");
    before["iat"] = json!(now() - 30);
    let old = format!("Bearer {}", sign(KEY_1, "k", &before));
    let created = TestApp::send(
        app.client
            .post(app.url("/v1/tasks"))
            .header("authorization", &old)
            .json(&json!({"title": "before"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let erased = TestApp::send(
        app.client
            .delete(app.url("/v1/me"))
            .header("authorization", &old),
    )
    .await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT);

    // The old token, still unexpired, is refused and re-creates nothing.
    let (status, body) = status_with(&app, Some(&old)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(
        app.count("SELECT count(*) FROM users WHERE id = 'user_erased'"),
        0
    );
    // A token issued after the erasure (a new sign-up with that id) starts afresh.
    let mut after = claims("user_erased");
    after["iat"] = json!(now() + 2);
    let fresh = format!("Bearer {}", sign(KEY_1, "k", &after));
    let (status, body) = status_with(&app, Some(&fresh)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(app.count("SELECT count(*) FROM tasks"), 0);
}
