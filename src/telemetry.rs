//! Logging setup.

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

/// The embedded vector store warns on every segment it opens that it runs on its default
/// feature flags (its API offers no way to set them); that is how we run it, so it is not news.
const QUIET_FEATURE_FLAGS: &str = "qdrant_edge::common::flags=error";

/// Installs the global subscriber: `RUST_LOG` if set, else `log.level`; text or JSON lines.
pub fn init(config: &LogConfig) {
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| config.level.clone());
    let mut filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info"));
    if !spec.contains("qdrant_edge")
        && let Ok(directive) = QUIET_FEATURE_FLAGS.parse()
    {
        filter = filter.add_directive(directive);
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match config.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
