//! Wiring: builds every component from the configuration, binds the listener and serves.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::Server;
use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpResponse, HttpServer, web};
use anyhow::Context;

use async_trait::async_trait;
use tokio_util::sync::CancellationToken;

use crate::ai::setup::{self as ai_setup, AiSecrets};
use crate::ai::vector::VectorStore;
use crate::auth;
use crate::config::Config;
use crate::db::relay::PgRelay;
use crate::db::{self, PgStore};
use crate::domain::indexer::{Indexer, IndexerSettings};
use crate::domain::ports::{HealthCheck, SystemClock};
use crate::domain::ports::{NoRelay, Relay};
use crate::domain::reminders::Scheduler;
use crate::domain::{Domain, ErrorCode, Ports, Problem, Settings};
use crate::http::error::error_body;
use crate::http::{self, AppState, WebhookSecret};
use crate::ws::fanout::RealtimeBus;
use crate::ws::hub::Hub;
use crate::ws::{self, Realtime};

/// Secrets, read from the environment only; never logged.
#[derive(Default, Clone)]
pub struct Secrets {
    pub clerk_secret_key: Option<String>,
    pub clerk_webhook_secret: Option<String>,
    /// Web Push's VAPID private key (base64url); generated under `server.data_dir` when unset.
    pub vapid_private_key: Option<String>,
    pub ai: AiSecrets,
}

impl Secrets {
    pub fn from_env() -> Self {
        let read = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self {
            clerk_secret_key: read("CLERK_SECRET_KEY"),
            clerk_webhook_secret: read("CLERK_WEBHOOK_SECRET"),
            vapid_private_key: read("PIXIE_VAPID_PRIVATE_KEY"),
            ai: AiSecrets {
                anthropic_api_key: read("ANTHROPIC_API_KEY"),
                openai_api_key: read("OPENAI_API_KEY"),
                qdrant_api_key: read("QDRANT_API_KEY"),
            },
        }
    }
}

/// Components a caller (a test, an embedding program) supplies instead of building them from
/// the configuration.
#[derive(Default, Clone)]
pub struct Overrides {
    pub vector_store: Option<Arc<dyn VectorStore>>,
}

/// `/readyz` entry of the vector store.
struct VectorHealth(Arc<dyn VectorStore>);

#[async_trait]
impl HealthCheck for VectorHealth {
    fn name(&self) -> &'static str {
        "vector_store"
    }

    async fn is_healthy(&self) -> bool {
        self.0.is_healthy().await
    }
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "clerk_secret_key",
                &self.clerk_secret_key.as_ref().map(|_| "***"),
            )
            .field("ai", &self.ai)
            .finish()
    }
}

pub struct Application {
    server: Server,
    addr: SocketAddr,
    domain: Domain,
    realtime: web::Data<Realtime>,
    stop_background: CancellationToken,
    shutdown_grace: std::time::Duration,
}

/// After the grace period, cancelled turns get this long to store what they streamed.
const STORE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

impl Application {
    /// Prepares the database (create if missing, migrate), wires the components and binds.
    pub async fn build(config: Config, secrets: Secrets) -> anyhow::Result<Self> {
        Self::build_with(config, secrets, Overrides::default()).await
    }

    pub async fn build_with(
        config: Config,
        secrets: Secrets,
        overrides: Overrides,
    ) -> anyhow::Result<Self> {
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
        let store = Arc::new(
            PgStore::new(db::pool(&settings)?)
                .with_timezone(config.ai.tz()?)
                .with_group_commit(settings.group_commit),
        );
        // Wired in one pass: the relay and the hub first (they need nothing), the bus over
        // them, the domain over the bus; what other instances signal is acted on by a task
        // that holds the domain and the hub.
        let (relay, incoming): (Arc<dyn Relay>, _) = match config.realtime.fanout {
            crate::config::Fanout::Local => (Arc::new(NoRelay), None),
            crate::config::Fanout::Postgres => {
                let url = config.database.url.clone();
                let (relay, incoming) = tokio::task::spawn_blocking(move || PgRelay::start(&url))
                    .await
                    .context("realtime fan-out start task failed")??;
                (relay, Some(incoming))
            }
        };
        let hub = Hub::new(
            config.realtime.socket_queue,
            config.realtime.max_sockets_per_user,
        );
        let metrics = Arc::new(crate::metrics::Metrics::default());
        {
            // Weak: the registry holds its samplers.
            let (weak, hub) = (Arc::downgrade(&metrics), hub.clone());
            metrics.sample_with(Box::new(move || {
                if let Some(metrics) = weak.upgrade() {
                    metrics.sockets.set(hub.sockets() as i64);
                }
                Box::pin(async {})
            }));
            let (weak, store) = (Arc::downgrade(&metrics), store.clone());
            metrics.sample_with(Box::new(move || {
                let (weak, store) = (weak.clone(), store.clone());
                Box::pin(async move {
                    let Some(metrics) = weak.upgrade() else {
                        return;
                    };
                    let pool = store.pool_gauges();
                    metrics.pool_connections.set(pool.connections as i64);
                    metrics.pool_in_use.set(pool.in_use as i64);
                    metrics.pool_waiting.set(pool.waiting as i64);
                    // A database that does not answer keeps the last values.
                    if let Ok(outbox) = store.outbox_gauges().await {
                        metrics.outbox_backlog.set(outbox.backlog);
                        metrics.outbox_oldest_seconds.set(outbox.oldest_seconds);
                    }
                })
            }));
        }
        let bus = RealtimeBus::new(hub.clone(), relay.clone());
        let ai = ai_setup::build(
            &config.ai,
            &config.embeddings,
            &config.vector,
            &config.server.data_dir,
            &secrets.ai,
            overrides.vector_store,
            metrics.clone(),
        )
        .await?;
        let domain = Domain::new(
            Ports {
                users: store.clone(),
                tasks: store.clone(),
                events: store.clone(),
                memories: store.clone(),
                conversations: store.clone(),
                reminders: store.clone(),
                push: store.clone(),
                feeds: store.clone(),
                pusher: Arc::new(crate::push::WebPush::new(
                    &config.push,
                    &config.server.data_dir,
                    secrets.vapid_private_key.as_deref(),
                    config.auth.mode == crate::config::AuthMode::Dev,
                )?),
                lexical: store.clone(),
                turn_reads: store.clone(),
                outbox: store.clone(),
                assistant: ai.assistant.clone(),
                index: ai.index.clone(),
                bus: bus.clone(),
                clock: Arc::new(SystemClock),
                meter: metrics.clone(),
            },
            Settings {
                timezone: config.ai.tz()?,
                history_messages: config.ai.history_messages,
                context_items: config.ai.context_items,
                recall_limit: config.ai.recall_limit,
                max_text_chars: config.realtime.max_text_chars,
                chat_sends_per_hour: config.realtime.chat_sends_per_hour,
            },
        );
        if let Some(incoming) = incoming {
            tokio::spawn(ws::fanout::receive(incoming, domain.clone(), hub.clone()));
        }
        let realtime = web::Data::new(Realtime {
            hub,
            domain: domain.clone(),
            verifier: verifier.clone(),
            config: config.realtime.clone(),
            closing: CancellationToken::new(),
        });
        let stop_background = CancellationToken::new();
        let indexer = Indexer {
            outbox: store.clone(),
            index: ai.index.clone(),
            wake: domain.index_signal(),
            settings: IndexerSettings {
                batch_size: config.vector.outbox_batch,
                poll_interval: std::time::Duration::from_millis(config.vector.outbox_poll_ms),
                max_retry_delay: std::time::Duration::from_secs(
                    config.vector.outbox_max_retry_secs,
                ),
                lease: std::time::Duration::from_secs(config.vector.outbox_lease_secs),
                gather: std::time::Duration::from_millis(config.vector.outbox_gather_ms),
            },
        };
        if config.vector.outbox_worker {
            tokio::spawn(indexer.run(stop_background.clone()));
        } else {
            tracing::info!("vector.outbox_worker = false: another instance indexes");
        }
        if config.reminders.enabled {
            let scheduler = Scheduler {
                domain: domain.clone(),
                settings: config.reminders.scheduler(&config.push),
            };
            tokio::spawn(scheduler.run(stop_background.clone()));
            let pusher = crate::domain::push::PushWorker {
                domain: domain.clone(),
                settings: config.push.worker(&config.reminders),
            };
            tokio::spawn(pusher.run(stop_background.clone()));
        } else {
            tracing::info!("reminders.enabled = false: another instance fires reminders");
        }
        let state = web::Data::new(AppState {
            domain: domain.clone(),
            verifier,
            health: vec![store, Arc::new(VectorHealth(ai.store.clone()))],
            llm_configured: ai.provider_name != "offline",
            webhook_secret,
        });

        // MCP sessions end when sockets close, at shutdown, so their streams do not hold it.
        let mcp = config.mcp.enabled.then(|| {
            crate::mcp::Mcp::new(
                domain.clone(),
                crate::mcp::McpSettings {
                    allowed_hosts: config.mcp.hosts(),
                    limits: config.mcp.limits(),
                    max_body_bytes: config.server.max_body_bytes,
                },
                realtime.closing.child_token(),
            )
        });
        let listener = TcpListener::bind(config.server.bind)
            .with_context(|| format!("binding server.bind = {}", config.server.bind))?;
        let addr = listener.local_addr()?;
        let max_body = config.server.max_body_bytes;
        let body_deadline = http::middleware::BodyDeadline(std::time::Duration::from_secs(
            config.server.body_timeout_secs,
        ));
        let metrics_data = web::Data::from(metrics.clone());
        let shutdown_grace = std::time::Duration::from_secs(config.server.shutdown_grace_secs);
        let app_realtime = realtime.clone();
        let playground = config.playground();
        let cors = config.cors();
        let app_cors = cors.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(app_realtime.clone())
                .configure(ws::routes)
                .app_data(metrics_data.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(body_deadline)
                .wrap(from_fn(http::middleware::body_guard))
                // Inside the request context and the metrics: preflights get a request id, a
                // refused one the JSON error body, and both are counted.
                .wrap(Condition::new(
                    !app_cors.is_empty(),
                    http::cors::middleware(&app_cors),
                ))
                .wrap(from_fn(http::metrics::record))
                .wrap(from_fn(http::middleware::request_context))
                .configure(http::routes)
                .configure(|cfg| {
                    if playground {
                        http::playground::routes(cfg);
                    }
                    if let Some(mcp) = &mcp {
                        cfg.service(mcp.service());
                    }
                })
                .default_service(web::to(not_found))
        })
        // Signals are handled in `run_until_stopped`, which lets turns finish before sockets
        // close; workers must outlive that.
        .disable_signals()
        // Streams (Socket.IO frames, SSE) are many small writes: without this, Nagle's
        // algorithm holds each one back until the client's delayed ACK (about 40 ms).
        .tcp_nodelay(true)
        .shutdown_timeout(config.server.shutdown_grace_secs + STORE_GRACE.as_secs() + 5);
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        // actix counts connections per worker.
        let workers = if config.server.workers > 0 {
            config.server.workers
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        };
        server = server.max_connections(config.server.max_connections.div_ceil(workers));
        let server = server.listen(listener)?.run();
        tracing::info!(
            %addr,
            auth = ?config.auth.mode,
            llm = ai.provider_name,
            fanout = relay.name(),
            vector_store = ai.store.name(),
            startup_ms = started.elapsed().as_millis() as u64,
            "pixie listening on http://{addr}"
        );
        if playground {
            tracing::info!("playground: open http://{addr}/ in a browser (server.playground)");
        }
        if !cors.is_empty() {
            tracing::info!(
                origins = ?cors.exact,
                loopback = cors.loopback,
                "CORS: browser apps on these origins may call the API (server.cors_origins)"
            );
        }
        if config.auth.mode == crate::config::AuthMode::Dev {
            tracing::warn!(
                "auth.mode = \"dev\": any `dev:<id>` token is accepted; for local use only"
            );
        }
        Ok(Self {
            server,
            addr,
            domain,
            realtime,
            stop_background,
            shutdown_grace,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The domain the server runs on (tests use it to reach what has no REST route).
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// Serves until SIGINT/SIGTERM (or a stop through [`Self::handle`]). On a signal: stops
    /// accepting connections, lets the turns in flight finish within the grace period (then
    /// cancels them, which stores what they streamed), sends every socket a Socket.IO
    /// DISCONNECT and closes it, lets HTTP requests finish, and returns.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let Self {
            server,
            domain,
            realtime,
            stop_background,
            shutdown_grace,
            ..
        } = self;
        let handle = server.handle();
        let on_signal = tokio::spawn(async move {
            let signal = shutdown_signal().await;
            tracing::info!(
                signal,
                turns = domain.turns().in_flight(),
                sockets = realtime.hub.sockets(),
                grace_secs = shutdown_grace.as_secs(),
                "shutting down: no new connections; turns in flight may finish"
            );
            // The stop command goes out at once; the future reports completion.
            let stopped = handle.stop(true);
            let cancelled = domain.turns().shutdown(shutdown_grace, STORE_GRACE).await;
            realtime.closing.cancel();
            tracing::info!(cancelled_turns = cancelled, "turns settled; sockets closed");
            stopped.await;
        });
        let result = server.await;
        on_signal.abort();
        stop_background.cancel();
        result
    }

    /// A handle to stop the server from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "SIGINT",
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; SIGINT only");
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

/// No route took the request: a documented path with another method is a 405 with `Allow`
/// (each method is its own route, so the router alone would say 404); anything else a 404.
async fn not_found(req: actix_web::HttpRequest) -> HttpResponse {
    if let Some(methods) = http::openapi::DOCUMENT.methods_of(req.path()) {
        let allow = methods
            .iter()
            .map(|m| m.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        return HttpResponse::MethodNotAllowed()
            .insert_header((actix_web::http::header::ALLOW, allow))
            .json(error_body(&Problem::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )));
    }
    HttpResponse::NotFound().json(error_body(&Problem::new(
        ErrorCode::NotFound,
        "no such route",
    )))
}

/// Rebuilds the vector store from PostgreSQL for the configured embedder: drops the
/// collection, creates it anew and indexes every task, event, memory and message, recording
/// its progress in the store as it goes. A rebuild that was interrupted (with the same
/// embedder) resumes where it got to instead. `total` is told how many documents there are
/// and, when resuming, how many an earlier run did; `progress` how many are done.
pub async fn reindex(
    config: &Config,
    secrets: &Secrets,
    total: impl FnOnce(u64, Option<u64>),
    mut progress: impl FnMut(u64),
) -> anyhow::Result<u64> {
    use crate::ai::index::{Progress, StoreRecord, VectorIndex};
    use crate::domain::assistant::DocKind;
    use crate::domain::ports::Outbox;

    let settings = config.database.settings();
    {
        let settings = settings.clone();
        tokio::task::spawn_blocking(move || db::prepare(&settings))
            .await
            .context("database preparation task failed")??;
    }
    let store = PgStore::new(db::pool(&settings)?);
    let embedder = ai_setup::embedder(&config.embeddings, &config.server.data_dir, &secrets.ai)?;
    let open = |recreate| {
        ai_setup::vector_store(
            &config.vector,
            &config.server.data_dir,
            &secrets.ai,
            embedder.dimension(),
            recreate,
        )
    };
    // An unfinished rebuild for this embedder resumes; anything else starts from scratch.
    let resume = match open(false).await {
        Ok(vectors) => {
            let index = VectorIndex::new(embedder.clone(), vectors.clone());
            match index.record().await? {
                Some(StoreRecord {
                    embedder: by,
                    rebuilding: Some(at),
                }) if by == embedder.id() => Some((vectors, at)),
                _ => None,
            }
        }
        Err(_) => None,
    };
    let (vectors, from) = match resume {
        Some((vectors, at)) => (vectors, Some(at)),
        None => (open(true).await?, None),
    };
    let index = VectorIndex::new(embedder.clone(), vectors);
    let record = |at: Progress| StoreRecord {
        embedder: embedder.id(),
        rebuilding: Some(at),
    };
    let first = from.unwrap_or(Progress {
        kind: DocKind::ALL[0],
        after: None,
    });
    index.set_record(&record(first)).await?;
    index.trust_store();

    let mut count = 0u64;
    let mut before = 0u64;
    for kind in DocKind::ALL {
        let n = u64::try_from(Outbox::count(&store, kind).await?).unwrap_or(0);
        count += n;
        if DocKind::ALL.iter().position(|k| *k == kind)
            < DocKind::ALL.iter().position(|k| *k == first.kind)
        {
            before += n;
        }
    }
    if let Some(at) = from {
        tracing::info!(kind = at.kind.as_str(), after = ?at.after, "resuming an interrupted reindex");
    }
    total(count, from.map(|_| before));
    let done = Indexer::reindex_all(
        &store,
        &index,
        256,
        from.map(|at| (at.kind, at.after)),
        async |kind, last, done| {
            progress(before + done);
            index
                .set_record(&record(Progress {
                    kind,
                    after: Some(last),
                }))
                .await
                .map_err(|e| crate::domain::DomainError::Unavailable(e.to_string()))
        },
    )
    .await?;
    index
        .set_record(&StoreRecord {
            embedder: embedder.id(),
            rebuilding: None,
        })
        .await?;
    Ok(before + done)
}
