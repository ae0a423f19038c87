//! The playground: one page, served by the binary, to try the assistant in a browser (chat,
//! tasks, calendar, memories, search). Its files are embedded at compile time and speak only
//! the public contract (REST, and Socket.IO over the browser's WebSocket), so the page is also
//! a worked example of a client.
//!
//! Served only when `server.playground` is on. Every response carries a strict
//! Content-Security-Policy (no inline script, no eval, `connect-src 'self'`); the page renders
//! what it receives as text, never as markup. Scripts and styles are served under names that
//! carry a hash of their content, so they are cached for good; the page itself is revalidated
//! by its ETag. Each file is gzipped once, at first use.

use std::io::Write;
use std::sync::LazyLock;

use actix_web::http::header::{
    self, AcceptEncoding, CacheControl, CacheDirective, ContentEncoding, ETag, Encoding, EntityTag,
    Header, IfNoneMatch,
};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error::ApiError;
use crate::domain::DomainError;

const INDEX_HTML: &str = include_str!("index.html");
const APP_JS: &str = include_str!("app.js");
const APP_CSS: &str = include_str!("app.css");
const ICON_SVG: &str = include_str!("icon.svg");
const SW_JS: &str = include_str!("sw.js");

/// Where the page may load from and connect to: only this server. `'self'` in `connect-src`
/// covers the page's own `ws:`/`wss:` origin (CSP level 3).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; \
                   frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/")
            .route(web::get().to(index))
            .route(web::head().to(index)),
    )
    // The service worker (Web Push notifications) at the root, so that its scope is the page.
    .service(
        web::resource("/sw.js")
            .route(web::get().to(service_worker))
            .route(web::head().to(service_worker)),
    )
    .service(
        web::resource("/playground/{file}")
            .route(web::get().to(file))
            .route(web::head().to(file)),
    );
}

struct Asset {
    /// The path it is served at: `/` for the page, a content-hashed name for the rest.
    path: String,
    content_type: &'static str,
    identity: web::Bytes,
    gzip: web::Bytes,
    /// Weak: the gzipped and the plain body are the same representation.
    etag: EntityTag,
}

impl Asset {
    /// `name` is `stem.ext` for a file (served as `/playground/stem.<hash>.ext`), `None` for
    /// the page.
    fn new(name: Option<&str>, content_type: &'static str, body: String) -> Self {
        let digest = hmac_sha256::Hash::hash(body.as_bytes());
        let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
        let path = match name.and_then(|name| name.rsplit_once('.')) {
            Some((stem, ext)) => format!("/playground/{stem}.{}.{ext}", &tag[..16]),
            None => "/".to_owned(),
        };
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        // Writing to a Vec cannot fail.
        let gzip = encoder
            .write_all(body.as_bytes())
            .and_then(|()| encoder.finish())
            .unwrap_or_default();
        Self {
            path,
            content_type,
            identity: web::Bytes::from(body),
            gzip: web::Bytes::from(gzip),
            etag: EntityTag::new_weak(tag),
        }
    }
}

struct Assets {
    index: Asset,
    service_worker: Asset,
    files: [Asset; 3],
}

static ASSETS: LazyLock<Assets> = LazyLock::new(|| {
    let files = [
        Asset::new(
            Some("app.js"),
            "text/javascript; charset=utf-8",
            APP_JS.to_owned(),
        ),
        Asset::new(
            Some("app.css"),
            "text/css; charset=utf-8",
            APP_CSS.to_owned(),
        ),
        Asset::new(Some("icon.svg"), "image/svg+xml", ICON_SVG.to_owned()),
    ];
    // The page names each file by its hashed path.
    let mut page = INDEX_HTML.to_owned();
    for (placeholder, asset) in ["{{app.js}}", "{{app.css}}", "{{icon.svg}}"]
        .iter()
        .zip(&files)
    {
        page = page.replace(placeholder, &asset.path);
    }
    let mut service_worker = Asset::new(
        None,
        "text/javascript; charset=utf-8",
        SW_JS.replace("{{icon.svg}}", &files[2].path),
    );
    service_worker.path = "/sw.js".to_owned();
    Assets {
        index: Asset::new(None, "text/html; charset=utf-8", page),
        service_worker,
        files,
    }
});

async fn index(req: HttpRequest) -> HttpResponse {
    serve(&req, &ASSETS.index, CacheDirective::NoCache)
}

/// Revalidated like the page: a browser checks a service worker for updates by its URL.
async fn service_worker(req: HttpRequest) -> HttpResponse {
    serve(&req, &ASSETS.service_worker, CacheDirective::NoCache)
}

async fn file(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let path = format!("/playground/{name}");
    let asset = ASSETS
        .files
        .iter()
        .find(|asset| asset.path == path)
        .ok_or_else(|| DomainError::NotFound)?;
    // The name changes with the content: a year, and never revalidated.
    Ok(serve(&req, asset, CacheDirective::MaxAge(31_536_000)))
}

fn serve(req: &HttpRequest, asset: &Asset, cache: CacheDirective) -> HttpResponse {
    let immutable = matches!(cache, CacheDirective::MaxAge(_));
    let mut cache = vec![CacheDirective::Public, cache];
    if immutable {
        cache.push(CacheDirective::Extension("immutable".into(), None));
    }
    let mut res = HttpResponse::Ok();
    res.insert_header(CacheControl(cache))
        .insert_header(ETag(asset.etag.clone()))
        .insert_header((header::VARY, "Accept-Encoding"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header(("cross-origin-opener-policy", "same-origin"));

    let fresh = match IfNoneMatch::parse(req) {
        Ok(IfNoneMatch::Any) => true,
        Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(&asset.etag)),
        Err(_) => false,
    };
    if fresh {
        return res
            .status(actix_web::http::StatusCode::NOT_MODIFIED)
            .finish();
    }

    let gzip = Encoding::Known(ContentEncoding::Gzip);
    let wants_gzip = AcceptEncoding::parse(req)
        .ok()
        .and_then(|accept| accept.negotiate([gzip.clone(), Encoding::identity()].iter()))
        == Some(gzip);
    res.content_type(asset.content_type);
    if wants_gzip {
        res.insert_header((header::CONTENT_ENCODING, "gzip"))
            .body(asset.gzip.clone())
    } else {
        res.body(asset.identity.clone())
    }
}
