//! CORS (`server.cors_origins`): what a browser on another origin is told. The same in a real
//! browser: tests/browser/cors.test.mjs.

use reqwest::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, VARY,
};
use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn preflight(app: &TestApp, origin: &str, method: &str, headers: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url("/v1/tasks"))
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

fn value<'a>(res: &'a reqwest::Response, name: &reqwest::header::HeaderName) -> Option<&'a str> {
    res.headers().get(name).and_then(|v| v.to_str().ok())
}

fn listed(res: &reqwest::Response, name: &reqwest::header::HeaderName) -> Vec<String> {
    value(res, name)
        .unwrap_or_default()
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect()
}

#[tokio::test]
async fn dev_mode_lets_loopback_origins_in_and_no_other() {
    let app = spawn_app().await;
    let res = preflight(
        &app,
        "http://localhost:5173",
        "POST",
        "authorization,content-type",
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        value(&res, &ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("http://localhost:5173")
    );
    let methods = listed(&res, &ACCESS_CONTROL_ALLOW_METHODS);
    for method in ["get", "post", "patch", "delete"] {
        assert!(
            methods.contains(&method.to_owned()),
            "{method} in {methods:?}"
        );
    }
    let headers = listed(&res, &ACCESS_CONTROL_ALLOW_HEADERS);
    for header in ["authorization", "content-type", "x-request-id"] {
        assert!(
            headers.contains(&header.to_owned()),
            "{header} in {headers:?}"
        );
    }
    assert!(
        res.headers()
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
    assert!(
        res.headers().get("x-request-id").is_some(),
        "a preflight has a request id too"
    );

    // The request itself: the origin is echoed, and the request id is readable by the app.
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("origin", "http://127.0.0.1:3000")
        .header("authorization", "Bearer dev:alice")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        value(&res, &ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("http://127.0.0.1:3000")
    );
    assert!(listed(&res, &ACCESS_CONTROL_EXPOSE_HEADERS).contains(&"x-request-id".to_owned()));
    assert!(listed(&res, &VARY).contains(&"origin".to_owned()));

    // Another origin is told nothing: its preflight is refused with the JSON error body.
    let res = preflight(&app, "https://evil.example", "POST", "authorization").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("CORS"),
        "{body}"
    );
    // A method the API has no use for.
    let res = preflight(&app, "http://localhost:5173", "PUT", "authorization").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn listed_origins_replace_the_default_and_nothing_else_gets_in() {
    let app = spawn_app_with(
        |c| c.server.cors_origins = Some(vec!["https://app.example.com".into()]),
        Default::default(),
    )
    .await;
    let res = preflight(&app, "https://app.example.com", "PATCH", "authorization").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        value(&res, &ACCESS_CONTROL_ALLOW_ORIGIN),
        Some("https://app.example.com")
    );
    for origin in [
        "http://localhost:5173",
        "https://app.example.com.evil.example",
        "null",
    ] {
        let res = preflight(&app, origin, "PATCH", "authorization").await;
        assert!(
            res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
            "{origin}"
        );
    }
    // A request from an unlisted origin is served (a browser will not let the page read it),
    // but carries no permission.
    let res = app
        .client
        .get(app.url("/v1/me"))
        .header("origin", "https://evil.example")
        .header("authorization", "Bearer dev:alice")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // An empty list turns CORS off: no preflight is answered.
    let off = spawn_app_with(
        |c| c.server.cors_origins = Some(Vec::new()),
        Default::default(),
    )
    .await;
    let res = preflight(&off, "http://localhost:5173", "POST", "authorization").await;
    assert!(res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    assert!(res.status().is_client_error(), "{}", res.status());
}
