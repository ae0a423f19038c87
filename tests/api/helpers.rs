//! Test harness: real PostgreSQL (from `PIXIE_TEST_DATABASE_URL`, else a testcontainers
//! container), a fresh database per test copied from a template migrated once per process,
//! and the real application on port 0.

use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use diesel::{Connection, PgConnection, RunQueryDsl};
use pixie::app::{Application, Overrides, Secrets};
use pixie::config::Config;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use uuid::Uuid;

/// Where the test databases live: an admin URL (to the `postgres` database) and the template.
struct TestServer {
    /// `postgres://user@host:port` without a database name.
    base_url: String,
    template: String,
}

static SERVER: OnceLock<TestServer> = OnceLock::new();
static CONTAINER_ID: OnceLock<String> = OnceLock::new();
static CREATE_LOCK: Mutex<()> = Mutex::new(());
/// Data directories of stopped test servers, removed at exit: a server's stores are dropped
/// some time after its stop is asked for, and must not find their files gone.
static STOPPED_DATA_DIRS: Mutex<Vec<std::path::PathBuf>> = Mutex::new(Vec::new());

const HELP: &str = "integration tests need PostgreSQL: set PIXIE_TEST_DATABASE_URL \
    (e.g. postgres://postgres@127.0.0.1:5432/postgres), or make Docker available for \
    testcontainers (here: eval \"$(../shared/tools/docker-test-env/setup)\")";

fn server() -> &'static TestServer {
    SERVER.get_or_init(|| {
        // testcontainers' blocking runner makes its own runtime: keep it off the test's.
        std::thread::spawn(init_server)
            .join()
            .unwrap_or_else(|_| panic!("starting the test database failed; {HELP}"))
    })
}

fn init_server() -> TestServer {
    let base_url = match std::env::var("PIXIE_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => strip_database(&url),
        _ => start_container(),
    };
    let template = format!("pixie_tpl_{}_{}", std::process::id(), short_id());
    let mut admin = connect(&format!("{base_url}/postgres"));
    diesel::sql_query(format!("CREATE DATABASE {template}"))
        .execute(&mut admin)
        .expect("create the template database");
    {
        let mut conn = connect(&format!("{base_url}/{template}"));
        pixie::db::migrate(&mut conn).expect("migrate the template database");
    }
    extern "C" fn cleanup() {
        if let Some(server) = SERVER.get()
            && let Ok(mut admin) = PgConnection::establish(&format!("{}/postgres", server.base_url))
        {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                server.template
            ))
            .execute(&mut admin);
        }
        for dir in STOPPED_DATA_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some(id) = CONTAINER_ID.get() {
            let _ = std::process::Command::new("docker")
                .args(["rm", "-f", "-v", id])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
    // SAFETY: registers a plain function without captured state, run once at exit.
    unsafe { libc::atexit(cleanup) };
    TestServer { base_url, template }
}

fn start_container() -> String {
    use testcontainers::GenericImage;
    use testcontainers::core::{ImageExt, WaitFor};
    use testcontainers::runners::SyncRunner;

    let image = std::env::var("PIXIE_TEST_PG_IMAGE").unwrap_or_else(|_| "postgres".into());
    let tag = std::env::var("PIXIE_TEST_PG_TAG").unwrap_or_else(|_| "16".into());
    let network = std::env::var("PIXIE_TEST_DOCKER_NETWORK").ok();
    let base = GenericImage::new(image.clone(), tag.clone())
        .with_wait_for(WaitFor::message_on_stderr(
            "database system is ready to accept connections",
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust");
    let (container, port) = if network.as_deref() == Some("host") {
        // Host networking: the server listens on a free port of this machine.
        let port = free_port();
        let container = base
            .with_network("host")
            .with_env_var("PGPORT", port.to_string())
            .start()
            .unwrap_or_else(|e| {
                panic!("cannot start {image}:{tag} with testcontainers ({e}); {HELP}")
            });
        (container, port)
    } else {
        let container = base
            .with_mapped_port(0, testcontainers::core::IntoContainerPort::tcp(5432))
            .start()
            .unwrap_or_else(|e| {
                panic!("cannot start {image}:{tag} with testcontainers ({e}); {HELP}")
            });
        let port = container
            .get_host_port_ipv4(5432)
            .unwrap_or_else(|e| panic!("no mapped PostgreSQL port: {e}"));
        (container, port)
    };
    let _ = CONTAINER_ID.set(container.id().to_owned());
    // Removed at exit by `cleanup` (a static is never dropped).
    std::mem::forget(container);
    let base_url = format!("postgres://postgres@127.0.0.1:{port}");
    // The ready message can precede the final restart of the image's init; wait for real.
    for _ in 0..100 {
        if PgConnection::establish(&format!("{base_url}/postgres")).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    base_url
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn strip_database(url: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("PIXIE_TEST_DATABASE_URL is a postgres:// URL");
    parsed.set_path("");
    parsed.set_query(None);
    parsed.to_string().trim_end_matches('/').to_owned()
}

fn connect(url: &str) -> PgConnection {
    PgConnection::establish(url).unwrap_or_else(|e| panic!("connecting to the test server: {e}"))
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// A fresh, empty database of its own; dropped with this value.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    /// A copy of the migrated template.
    pub fn migrated() -> Self {
        let server = server();
        Self::create(&format!("TEMPLATE {}", server.template))
    }

    /// An empty database (no migrations).
    pub fn empty() -> Self {
        Self::create("")
    }

    fn create(clause: &str) -> Self {
        let server = server();
        let name = format!("pixie_test_{}", short_id());
        let _guard = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut admin = connect(&format!("{}/postgres", server.base_url));
        diesel::sql_query(format!("CREATE DATABASE {name} {clause}"))
            .execute(&mut admin)
            .expect("create a test database");
        let url = format!("{}/{name}", server.base_url);
        Self { name, url }
    }

    pub fn connect(&self) -> PgConnection {
        connect(&self.url)
    }

    /// The URL of a database on the test server that does not exist yet.
    pub fn missing_url() -> String {
        format!("{}/pixie_test_{}", server().base_url, short_id())
    }

    pub fn drop_by_url(url: &str) {
        if let Some(name) = url.rsplit('/').next() {
            let mut admin = connect(&format!("{}/postgres", server().base_url));
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin);
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        Self::drop_by_url(&self.url);
    }
}

pub struct TestApp {
    pub addr: std::net::SocketAddr,
    pub client: reqwest::Client,
    pub app_domain: pixie::domain::Domain,
    handle: actix_web::dev::ServerHandle,
    pub data_dir: std::path::PathBuf,
    pub db_url: String,
    // Dropped last: the server must stop before its database goes (a peer has none).
    _db: Option<TestDatabase>,
}

/// The server on the embedded defaults (dev auth) with a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Secrets::default()).await
}

/// The server with no outbox worker: the outbox rows stay for the test to inspect.
pub async fn spawn_app_without_indexer() -> TestApp {
    spawn_app_with(|c| c.vector.outbox_worker = false, Secrets::default()).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config), secrets: Secrets) -> TestApp {
    spawn_app_full(tweak, secrets, Overrides::default()).await
}

/// A fresh directory for the embedded stores of one test server, removed when it stops.
/// The Python with tests/ical/requirements.txt and tests/mcp/requirements.txt installed:
/// `PIXIE_TEST_PYTHON`, else the README's `.venv`, else `python3`.
pub fn python() -> String {
    if let Ok(python) = std::env::var("PIXIE_TEST_PYTHON") {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python");
    if std::path::Path::new(venv).exists() {
        return venv.to_owned();
    }
    "python3".to_owned()
}

pub fn temp_dir(prefix: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

pub async fn spawn_app_full(
    tweak: impl FnOnce(&mut Config),
    secrets: Secrets,
    overrides: Overrides,
) -> TestApp {
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .expect("create the test database");
    let url = db.url.clone();
    spawn_app_on(Some(db), url, tweak, secrets, overrides).await
}

impl TestApp {
    /// Another instance on the same database (as behind a load balancer), with its own data
    /// directory and no outbox worker.
    pub async fn spawn_peer(&self, tweak: impl FnOnce(&mut Config)) -> TestApp {
        spawn_app_on(
            None,
            self.db_url.clone(),
            |c| {
                c.vector.outbox_worker = false;
                tweak(c);
            },
            Secrets::default(),
            Overrides::default(),
        )
        .await
    }
}

async fn spawn_app_on(
    db: Option<TestDatabase>,
    url: String,
    tweak: impl FnOnce(&mut Config),
    secrets: Secrets,
    overrides: Overrides,
) -> TestApp {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".parse().expect("address");
    config.server.workers = 1;
    config.server.shutdown_grace_secs = 1;
    config.database.url = url.clone();
    config.database.create_if_missing = false;
    config.database.pool_size = 4;
    config.server.data_dir = temp_dir("pixie-test-data");
    config.vector.outbox_poll_ms = 50;
    tweak(&mut config);
    let data_dir = config.server.data_dir.clone();
    let app = Application::build_with(config, secrets, overrides)
        .await
        .expect("the application starts");
    let addr = app.local_addr();
    let app_domain = app.domain().clone();
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        client: reqwest::Client::new(),
        app_domain,
        handle,
        data_dir,
        db_url: url,
        _db: db,
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stops accepting at once; the database is dropped with FORCE afterwards anyway.
        // The stop command is sent at once; the returned future only reports completion.
        drop(self.handle.stop(false));
        STOPPED_DATA_DIRS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.data_dir.clone());
    }
}

/// A response as the tests look at it.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// Asserts the contract's error body and returns its code.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body))
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a request as `user` (a dev token), with an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, user: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method, self.url(path))
            .bearer_auth(format!("dev:{user}"));
        if let Some(body) = body {
            req = req.json(&body);
        }
        Self::reply(req).await
    }

    pub async fn send(req: reqwest::RequestBuilder) -> Reply {
        Self::reply(req).await
    }

    async fn reply(req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.expect("the request is sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.expect("a body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            // Non-JSON bodies (e.g. /metrics) are kept as text.
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    /// A GET whose body is not JSON (iCalendar), as text.
    pub async fn get_text(&self, path: &str, user: &str) -> String {
        self.client
            .get(self.url(path))
            .bearer_auth(format!("dev:{user}"))
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body")
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.call(Method::GET, path, user, None).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::POST, path, user, Some(body)).await
    }

    pub async fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, user, Some(body)).await
    }

    pub async fn delete(&self, path: &str, user: &str) -> Reply {
        self.call(Method::DELETE, path, user, None).await
    }

    /// Creates a task and returns it.
    pub async fn create_task(&self, user: &str, body: Value) -> Value {
        let reply = self.post("/v1/tasks", user, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    pub async fn create_event(&self, user: &str, body: Value) -> Value {
        let reply = self.post("/v1/events", user, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
        reply.body
    }

    /// Rows in the vector outbox of the app's database, as (kind, op).
    pub fn outbox(&self) -> Vec<(String, String)> {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Text)]
            entity_kind: String,
            #[diesel(sql_type = diesel::sql_types::Text)]
            op: String,
        }
        let mut conn = self.database().connect();
        diesel::sql_query("SELECT entity_kind, op FROM vector_outbox ORDER BY id")
            .load::<Row>(&mut conn)
            .expect("read the outbox")
            .into_iter()
            .map(|r| (r.entity_kind, r.op))
            .collect()
    }
}

impl TestApp {
    /// A count from the app's database (`SELECT count(*) …`), as a test checks what is stored.
    pub fn count(&self, sql: &str) -> i64 {
        count(&mut connect(&self.db_url), sql)
    }

    /// Runs SQL on the app's database (rows a client could not write today, say).
    pub fn execute(&self, sql: &str) {
        let mut conn = connect(&self.db_url);
        diesel::sql_query(sql)
            .execute(&mut conn)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn database(&self) -> &TestDatabase {
        self._db
            .as_ref()
            .expect("a peer instance does not own its database")
    }

    /// Simulates PostgreSQL going away for this app: no new connections to its database,
    /// and every open one is terminated.
    pub fn kill_database_connections_and_block(&self) {
        let server = server();
        let mut admin = connect(&format!("{}/postgres", server.base_url));
        let name = &self.database().name;
        diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
            .execute(&mut admin)
            .expect("block connections");
        diesel::sql_query(format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        ))
        .execute(&mut admin)
        .expect("terminate connections");
    }
}

/// `pixie serve` as a child process (the real binary) on `db`, with these environment
/// settings on top of the defaults; returns the child (killed when dropped) and its address.
/// Its log goes to the test's output.
pub async fn serve_binary(
    db: &TestDatabase,
    env: &[(&str, String)],
) -> (tokio::process::Child, String) {
    serve_binary_to(&db.url, env, None).await
}

/// [`serve_binary`], its log also written to `log_file` line by line.
pub async fn serve_binary_logging(
    db: &TestDatabase,
    env: &[(&str, String)],
    log_file: &std::path::Path,
) -> (tokio::process::Child, String) {
    serve_binary_to(&db.url, env, Some(log_file)).await
}

/// [`serve_binary_logging`] on the database at `url`.
pub async fn serve_binary_to(
    url: &str,
    env: &[(&str, String)],
    log_file: Option<&std::path::Path>,
) -> (tokio::process::Child, String) {
    use std::io::Write;
    use tokio::io::AsyncBufReadExt;
    let mut file = log_file.map(|path| std::fs::File::create(path).expect("create the log file"));
    let data_dir = temp_dir("pixie-binary");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pixie"))
        .arg("serve")
        .env_remove("PIXIE_CONFIG")
        .env_remove("RUST_LOG")
        .env("PIXIE__LOG__FORMAT", "text")
        .env("PIXIE__DATABASE__URL", url)
        .env("PIXIE__SERVER__DATA_DIR", &data_dir)
        .env("PIXIE__SERVER__BIND", "127.0.0.1:0")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start pixie");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("the server logs its address in time")
            .expect("read the log")
            .expect("the server exited before listening");
        eprintln!("{line}");
        if let Some(file) = file.as_mut() {
            let _ = writeln!(file, "{line}");
        }
        if let Some(at) = line.find("listening on http://") {
            let rest = &line[at + "listening on http://".len()..];
            break rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect::<String>();
        }
    };
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{line}");
            if let Some(file) = file.as_mut() {
                let _ = writeln!(file, "{line}");
            }
        }
    });
    (child, addr)
}

/// A count read with `sql` (`SELECT count(*) AS count …`).
pub fn count(conn: &mut PgConnection, sql: &str) -> i64 {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    diesel::sql_query(sql)
        .get_result::<Row>(conn)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .count
}

/// A number from the environment (a scenario's size, by hand), else `default`.
pub fn env_number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The resident memory of a process, in KiB (`VmRSS` of `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Reads one HTTP/1.1 request from a test server's connection: its head (lower-cased) and its
/// `Content-Length` body; `None` when the peer leaves first.
pub async fn read_http_request(stream: &mut tokio::net::TcpStream) -> Option<(String, Vec<u8>)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let body_start = loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..body_start]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < body_start + length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.truncate(body_start + length);
    Some((head, buf.split_off(body_start)))
}
