//! CORS for browser apps on other origins (`server.cors_origins`), with actix-cors: the
//! listed origins, exactly, or any loopback origin in dev mode. No credentials mode: tokens
//! travel in the `Authorization` header, never in cookies, so no origin can ride on a session.

use actix_cors::Cors;
use actix_web::http::{Method, header};

use super::middleware::REQUEST_ID;
use crate::config::CorsOrigins;

/// Browsers may cache a preflight this long (Chromium caps it at two hours).
const PREFLIGHT_MAX_AGE_SECS: usize = 3600;

/// The middleware for these origins; built per worker (actix-cors is not `Send`).
pub fn middleware(origins: &CorsOrigins) -> Cors {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            REQUEST_ID,
        ])
        // Readable by the app: the id to quote in a bug report, and when to retry a 429/503.
        .expose_headers([REQUEST_ID, header::RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE_SECS);
    for origin in &origins.exact {
        cors = cors.allowed_origin(origin);
    }
    if origins.loopback {
        cors = cors.allowed_origin_fn(|origin, _| origin.to_str().is_ok_and(is_loopback_origin));
    }
    cors
}

/// `http(s)://localhost`, `127.0.0.1` or `[::1]`, on any port.
fn is_loopback_origin(origin: &str) -> bool {
    let Ok(url) = url::Url::parse(origin) else {
        return false;
    };
    matches!(url.scheme(), "http" | "https")
        && url.path() == "/"
        && url.origin().ascii_serialization() == origin
        && match url.host() {
            Some(url::Host::Domain(host)) => host == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        }
}

#[cfg(test)]
mod tests {
    use super::is_loopback_origin;

    #[test]
    fn loopback_origins_are_local_hosts_on_any_port() {
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "https://localhost",
            "http://[::1]:8081",
        ] {
            assert!(is_loopback_origin(origin), "{origin}");
        }
        for origin in [
            "http://localhost.example.com",
            "http://example.com",
            "http://10.0.0.1:3000",
            "file://localhost",
            "null",
            "http://localhost:5173/path",
            "http://user@localhost:5173",
        ] {
            assert!(!is_loopback_origin(origin), "{origin}");
        }
    }
}
