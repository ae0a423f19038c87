//! Logging and tracing setup: text or JSON lines on stderr, and, when `log.otlp_endpoint` is
//! set, the spans exported to an OpenTelemetry collector over OTLP/HTTP.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{LogConfig, LogFormat};

/// The embedded vector store warns on every segment it opens that it runs on its default
/// feature flags (its API offers no way to set them); that is how we run it, so it is not news.
const QUIET_FEATURE_FLAGS: &str = "qdrant_edge::common::flags=error";

/// Keeps the span exporter running; dropping it sends what is left (at process exit).
#[must_use = "dropping the guard stops the span export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("pixie: the last spans could not be exported: {e}");
        }
    }
}

/// Installs the global subscriber: `RUST_LOG` if set, else `log.level`; text or JSON lines;
/// OTLP export when configured (an exporter that cannot be built is reported, and logging
/// goes on without it).
pub fn init(config: &LogConfig) -> TelemetryGuard {
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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match config.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (provider, problem) = match config.otlp_endpoint.as_deref().map(exporter) {
        None => (None, None),
        Some(Ok(provider)) => (Some(provider), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("pixie"))
            .boxed()
    });
    let _ = tracing_subscriber::registry()
        .with(lines)
        .with(spans)
        .with(filter)
        .try_init();
    if let Some(e) = problem {
        tracing::error!(error = %e, "log.otlp_endpoint: the span exporter could not be built; spans are not exported");
    } else if let Some(endpoint) = &config.otlp_endpoint {
        tracing::info!(endpoint, "exporting spans over OTLP/HTTP");
    }
    TelemetryGuard { provider }
}

/// Spans batched and sent in the background, as OTLP protobuf over HTTP.
fn exporter(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(env!("CARGO_PKG_NAME"))
                .build(),
        )
        .build())
}
