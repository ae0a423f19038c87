//! Settings: `config.toml` (every key documented there with its default), overridden by
//! `PIXIE__SECTION__KEY` environment variables. Secrets are never read from here: they come
//! from the environment only (`CLERK_SECRET_KEY`, …).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::db::DbSettings;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub auth: AuthConfig,
    pub ai: AiConfig,
    pub embeddings: EmbeddingsConfig,
    pub vector: VectorConfig,
    pub realtime: RealtimeConfig,
    pub reminders: RemindersConfig,
    pub push: PushConfig,
    pub mcp: McpConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// HTTP worker threads; 0 = one per CPU core.
    pub workers: usize,
    pub max_body_bytes: usize,
    /// A request body must arrive within this long of its headers, or the request gets 408
    /// and its connection is closed.
    pub body_timeout_secs: u64,
    /// Open connections (sockets included) the server holds at most; more wait to be accepted.
    pub max_connections: usize,
    /// How long in-flight requests may run on after a shutdown signal.
    pub shutdown_grace_secs: u64,
    /// Serve the playground page at `/`; unset = on in dev mode, off otherwise
    /// ([`Config::playground`]).
    pub playground: Option<bool>,
    /// Origins of browser apps that may call the API (CORS), exact (`https://app.example.com`);
    /// unset = any loopback origin in dev mode, none otherwise ([`Config::cors`]).
    pub cors_origins: Option<Vec<String>>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("data"),
            workers: 0,
            max_body_bytes: 1024 * 1024,
            body_timeout_secs: 15,
            max_connections: 25_000,
            shutdown_grace_secs: 30,
            playground: None,
            cors_origins: None,
        }
    }
}

/// The origins CORS lets in (see [`Config::cors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsOrigins {
    pub exact: Vec<String>,
    /// Any `http(s)://localhost|127.0.0.1|[::1]` origin, whatever its port.
    pub loopback: bool,
}

impl CorsOrigins {
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && !self.loopback
    }
}

/// An origin is `scheme://host[:port]` exactly as browsers send it: no wildcard, path or
/// trailing slash, lower case, no default port.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin.contains('*') {
        return Err("is a wildcard: list each origin exactly".into());
    }
    let url = url::Url::parse(origin).map_err(|e| format!("is not an origin ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must be an http:// or https:// origin".into());
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err(format!(
            "is not an origin as a browser sends it: write {canonical:?}"
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    pub url: String,
    pub create_if_missing: bool,
    pub pool_size: u32,
    pub connect_timeout_secs: u64,
    pub acquire_timeout_secs: u64,
    /// Concurrent chat messages stored by one statement and one commit (`src/db/appends.rs`).
    pub group_commit: bool,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: "postgres://postgres@localhost:5432/pixie".into(),
            create_if_missing: true,
            pool_size: 16,
            connect_timeout_secs: 5,
            acquire_timeout_secs: 5,
            group_commit: true,
        }
    }
}

impl DatabaseConfig {
    pub fn settings(&self) -> DbSettings {
        DbSettings {
            url: self.url.clone(),
            create_if_missing: self.create_if_missing,
            pool_size: self.pool_size,
            connect_timeout: Duration::from_secs(self.connect_timeout_secs),
            acquire_timeout: Duration::from_secs(self.acquire_timeout_secs),
            group_commit: self.group_commit,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    #[default]
    Dev,
    Clerk,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub mode: AuthMode,
    pub clerk: ClerkConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClerkConfig {
    /// PEM public key (networkless verification); unset = Clerk's JWKS.
    pub jwt_key: Option<String>,
    /// Allowed `azp` values; empty = not checked.
    pub authorized_parties: Vec<String>,
    /// Clerk's Backend API, where the JWKS is fetched (`{api_url}/v1/jwks`).
    pub api_url: String,
    pub jwks_cache_secs: u64,
    /// A token with an unknown `kid` refreshes the JWKS at most this often.
    pub jwks_min_refresh_secs: u64,
}

impl Default for ClerkConfig {
    fn default() -> Self {
        Self {
            jwt_key: None,
            authorized_parties: Vec::new(),
            api_url: "https://api.clerk.com".into(),
            jwks_cache_secs: 3600,
            jwks_min_refresh_secs: 60,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AiProvider {
    /// The built-in intent parser: no key, no network.
    #[default]
    Offline,
    Anthropic,
    /// Any OpenAI-compatible Chat Completions server.
    Openai,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiConfig {
    pub provider: AiProvider,
    /// Model name; unset = the provider's default.
    pub model: Option<String>,
    /// API base URL; unset = the provider's public API.
    pub base_url: Option<String>,
    /// The user's time zone (IANA name): times without an offset are read in it.
    pub timezone: String,
    pub max_tool_rounds: usize,
    pub max_tokens: u32,
    pub connect_timeout_secs: u64,
    /// Longest wait for the provider's first byte, and between two chunks of a stream.
    pub request_timeout_secs: u64,
    /// Retries of a call that failed before streaming (connect error, 429, 5xx).
    pub max_retries: u32,
    pub history_messages: u32,
    pub context_items: u32,
    pub recall_limit: usize,
    pub context_budget_chars: usize,
}

impl Default for AiConfig {
    fn default() -> Self {
        Self {
            provider: AiProvider::Offline,
            model: None,
            base_url: None,
            timezone: "UTC".into(),
            max_tool_rounds: 5,
            max_tokens: 1024,
            connect_timeout_secs: 10,
            request_timeout_secs: 60,
            max_retries: 2,
            history_messages: 20,
            context_items: 20,
            recall_limit: 5,
            context_budget_chars: 24_000,
        }
    }
}

impl EmbeddingsConfig {
    /// Where the MiniLM model files are (or are fetched to).
    pub fn model_dir(&self, data_dir: &Path) -> PathBuf {
        self.model_dir
            .clone()
            .unwrap_or_else(|| data_dir.join(crate::ai::minilm::MODEL_SUBDIR))
    }
}

impl AiConfig {
    pub fn tz(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.timezone.parse().map_err(|_| {
            anyhow::anyhow!(
                "ai.timezone: {:?} is not an IANA time zone (e.g. \"Europe/Berlin\")",
                self.timezone
            )
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingsProvider {
    /// MiniLM when its verified model files are present, else hashed (with a warning).
    #[default]
    Auto,
    /// all-MiniLM-L6-v2 in process; the start fails without its verified files.
    Minilm,
    /// Deterministic feature hashing, no network (`local` is its old name).
    #[serde(alias = "local")]
    Hashed,
    /// Any OpenAI-compatible `/v1/embeddings`.
    Openai,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbeddingsConfig {
    pub provider: EmbeddingsProvider,
    /// Where the MiniLM files are; unset = `server.data_dir/models/all-MiniLM-L6-v2`.
    pub model_dir: Option<PathBuf>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    /// Vector size; unset = 384 for `minilm` and `hashed`, 1536 for `openai`.
    pub dimension: Option<usize>,
    pub batch_size: usize,
    pub request_timeout_secs: u64,
}

impl Default for EmbeddingsConfig {
    fn default() -> Self {
        Self {
            provider: EmbeddingsProvider::Auto,
            model_dir: None,
            model: None,
            base_url: None,
            dimension: None,
            batch_size: 64,
            request_timeout_secs: 30,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorBackend {
    /// Qdrant Edge, in process, under `server.data_dir/vectors`.
    #[default]
    Edge,
    /// A Qdrant server or cluster (gRPC) at `vector.url`.
    Qdrant,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VectorConfig {
    pub backend: VectorBackend,
    /// Qdrant's gRPC URL (backend = "qdrant").
    pub url: String,
    pub collection: String,
    pub timeout_secs: u64,
    /// Run the outbox worker in this process (turn it off on instances that should not index;
    /// at least one instance must).
    pub outbox_worker: bool,
    /// Outbox jobs indexed per batch.
    pub outbox_batch: i64,
    /// How often the outbox is polled for other instances' writes and due retries.
    pub outbox_poll_ms: u64,
    /// After a write wakes the worker, how long it lets more gather before a batch: fewer,
    /// larger vector-store writes (each one flushed) against this much indexing delay.
    pub outbox_gather_ms: u64,
    /// Longest wait between retries of a failing outbox job.
    pub outbox_max_retry_secs: u64,
    /// A claimed batch is left to its worker this long: a batch claimed by an instance that
    /// died is indexed by another (or by the restarted one) after this. Longer than a batch
    /// can take (embedding, the store's write); a live worker that overruns it only has its
    /// batch indexed twice, which is harmless.
    pub outbox_lease_secs: u64,
    /// The embedded store (backend = "edge") stops writing while its disk has less than this
    /// free: its files are memory-mapped, and a full disk would kill the process. Indexing
    /// waits in the outbox meanwhile.
    pub edge_min_free_mb: u64,
}

impl Default for VectorConfig {
    fn default() -> Self {
        Self {
            backend: VectorBackend::Edge,
            url: "http://localhost:6334".into(),
            collection: "pixie".into(),
            timeout_secs: 10,
            outbox_worker: true,
            outbox_batch: 512,
            outbox_poll_ms: 1000,
            outbox_gather_ms: 50,
            outbox_max_retry_secs: 300,
            outbox_lease_secs: 60,
            edge_min_free_mb: 256,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fanout {
    /// Sockets of this process only (one instance).
    #[default]
    Local,
    /// PostgreSQL LISTEN/NOTIFY on `database.url`: every instance delivers every event.
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealtimeConfig {
    pub fanout: Fanout,
    /// The server pings every socket this often.
    pub ping_interval_secs: u64,
    /// A socket that answers nothing for this long after a ping is dropped.
    pub ping_timeout_secs: u64,
    /// Largest frame a client may send; a larger one closes that socket.
    pub max_payload_bytes: usize,
    /// A socket must send its CONNECT packet (with the token) within this time.
    pub connect_timeout_secs: u64,
    /// Sockets one user may hold at once (phones, laptops, tabs).
    pub max_sockets_per_user: usize,
    /// `chat:send` calls per user per hour; 0 = unlimited.
    pub chat_sends_per_hour: u32,
    /// Longest `text` of a `chat:send`, in characters.
    pub max_text_chars: usize,
    /// Frames queued for one socket; a client too slow to drain them is disconnected.
    pub socket_queue: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            fanout: Fanout::Local,
            ping_interval_secs: 25,
            ping_timeout_secs: 20,
            max_payload_bytes: 1_000_000,
            connect_timeout_secs: 45,
            max_sockets_per_user: 20,
            chat_sends_per_hour: 100,
            max_text_chars: 8000,
            socket_queue: 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RemindersConfig {
    /// Run the scheduler in this process.
    pub enabled: bool,
    /// The longest the scheduler sleeps without looking for other instances' reminders.
    pub poll_ms: u64,
    /// Missed by more than this (downtime): marked fired late, not delivered.
    pub max_lateness_secs: u64,
    /// Reminders fired per transaction.
    pub batch_size: i64,
}

impl Default for RemindersConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_ms: 10_000,
            max_lateness_secs: 3600,
            batch_size: 200,
        }
    }
}

impl RemindersConfig {
    pub fn scheduler(&self, push: &PushConfig) -> crate::domain::reminders::SchedulerSettings {
        crate::domain::reminders::SchedulerSettings {
            batch_size: self.batch_size,
            poll: Duration::from_millis(self.poll_ms),
            max_lateness: Duration::from_secs(self.max_lateness_secs),
            push_ttl: Duration::from_secs(push.ttl_secs),
        }
    }
}

/// The assistant's tools over MCP at `/mcp` (Streamable HTTP, bearer tokens as REST).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    pub enabled: bool,
    /// `Host` headers accepted at `/mcp` (DNS-rebinding defence): names, or `name:port`;
    /// `["*"]` accepts any.
    pub allowed_hosts: Vec<String>,
    /// Sessions (`Mcp-Session-Id`) open at once on this instance, and per user.
    pub max_sessions: usize,
    pub max_sessions_per_user: usize,
    /// A session unused this long is closed.
    pub session_idle_secs: u64,
    /// A session is closed this long after it opened, used or not.
    pub session_max_secs: u64,
}

impl Default for McpConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            max_sessions: 1000,
            max_sessions_per_user: 10,
            session_idle_secs: 1800,
            session_max_secs: 86_400,
        }
    }
}

impl McpConfig {
    pub fn limits(&self) -> crate::mcp::sessions::SessionLimits {
        crate::mcp::sessions::SessionLimits {
            max_sessions: self.max_sessions,
            max_per_user: self.max_sessions_per_user,
            idle: Duration::from_secs(self.session_idle_secs),
            lifetime: Duration::from_secs(self.session_max_secs),
        }
    }

    /// The hosts for rmcp's check, where an empty list means any.
    pub fn hosts(&self) -> Vec<String> {
        if self.allowed_hosts.iter().any(|h| h == "*") {
            Vec::new()
        } else {
            self.allowed_hosts.clone()
        }
    }
}

/// Web Push of fired reminders. The VAPID private key is a secret: `PIXIE_VAPID_PRIVATE_KEY`
/// only (else generated once under `server.data_dir`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushConfig {
    /// Who runs this server, for push services (RFC 8292 `sub`): `mailto:` or an `https:` URL.
    pub subject: String,
    /// How long a fired reminder is worth pushing; the push's TTL counts down from it.
    pub ttl_secs: u64,
    /// The longest one push may take (connect, send, answer).
    pub timeout_ms: u64,
    /// Attempts (429, 5xx, no answer) before a push is given up.
    pub max_attempts: u32,
    /// Pushes in flight at once.
    pub concurrency: usize,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            subject: "mailto:admin@localhost".to_owned(),
            ttl_secs: 3600,
            timeout_ms: 10_000,
            max_attempts: 6,
            concurrency: 16,
        }
    }
}

impl PushConfig {
    pub fn worker(&self, reminders: &RemindersConfig) -> crate::domain::push::PushSettings {
        let timeout = Duration::from_millis(self.timeout_ms);
        crate::domain::push::PushSettings {
            concurrency: self.concurrency,
            max_attempts: self.max_attempts,
            // Longer than a send can take, so a live worker's claim is never taken over.
            lease: (timeout * 3).max(Duration::from_secs(5)),
            ttl: Duration::from_secs(self.ttl_secs),
            poll: Duration::from_millis(reminders.poll_ms),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter, e.g. `info` or `pixie=debug,info`; `RUST_LOG` overrides it.
    pub level: String,
    pub format: LogFormat,
    /// Where spans are exported over OTLP/HTTP (protobuf), e.g.
    /// `http://localhost:4318/v1/traces`; unset = no export.
    pub otlp_endpoint: Option<String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Text,
            otlp_endpoint: None,
        }
    }
}

/// Where the configuration comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A path the operator named: it must exist.
    Explicit(PathBuf),
    /// `./config.toml` if present, else the built-in defaults.
    Default,
}

impl Config {
    /// Loads and validates the configuration. Errors name the offending key.
    pub fn load(source: &Source) -> anyhow::Result<Self> {
        Self::load_with_env(source, Env::prefixed("PIXIE__").split("__"))
    }

    fn load_with_env(source: &Source, env: Env) -> anyhow::Result<Self> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        match source {
            Source::Explicit(path) => {
                if !path.is_file() {
                    anyhow::bail!("config file {} does not exist", path.display());
                }
                figment = figment.merge(Toml::file_exact(path));
            }
            Source::Default => {
                let path = Path::new("config.toml");
                if path.is_file() {
                    figment = figment.merge(Toml::file_exact(path));
                }
            }
        }
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!(describe(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Whether the playground page is served: `server.playground`, or dev mode when unset (a
    /// page that signs in with `dev:` tokens is for a developer's own machine).
    pub fn playground(&self) -> bool {
        self.server
            .playground
            .unwrap_or(self.auth.mode == AuthMode::Dev)
    }

    /// Which browser origins may call the API: `server.cors_origins`, or, when unset, any
    /// loopback origin in dev mode (a frontend's dev server on another port) and none otherwise.
    pub fn cors(&self) -> CorsOrigins {
        match &self.server.cors_origins {
            Some(exact) => CorsOrigins {
                exact: exact.clone(),
                loopback: false,
            },
            None => CorsOrigins {
                exact: Vec::new(),
                loopback: self.auth.mode == AuthMode::Dev,
            },
        }
    }

    /// Checks what types alone cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut problems = Vec::new();
        if self.server.max_body_bytes < 1024 {
            problems.push("server.max_body_bytes must be at least 1024".to_owned());
        }
        if self.server.body_timeout_secs == 0 {
            problems.push("server.body_timeout_secs must be at least 1".to_owned());
        }
        if self.server.max_connections == 0 {
            problems.push("server.max_connections must be at least 1".to_owned());
        }
        for origin in self.server.cors_origins.iter().flatten() {
            if let Err(problem) = check_origin(origin) {
                problems.push(format!("server.cors_origins: {origin:?} {problem}"));
            }
        }
        if let Some(endpoint) = &self.log.otlp_endpoint
            && !url::Url::parse(endpoint).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
        {
            problems.push(format!(
                "log.otlp_endpoint = {endpoint:?} must be an http(s) URL, such as \
                 \"http://localhost:4318/v1/traces\""
            ));
        }
        if self.mcp.enabled {
            if self.mcp.allowed_hosts.iter().all(|h| h.trim().is_empty()) {
                problems.push(
                    "mcp.allowed_hosts must name the hosts clients reach /mcp by (or be [\"*\"])"
                        .to_owned(),
                );
            }
            if self.mcp.max_sessions == 0 || self.mcp.max_sessions_per_user == 0 {
                problems.push(
                    "mcp.max_sessions and mcp.max_sessions_per_user must be at least 1".to_owned(),
                );
            }
            if self.mcp.session_idle_secs == 0 || self.mcp.session_max_secs == 0 {
                problems.push(
                    "mcp.session_idle_secs and mcp.session_max_secs must be at least 1".to_owned(),
                );
            }
        }
        if self.database.pool_size == 0 {
            problems.push("database.pool_size must be at least 1".to_owned());
        }
        if self.database.url.trim().is_empty() {
            problems.push("database.url must not be empty".to_owned());
        }
        if self.database.connect_timeout_secs == 0 || self.database.acquire_timeout_secs == 0 {
            problems.push(
                "database.connect_timeout_secs and database.acquire_timeout_secs must be at least 1"
                    .to_owned(),
            );
        }
        if self.auth.mode == AuthMode::Dev && !self.server.bind.ip().is_loopback() {
            problems.push(format!(
                "auth.mode = \"dev\" is refused with server.bind = {} (not a loopback address): \
                 dev tokens let anyone act as any user; use auth.mode = \"clerk\"",
                self.server.bind
            ));
        }
        if self.auth.mode == AuthMode::Clerk
            && !self.auth.clerk.api_url.starts_with("https://")
            && !self.auth.clerk.api_url.starts_with("http://")
        {
            problems.push("auth.clerk.api_url must be an http(s) URL".to_owned());
        }
        if let Err(e) = self.ai.tz() {
            problems.push(e.to_string());
        }
        if self.ai.max_tool_rounds == 0 || self.ai.max_tool_rounds > 20 {
            problems.push("ai.max_tool_rounds must be 1 to 20".to_owned());
        }
        if self.ai.max_tokens == 0 {
            problems.push("ai.max_tokens must be at least 1".to_owned());
        }
        if self.ai.connect_timeout_secs == 0 || self.ai.request_timeout_secs == 0 {
            problems.push(
                "ai.connect_timeout_secs and ai.request_timeout_secs must be at least 1".to_owned(),
            );
        }
        if self.ai.recall_limit > 50 {
            problems.push("ai.recall_limit must be at most 50".to_owned());
        }
        let items_max = crate::domain::service::CONTEXT_ITEMS_MAX;
        if self.ai.context_items == 0 || self.ai.context_items > items_max {
            problems.push(format!("ai.context_items must be 1 to {items_max}"));
        }
        let history_max = crate::domain::service::HISTORY_MESSAGES_MAX;
        if self.ai.history_messages > history_max {
            problems.push(format!("ai.history_messages must be at most {history_max}"));
        }
        for (key, url) in [
            ("ai.base_url", self.ai.base_url.as_deref()),
            ("embeddings.base_url", self.embeddings.base_url.as_deref()),
            ("vector.url", Some(self.vector.url.as_str())),
        ] {
            if let Some(url) = url
                && url::Url::parse(url).map_or(true, |u| !matches!(u.scheme(), "http" | "https"))
            {
                problems.push(format!("{key} must be an http(s) URL"));
            }
        }
        if self.embeddings.dimension == Some(0) || self.embeddings.dimension > Some(65_536) {
            problems.push("embeddings.dimension must be 1 to 65536".to_owned());
        }
        if self.embeddings.provider == EmbeddingsProvider::Minilm
            && self.embeddings.dimension.is_some_and(|d| d != 384)
        {
            problems.push("embeddings.dimension must be 384 (or unset) with minilm".to_owned());
        }
        if self.embeddings.batch_size == 0 || self.embeddings.batch_size > 2048 {
            problems.push("embeddings.batch_size must be 1 to 2048".to_owned());
        }
        if self.vector.collection.is_empty()
            || !self
                .vector
                .collection
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            problems.push("vector.collection must be letters, digits, _ or -".to_owned());
        }
        if self.vector.outbox_batch < 1 || self.vector.outbox_batch > 1000 {
            problems.push("vector.outbox_batch must be 1 to 1000".to_owned());
        }
        if !(1..=3600).contains(&self.vector.outbox_lease_secs) {
            problems.push("vector.outbox_lease_secs must be 1 to 3600".to_owned());
        }
        if self.vector.outbox_poll_ms < 10 {
            problems.push("vector.outbox_poll_ms must be at least 10".to_owned());
        }
        if self.vector.outbox_gather_ms > 10_000 {
            problems.push("vector.outbox_gather_ms must be at most 10000".to_owned());
        }
        let rt = &self.realtime;
        if rt.ping_interval_secs == 0 || rt.ping_timeout_secs == 0 || rt.connect_timeout_secs == 0 {
            problems.push(
                "realtime.ping_interval_secs, realtime.ping_timeout_secs and \
                 realtime.connect_timeout_secs must be at least 1"
                    .to_owned(),
            );
        }
        if rt.max_payload_bytes < 1024 {
            problems.push("realtime.max_payload_bytes must be at least 1024".to_owned());
        }
        if rt.max_sockets_per_user == 0 {
            problems.push("realtime.max_sockets_per_user must be at least 1".to_owned());
        }
        if rt.max_text_chars == 0
            || rt.max_text_chars > crate::domain::conversation::MESSAGE_TEXT_MAX
        {
            problems
                .push("realtime.max_text_chars must be 1 to 8000 (the longest message)".to_owned());
        }
        if rt.socket_queue < 16 {
            problems.push("realtime.socket_queue must be at least 16".to_owned());
        }
        if self.reminders.poll_ms < 10 {
            problems.push("reminders.poll_ms must be at least 10".to_owned());
        }
        if !(1..=1000).contains(&self.reminders.batch_size) {
            problems.push("reminders.batch_size must be 1 to 1000".to_owned());
        }
        let push = &self.push;
        if !(push.subject.starts_with("mailto:") || push.subject.starts_with("https://")) {
            problems.push("push.subject must be a mailto: or https: URL".to_owned());
        }
        if !(60..=86_400).contains(&push.ttl_secs) {
            problems.push("push.ttl_secs must be 60 to 86400".to_owned());
        }
        if !(100..=60_000).contains(&push.timeout_ms) {
            problems.push("push.timeout_ms must be 100 to 60000".to_owned());
        }
        if !(1..=20).contains(&push.max_attempts) {
            problems.push("push.max_attempts must be 1 to 20".to_owned());
        }
        if !(1..=256).contains(&push.concurrency) {
            problems.push("push.concurrency must be 1 to 256".to_owned());
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            problems.push(format!("log.level is not a valid filter: {e}"));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            anyhow::bail!(problems.join("\n"))
        }
    }
}

/// Figment's error, one line per problem, each naming its key.
fn describe(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let kind = e.kind.to_string();
            if key.is_empty() {
                kind
            } else {
                format!("{key}: {kind}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> anyhow::Result<Config> {
        let dir = std::env::temp_dir().join(format!("pixie-config-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("config.toml");
        std::fs::write(&path, toml)?;
        let prefix = format!("PIXIE_T{}__", uuid::Uuid::new_v4().simple());
        for (key, value) in env {
            // SAFETY: each test uses its own unique variable names.
            unsafe { std::env::set_var(format!("{prefix}{key}"), value) };
        }
        let result =
            Config::load_with_env(&Source::Explicit(path), Env::prefixed(&prefix).split("__"));
        std::fs::remove_dir_all(&dir)?;
        result
    }

    #[test]
    fn defaults_are_valid() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(c.auth.mode, AuthMode::Dev);
    }

    #[test]
    fn the_shipped_config_toml_is_the_defaults() {
        let shipped: Config = Figment::from(Toml::file_exact(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/config.toml"
        )))
        .extract()
        .unwrap();
        assert_eq!(
            serde_json::to_value(&shipped).unwrap(),
            serde_json::to_value(Config::default()).unwrap()
        );
    }

    #[test]
    fn env_overrides_file() {
        let c = load(
            "[server]\nbind = \"127.0.0.1:1\"\n",
            &[
                ("SERVER__BIND", "127.0.0.1:9999"),
                ("DATABASE__POOL_SIZE", "3"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.bind.port(), 9999);
        assert_eq!(c.database.pool_size, 3);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = load("", &[("SERVER__BIND", "nowhere")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.bind"), "{err}");
        let err = load("[database]\npool_size = \"many\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("database.pool_size"), "{err}");
        let err = load("[server]\nbnid = \"x\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("bnid"), "{err}");
        let err = load("[auth]\nmode = \"none\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.mode"), "{err}");
        for (toml, key) in [
            (
                "[ai]\ncontext_items = 0\n",
                "ai.context_items must be 1 to 200",
            ),
            (
                "[ai]\ncontext_items = 201\n",
                "ai.context_items must be 1 to 200",
            ),
            ("[ai]\nhistory_messages = 1000\n", "ai.history_messages"),
        ] {
            let err = load(toml, &[]).unwrap_err().to_string();
            assert!(err.contains(key), "{toml}: {err}");
        }
        let err = load("[ai]\ntimezone = \"Mars/Olympus\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ai.timezone"), "{err}");
        let err = load("", &[("AI__PROVIDER", "gpt")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("ai.provider"), "{err}");
        let err = load("[vector]\nurl = \"localhost\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("vector.url"), "{err}");
        let err = load("", &[("LOG__OTLP_ENDPOINT", "collector:4318")])
            .unwrap_err()
            .to_string();
        assert!(err.contains("log.otlp_endpoint"), "{err}");
        assert!(
            load(
                "",
                &[("LOG__OTLP_ENDPOINT", "http://localhost:4318/v1/traces")]
            )
            .is_ok()
        );
    }

    #[test]
    fn dev_mode_refuses_public_bind() {
        let err = load("[server]\nbind = \"0.0.0.0:8080\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("auth.mode"), "{err}");
        assert!(load("[server]\nbind = \"[::1]:8080\"\n", &[]).is_ok());
    }

    #[test]
    fn the_playground_follows_the_auth_mode_unless_set() {
        assert!(load("", &[]).unwrap().playground());
        let clerk = "[auth]\nmode = \"clerk\"\n";
        assert!(!load(clerk, &[]).unwrap().playground());
        assert!(
            load(clerk, &[("SERVER__PLAYGROUND", "true")])
                .unwrap()
                .playground()
        );
        assert!(
            !load("[server]\nplayground = false\n", &[])
                .unwrap()
                .playground()
        );
        let err = load("[server]\nplayground = \"yes\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("server.playground"), "{err}");
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        let dev = load("", &[]).unwrap().cors();
        assert!(dev.loopback && dev.exact.is_empty());
        let clerk = load("[auth]\nmode = \"clerk\"\n", &[]).unwrap().cors();
        assert!(clerk.is_empty());
        let listed = load(
            "[server]\ncors_origins = [\"https://app.example.com\", \"http://localhost:5173\"]\n",
            &[],
        )
        .unwrap()
        .cors();
        assert_eq!(
            listed.exact,
            ["https://app.example.com", "http://localhost:5173"]
        );
        assert!(!listed.loopback, "a list replaces the dev default");
        for (origin, problem) in [
            ("*", "wildcard"),
            ("https://*.example.com", "wildcard"),
            (
                "https://app.example.com/",
                "write \"https://app.example.com\"",
            ),
            ("https://App.example.com", "write"),
            ("https://app.example.com:443", "write"),
            ("app.example.com", "not an origin"),
            ("ftp://app.example.com", "http:// or https://"),
        ] {
            let toml = format!("[server]\ncors_origins = [{origin:?}]\n");
            let err = load(&toml, &[]).unwrap_err().to_string();
            assert!(
                err.contains("server.cors_origins") && err.contains(problem),
                "{origin}: {err}"
            );
        }
    }
}
