//! The playground page (`server.playground`): how it is served (policy, caching, gzip, off
//! switch), and the page itself in a real browser: Debian's chromium driven by npm's
//! `playwright-core`, running tests/browser/*.test.mjs (the playground, and CORS from a page on
//! another origin) against servers started here.

use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, VARY,
};

use crate::helpers::{spawn_app, spawn_app_with};
use crate::node::{require_package, run_node_tests};
use crate::slow_llm::SlowLlm;
use crate::socketio_client::release_endpoint;

const BROWSER_TIMEOUT: Duration = Duration::from_secs(240);

/// The page's asset paths, as the page names them.
fn asset_paths(html: &str) -> Vec<String> {
    html.split('"')
        .filter(|part| part.starts_with("/playground/"))
        .map(str::to_owned)
        .collect()
}

fn header(res: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    res.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header on {}", res.url()))
        .to_str()
        .expect("an ASCII header")
}

#[tokio::test]
async fn the_page_and_its_files_come_with_a_strict_policy_caching_and_gzip() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, CONTENT_TYPE), "text/html; charset=utf-8");
    let csp = header(&res, CONTENT_SECURITY_POLICY).to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{directive} missing from {csp}");
    }
    for loophole in ["unsafe-inline", "unsafe-eval", "*", "data:"] {
        assert!(!csp.contains(loophole), "{loophole} in {csp}");
    }
    assert!(header(&res, CACHE_CONTROL).contains("no-cache"));
    assert!(header(&res, VARY).contains("Accept-Encoding"));
    let page_etag = header(&res, ETAG).to_owned();
    let html = res.text().await.unwrap();

    // No inline script or style for the policy to refuse: every script is a file.
    assert!(!html.contains("{{"), "a placeholder left in the page");
    for tag in html.split("<script").skip(1) {
        let head = &tag[..tag.find('>').expect("a closed tag")];
        assert!(head.contains("src="), "an inline <script{head}>");
    }
    assert!(!html.contains(" style="), "an inline style attribute");
    assert!(!html.contains(" onclick="), "an inline handler");
    for label in ["User id", "Session token", "Message"] {
        assert!(
            html.contains(&format!(">{label}</label>")),
            "no label {label:?}"
        );
    }

    // The page is revalidated by its ETag.
    let res = app
        .client
        .get(app.url("/"))
        .header(IF_NONE_MATCH, &page_etag)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    let mut paths = asset_paths(&html);
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 3, "app.js, app.css, icon.svg: {paths:?}");
    for path in &paths {
        let kind = match path.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            _ => panic!("an unexpected file {path}"),
        };
        let plain = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(plain.status(), StatusCode::OK, "{path}");
        assert_eq!(header(&plain, CONTENT_TYPE), kind, "{path}");
        // The name carries the content's hash: cached for good.
        let cache = header(&plain, CACHE_CONTROL);
        assert!(
            cache.contains("max-age=31536000") && cache.contains("immutable"),
            "{cache}"
        );
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        let etag = header(&plain, ETAG).to_owned();
        let body = plain.bytes().await.unwrap();

        let zipped = app
            .client
            .get(app.url(path))
            .header(ACCEPT_ENCODING, "br, gzip;q=0.8")
            .send()
            .await
            .unwrap();
        assert_eq!(header(&zipped, CONTENT_ENCODING), "gzip", "{path}");
        let packed = zipped.bytes().await.unwrap();
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .expect("valid gzip");
        assert_eq!(unpacked, body, "{path}: gzip of a different body");
        if path.ends_with(".js") {
            assert!(packed.len() * 2 < body.len(), "{path}: gzip saves little");
        }

        // gzip refused by its q-value: the plain body.
        let refused = app
            .client
            .get(app.url(path))
            .header(ACCEPT_ENCODING, "gzip;q=0")
            .send()
            .await
            .unwrap();
        assert!(refused.headers().get(CONTENT_ENCODING).is_none(), "{path}");
        assert_eq!(refused.bytes().await.unwrap(), body);

        let res = app
            .client
            .get(app.url(path))
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{path}");
    }

    // A name that is not (or no longer) one of the files: the contract's 404.
    let res = app
        .get("/playground/app.0000000000000000.js", "alice")
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(res.error_code(), "not_found");
    let res = app.client.head(app.url("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn the_page_is_not_served_when_the_playground_is_off() {
    let on = spawn_app().await;
    let html = on
        .client
        .get(on.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let script = asset_paths(&html)
        .into_iter()
        .find(|p| p.ends_with(".js"))
        .expect("the page names its script");

    let off = spawn_app_with(|c| c.server.playground = Some(false), Default::default()).await;
    for path in ["/", script.as_str()] {
        let res = off.get(path, "alice").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(res.error_code(), "not_found", "{path}");
    }
    // The API itself is unaffected.
    assert_eq!(off.get("/v1/me", "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_playground_works_in_a_real_browser() {
    require_package("playwright-core");
    let chromium = std::env::var("PIXIE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "{chromium} is missing: install Debian's chromium (`apt-get install chromium`; .ci/run \
         does), or name another build with PIXIE_CHROMIUM"
    );
    let screenshots = std::env::var("PIXIE_SCREENSHOT_DIR")
        .unwrap_or_else(|_| format!("{}/playground-screenshots", env!("CARGO_TARGET_TMPDIR")));
    std::fs::create_dir_all(&screenshots).expect("create the screenshot folder");

    let app = spawn_app().await;
    let llm = Arc::new(SlowLlm::start(&["Hel"], &["lo", " world"]).await);
    let slow = llm.spawn_app(|_| {}).await;
    let control = release_endpoint(llm.clone()).await;
    let closed = spawn_app_with(
        |c| c.server.cors_origins = Some(vec!["https://app.example.com".into()]),
        Default::default(),
    )
    .await;
    run_node_tests(
        "tests/browser",
        &[
            ("PIXIE_URL", format!("http://{}", app.addr)),
            ("PIXIE_SLOW_URL", format!("http://{}", slow.addr)),
            ("PIXIE_SLOW_CONTROL", control),
            ("PIXIE_CORS_CLOSED_URL", format!("http://{}", closed.addr)),
            ("PIXIE_CHROMIUM", chromium),
            ("PIXIE_SCREENSHOT_DIR", screenshots.clone()),
        ],
        BROWSER_TIMEOUT,
    )
    .await;
    println!("playground screenshots: {screenshots}");
}
