//! PostgreSQL through diesel: the connection pool, embedded migrations, and the repositories
//! the domain's ports ask for.
//!
//! Diesel's synchronous API runs on tokio's blocking pool (`PgStore::run`); see the README's
//! architecture section for why.

mod appends;
mod feeds;
mod lexical;
mod models;
mod outbox;
mod push;
pub mod relay;
mod reminders;
mod repos;
pub mod schema;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use diesel::pg::PgConnection;
use diesel::r2d2::{ConnectionManager, Pool, PooledConnection};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use tokio::sync::Semaphore;

use crate::domain::DomainError;
use crate::domain::ports::HealthCheck;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Serialises migrations of several instances starting at once (an arbitrary, fixed key).
const MIGRATION_LOCK_KEY: i64 = 0x5049_5849_455f_4d49;

pub type PgPool = Pool<ConnectionManager<PgConnection>>;
pub type PgPooled = PooledConnection<ConnectionManager<PgConnection>>;

#[derive(Debug, Clone)]
pub struct DbSettings {
    pub url: String,
    pub create_if_missing: bool,
    pub pool_size: u32,
    pub connect_timeout: Duration,
    pub acquire_timeout: Duration,
    pub group_commit: bool,
}

/// Adds libpq's `connect_timeout` to a URL that does not set one, so that an unreachable
/// server fails fast instead of hanging.
fn with_connect_timeout(url: &str, timeout: Duration) -> String {
    if url.contains("connect_timeout") {
        return url.to_owned();
    }
    let seconds = timeout.as_secs().max(1);
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}connect_timeout={seconds}")
    } else {
        format!("{url} connect_timeout={seconds}")
    }
}

/// Creates the database if it is missing (when allowed) and runs every pending migration.
/// Returns the names of the migrations it applied.
pub fn prepare(settings: &DbSettings) -> anyhow::Result<Vec<String>> {
    let url = with_connect_timeout(&settings.url, settings.connect_timeout);
    let mut conn = match PgConnection::establish(&url) {
        Ok(conn) => conn,
        Err(e) if settings.create_if_missing && e.to_string().contains("does not exist") => {
            create_database(&url)?;
            PgConnection::establish(&url)
                .with_context(|| format!("connecting to {}", redact(&settings.url)))?
        }
        Err(e) => {
            return Err(anyhow!(e)).with_context(|| {
                format!("connecting to database.url = {}", redact(&settings.url))
            });
        }
    };
    migrate(&mut conn)
}

/// Runs the pending migrations under an advisory lock.
pub fn migrate(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .execute(conn)
        .context("taking the migration lock")?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.iter().map(|v| v.to_string()).collect::<Vec<_>>())
        .map_err(|e| anyhow!("running migrations: {e}"));
    diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .execute(conn)
        .context("releasing the migration lock")?;
    applied
}

fn create_database(url: &str) -> anyhow::Result<()> {
    let mut parsed = url::Url::parse(url)
        .context("database.create_if_missing needs database.url in postgres://… form")?;
    let name = parsed.path().trim_start_matches('/').to_owned();
    let name = percent_decode(&name);
    if name.is_empty() {
        return Err(anyhow!("database.url names no database"));
    }
    parsed.set_path("/postgres");
    let mut admin = PgConnection::establish(parsed.as_str())
        .context("connecting to the `postgres` database to create the missing database")?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    match diesel::sql_query(format!("CREATE DATABASE {quoted}")).execute(&mut admin) {
        Ok(_) => {
            tracing::info!(database = %name, "created the database");
            Ok(())
        }
        // Another instance created it meanwhile.
        Err(DieselError::DatabaseError(_, info)) if info.message().contains("already exists") => {
            Ok(())
        }
        Err(e) => Err(anyhow!(e)).context(format!("creating database {name}")),
    }
}

fn percent_decode(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The URL with any password replaced, for logs and error messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparsable url>".into(),
    }
}

pub fn pool(settings: &DbSettings) -> anyhow::Result<PgPool> {
    let manager = ConnectionManager::<PgConnection>::new(with_connect_timeout(
        &settings.url,
        settings.connect_timeout,
    ));
    Ok(Pool::builder()
        .max_size(settings.pool_size)
        .min_idle(Some(settings.pool_size.min(2)))
        .connection_timeout(settings.acquire_timeout)
        .test_on_check_out(false)
        .build_unchecked(manager))
}

/// The repositories over one pool; implements every storage port of the domain.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One permit per pooled connection: requests queue here, asynchronously, rather than as
    /// blocked threads waiting inside the pool.
    permits: Arc<Semaphore>,
    /// Callers waiting for a permit (a metric).
    waiting: Arc<AtomicUsize>,
    acquire_timeout: Duration,
    /// The user's wall clock, which events' alerts repeat on (`ai.timezone`).
    timezone: chrono_tz::Tz,
    /// Chat messages are group-committed through it when set (`database.group_commit`).
    appender: Arc<appends::Appender>,
    group_commit: bool,
}

/// The pool as the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGauges {
    pub connections: usize,
    pub in_use: usize,
    pub waiting: usize,
}

impl PgStore {
    pub fn new(pool: PgPool) -> Self {
        let size = pool.max_size() as usize;
        let acquire_timeout = pool.connection_timeout();
        Self {
            pool,
            permits: Arc::new(Semaphore::new(size)),
            waiting: Arc::default(),
            acquire_timeout,
            timezone: chrono_tz::UTC,
            appender: Arc::default(),
            group_commit: true,
        }
    }

    /// Whether concurrent chat messages share statements and commits.
    pub fn with_group_commit(mut self, on: bool) -> Self {
        self.group_commit = on;
        self
    }

    /// Events' alerts are expanded on this zone's wall clock.
    pub fn with_timezone(mut self, timezone: chrono_tz::Tz) -> Self {
        self.timezone = timezone;
        self
    }

    pub fn pool_gauges(&self) -> PoolGauges {
        let size = self.pool.max_size() as usize;
        PoolGauges {
            connections: self.pool.state().connections as usize,
            in_use: size.saturating_sub(self.permits.available_permits()),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }

    /// Runs blocking diesel code on a pooled connection, off the async workers.
    async fn run<T, F>(&self, f: F) -> Result<T, DomainError>
    where
        T: Send + 'static,
        F: FnOnce(&mut PgConnection) -> Result<T, DbError> + Send + 'static,
    {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned()).await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.ok().and_then(Result::ok).ok_or_else(|| {
            tracing::warn!("every database connection is busy");
            DomainError::Unavailable("the database is busy".into())
        })?;
        let pool = self.pool.clone();
        // The blocking thread carries on the caller's span (its request, turn or tool call).
        let span = tracing::debug_span!("db_query");
        tokio::task::spawn_blocking(move || {
            let _entered = span.enter();
            let _permit = permit;
            let mut conn = pool.get().map_err(|e| {
                tracing::warn!(error = %e, "no database connection");
                DomainError::Unavailable("the database is unavailable".into())
            })?;
            f(&mut conn).map_err(DomainError::from)
        })
        .await
        .map_err(|e| DomainError::Internal(anyhow!("database task failed: {e}")))?
    }
}

#[async_trait]
impl HealthCheck for PgStore {
    fn name(&self) -> &'static str {
        "database"
    }

    async fn is_healthy(&self) -> bool {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let Ok(mut conn) = pool.get_timeout(Duration::from_secs(2)) else {
                return false;
            };
            diesel::sql_query("SELECT 1").execute(&mut conn).is_ok()
        })
        .await
        .unwrap_or(false)
    }
}

/// What storage code fails with: a diesel error, or a domain error from a mutation.
#[derive(Debug)]
pub(crate) enum DbError {
    Diesel(DieselError),
    Domain(DomainError),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        Self::Diesel(e)
    }
}

impl From<DomainError> for DbError {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

impl From<DbError> for DomainError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Domain(e) => e,
            // A row referenced a user that has no row any more: the write raced the user's
            // erasure (sign-in creates the row before any write), and must not revive them.
            DbError::Diesel(DieselError::DatabaseError(
                DatabaseErrorKind::ForeignKeyViolation,
                info,
            )) if info
                .constraint_name()
                .is_some_and(|c| c.ends_with("_user_id_fkey")) =>
            {
                DomainError::Erased
            }
            DbError::Diesel(DieselError::DatabaseError(kind, info)) => match kind {
                DatabaseErrorKind::UniqueViolation => {
                    DomainError::Conflict("a record with that key already exists".into())
                }
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand => {
                    tracing::warn!(error = info.message(), "database connection lost");
                    DomainError::Unavailable("the database is unavailable".into())
                }
                DatabaseErrorKind::SerializationFailure => {
                    DomainError::Unavailable("the database is busy; retry".into())
                }
                _ => DomainError::Internal(anyhow!(
                    "database error: {} ({:?})",
                    info.message(),
                    info.constraint_name()
                )),
            },
            DbError::Diesel(e) => DomainError::Internal(anyhow!("database error: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_added_once() {
        let t = Duration::from_secs(5);
        assert_eq!(
            with_connect_timeout("postgres://u@h/db", t),
            "postgres://u@h/db?connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?sslmode=disable", t),
            "postgres://u@h/db?sslmode=disable&connect_timeout=5"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=1", t),
            "postgres://u@h/db?connect_timeout=1"
        );
        assert_eq!(
            with_connect_timeout("host=h dbname=db", t),
            "host=h dbname=db connect_timeout=5"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }
}
