//! Wiring: builds every component from the configuration, binds the listener and serves.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use crate::auth;
use crate::config::Config;
use crate::db::{self, PgStore};
use crate::domain::bus::InProcessBus;
use crate::domain::ports::SystemClock;
use crate::domain::{Domain, Ports};
use crate::http::error::error_body;
use crate::http::{self, AppState, WebhookSecret};

/// Secrets, read from the environment only; never logged.
#[derive(Default, Clone)]
pub struct Secrets {
    pub clerk_secret_key: Option<String>,
    pub clerk_webhook_secret: Option<String>,
}

impl Secrets {
    pub fn from_env() -> Self {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            clerk_secret_key: read("CLERK_SECRET_KEY"),
            clerk_webhook_secret: read("CLERK_WEBHOOK_SECRET"),
        }
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "clerk_secret_key",
                &self.clerk_secret_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

pub struct Application {
    server: Server,
    addr: SocketAddr,
    domain: Domain,
}

impl Application {
    /// Prepares the database (create if missing, migrate), wires the components and binds.
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        let started = Instant::now();
        config.validate()?;
        let verifier = auth::verifier(&config.auth, secrets.clerk_secret_key.clone())?;
        let webhook_secret = secrets
            .clerk_webhook_secret
            .as_deref()
            .map(WebhookSecret::parse)
            .transpose()?;

        let settings = config.database.settings();
        let applied = {
            let settings = settings.clone();
            tokio::task::spawn_blocking(move || db::prepare(&settings))
                .await
                .context("database preparation task failed")??
        };
        if !applied.is_empty() {
            tracing::info!(migrations = ?applied, "applied database migrations");
        }
        let store = Arc::new(PgStore::new(db::pool(&settings)?));
        let domain = Domain::new(Ports {
            users: store.clone(),
            tasks: store.clone(),
            events: store.clone(),
            memories: store.clone(),
            conversations: store.clone(),
            bus: Arc::new(InProcessBus::default()),
            clock: Arc::new(SystemClock),
        });
        let state = web::Data::new(AppState {
            domain: domain.clone(),
            verifier,
            health: vec![store],
            webhook_secret,
        });

        let listener = TcpListener::bind(config.server.bind)
            .with_context(|| format!("binding server.bind = {}", config.server.bind))?;
        let addr = listener.local_addr()?;
        let max_body = config.server.max_body_bytes;
        let metrics = web::Data::new(http::metrics::Metrics::default());
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(metrics.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .wrap(from_fn(http::metrics::record))
                .wrap(from_fn(http::middleware::request_context))
                .configure(http::routes)
                .default_service(web::to(not_found))
        })
        .shutdown_timeout(config.server.shutdown_grace_secs);
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let server = server.listen(listener)?.run();
        tracing::info!(
            %addr,
            auth = ?config.auth.mode,
            startup_ms = started.elapsed().as_millis() as u64,
            "pixie listening on http://{addr}"
        );
        if config.auth.mode == crate::config::AuthMode::Dev {
            tracing::warn!(
                "auth.mode = \"dev\": any `dev:<id>` token is accepted; for local use only"
            );
        }
        Ok(Self {
            server,
            addr,
            domain,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The domain the server runs on (tests use it to reach what has no REST route).
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish within the grace period.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(error_body("not_found", "no such route", None))
}
