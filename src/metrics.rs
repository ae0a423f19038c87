//! The server's Prometheus metrics, one registry for every layer, served at `/metrics`.
//!
//! Every label value comes from a fixed set, whatever a client sends: methods, route patterns,
//! statuses, outcomes and error codes are the server's own; tool names are the assistant's
//! tools (anything else a model names is `unknown`); provider, model, embedder and store names
//! come from the configuration. No label ever carries a user, a conversation or request text,
//! so no request can grow the registry.
//!
//! The domain records through its [`Meter`] port; the edges and the AI half's decorators use
//! this type directly. Gauges of state (sockets, the outbox, the database pool) are sampled
//! when the metrics are read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::domain::ErrorCode;
use crate::domain::ports::{Meter, SearchLeg, TurnOutcome};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: &'static str,
    /// The matched route pattern (`/v1/tasks/{id}`), never the raw path.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TurnLabels {
    outcome: &'static str,
    /// The error code of a failed turn, `none` otherwise.
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ToolLabels {
    tool: &'static str,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LlmLabels {
    pub provider: &'static str,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    provider: &'static str,
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LlmErrorLabels {
    provider: &'static str,
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EmbedLabels {
    embedder: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReminderLabels {
    /// Reminders: `on_time`, or `late` (found past `reminders.max_lateness_secs`: not
    /// delivered). Pushes: a `DeliveryResult::outcome`. Fixed sets either way.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LegLabels {
    leg: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 0.5 ms … ~16 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// 10 ms … ~80 s: model calls.
fn model_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 14))
}

/// A gauge sampled when the metrics are read.
pub type Sampler = Box<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<RequestLabels, Counter>,
    pub http_latency: HistogramFamily<RouteLabels>,
    pub sockets: Gauge,
    turns: Family<TurnLabels, Counter>,
    tools: Family<ToolLabels, Counter>,
    llm_duration: HistogramFamily<LlmLabels>,
    llm_first_token: HistogramFamily<LlmLabels>,
    llm_tokens: Family<TokenLabels, Counter>,
    llm_errors: Family<LlmErrorLabels, Counter>,
    embed_duration: HistogramFamily<EmbedLabels>,
    store_duration: HistogramFamily<StoreLabels>,
    search_duration: HistogramFamily<LegLabels>,
    reminders_fired: Family<ReminderLabels, Counter>,
    reminder_lateness: Histogram,
    push_deliveries: Family<ReminderLabels, Counter>,
    pub outbox_backlog: Gauge,
    pub outbox_oldest_seconds: Gauge<f64, AtomicU64>,
    pub pool_connections: Gauge,
    pub pool_in_use: Gauge,
    pub pool_waiting: Gauge,
    samplers: Mutex<Vec<std::sync::Arc<Sampler>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("pixie");
        let http_requests = Family::<RequestLabels, Counter>::default();
        let http_latency = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        let sockets = Gauge::default();
        let turns = Family::<TurnLabels, Counter>::default();
        let tools = Family::<ToolLabels, Counter>::default();
        let llm_duration = HistogramFamily::new_with_constructor(model_histogram as fn() -> _);
        let llm_first_token = HistogramFamily::new_with_constructor(model_histogram as fn() -> _);
        let llm_tokens = Family::<TokenLabels, Counter>::default();
        let llm_errors = Family::<LlmErrorLabels, Counter>::default();
        let embed_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        let store_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        let search_duration = HistogramFamily::new_with_constructor(latency_histogram as fn() -> _);
        let reminders_fired = Family::<ReminderLabels, Counter>::default();
        let reminder_lateness = latency_histogram();
        let push_deliveries = Family::<ReminderLabels, Counter>::default();
        let outbox_backlog = Gauge::default();
        let outbox_oldest_seconds = Gauge::<f64, AtomicU64>::default();
        let pool_connections = Gauge::default();
        let pool_in_use = Gauge::default();
        let pool_waiting = Gauge::default();
        // Counters get their `_total` suffix from the encoder.
        registry.register(
            "http_requests",
            "HTTP requests answered",
            http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_latency.clone(),
        );
        registry.register(
            "sockets_open",
            "Socket.IO sockets connected to this process",
            sockets.clone(),
        );
        registry.register("chat_turns", "Chat turns ended, by outcome", turns.clone());
        registry.register(
            "tool_calls",
            "Assistant tool calls, by tool and status",
            tools.clone(),
        );
        registry.register(
            "llm_request_duration_seconds",
            "Model calls, from request to the end of the stream",
            llm_duration.clone(),
        );
        registry.register(
            "llm_time_to_first_token_seconds",
            "Model calls, from request to the first streamed event",
            llm_first_token.clone(),
        );
        registry.register(
            "llm_tokens",
            "Tokens the model provider reported",
            llm_tokens.clone(),
        );
        registry.register(
            "llm_errors",
            "Failed model calls, by kind",
            llm_errors.clone(),
        );
        registry.register(
            "embedding_duration_seconds",
            "Embedding calls (one batch of texts)",
            embed_duration.clone(),
        );
        registry.register(
            "vector_store_duration_seconds",
            "Vector store calls, by operation",
            store_duration.clone(),
        );
        registry.register(
            "search_duration_seconds",
            "Recall, by leg (meaning, words) and in all",
            search_duration.clone(),
        );
        registry.register(
            "reminders_fired",
            "Reminders fired, on time or found too late to deliver",
            reminders_fired.clone(),
        );
        registry.register(
            "reminder_lateness_seconds",
            "How long after its time a reminder fired",
            reminder_lateness.clone(),
        );
        registry.register(
            "push_deliveries",
            "Web Push attempts, by outcome: sent, gone (subscription removed), retry, failed, expired",
            push_deliveries.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Index changes waiting in the outbox",
            outbox_backlog.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest change waiting in the outbox (0 when none)",
            outbox_oldest_seconds.clone(),
        );
        registry.register(
            "db_pool_connections",
            "PostgreSQL connections the pool holds",
            pool_connections.clone(),
        );
        registry.register(
            "db_pool_in_use",
            "PostgreSQL connections in use",
            pool_in_use.clone(),
        );
        registry.register(
            "db_pool_waiting",
            "Callers waiting for a PostgreSQL connection",
            pool_waiting.clone(),
        );
        Self {
            registry,
            http_requests,
            http_latency,
            sockets,
            turns,
            tools,
            llm_duration,
            llm_first_token,
            llm_tokens,
            llm_errors,
            embed_duration,
            store_duration,
            search_duration,
            reminders_fired,
            reminder_lateness,
            push_deliveries,
            outbox_backlog,
            outbox_oldest_seconds,
            pool_connections,
            pool_in_use,
            pool_waiting,
            samplers: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Adds a gauge sampled at each read.
    pub fn sample_with(&self, sampler: Sampler) {
        self.samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(std::sync::Arc::new(sampler));
    }

    /// Samples the gauges, then writes every metric in the text format.
    pub async fn render(&self) -> Result<String, std::fmt::Error> {
        let samplers: Vec<_> = self
            .samplers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for sampler in samplers {
            // A slow sampler must not hold the scrape: it keeps its last value.
            let _ = tokio::time::timeout(Duration::from_secs(2), sampler()).await;
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    pub fn llm_call(&self, labels: &LlmLabels, elapsed: Duration) {
        self.llm_duration
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn llm_first_token(&self, labels: &LlmLabels, elapsed: Duration) {
        self.llm_first_token
            .get_or_create(labels)
            .observe(elapsed.as_secs_f64());
    }

    pub fn llm_tokens(&self, labels: &LlmLabels, input: u64, output: u64) {
        for (kind, count) in [("input", input), ("output", output)] {
            self.llm_tokens
                .get_or_create(&TokenLabels {
                    provider: labels.provider,
                    model: labels.model.clone(),
                    kind,
                })
                .inc_by(count);
        }
    }

    /// `kind`: `unavailable`, `upstream` or `protocol`.
    pub fn llm_error(&self, labels: &LlmLabels, kind: &'static str) {
        self.llm_errors
            .get_or_create(&LlmErrorLabels {
                provider: labels.provider,
                model: labels.model.clone(),
                kind,
            })
            .inc();
    }

    pub fn embedding(&self, embedder: &'static str, elapsed: Duration) {
        self.embed_duration
            .get_or_create(&EmbedLabels { embedder })
            .observe(elapsed.as_secs_f64());
    }

    pub fn vector_store(&self, store: &'static str, operation: &'static str, elapsed: Duration) {
        self.store_duration
            .get_or_create(&StoreLabels { store, operation })
            .observe(elapsed.as_secs_f64());
    }
}

impl Meter for Metrics {
    fn turn_ended(&self, outcome: TurnOutcome) {
        let labels = match outcome {
            TurnOutcome::Answered => TurnLabels {
                outcome: "answered",
                code: "none",
            },
            TurnOutcome::Failed(code) => TurnLabels {
                outcome: "failed",
                code: code.as_str(),
            },
            TurnOutcome::Abandoned => TurnLabels {
                outcome: "abandoned",
                code: ErrorCode::Unavailable.as_str(),
            },
        };
        self.turns.get_or_create(&labels).inc();
    }

    fn tool_called(&self, tool: &'static str, ok: bool) {
        self.tools
            .get_or_create(&ToolLabels {
                tool,
                status: if ok { "ok" } else { "error" },
            })
            .inc();
    }

    fn searched(&self, leg: SearchLeg, elapsed: Duration) {
        let leg = match leg {
            SearchLeg::Meaning => "meaning",
            SearchLeg::Words => "words",
            SearchLeg::All => "all",
        };
        self.search_duration
            .get_or_create(&LegLabels { leg })
            .observe(elapsed.as_secs_f64());
    }

    fn reminder_fired(&self, late: bool, lateness: Duration) {
        let outcome = if late { "late" } else { "on_time" };
        self.reminders_fired
            .get_or_create(&ReminderLabels { outcome })
            .inc();
        self.reminder_lateness.observe(lateness.as_secs_f64());
    }

    fn push_delivered(&self, outcome: &'static str) {
        self.push_deliveries
            .get_or_create(&ReminderLabels { outcome })
            .inc();
    }
}
