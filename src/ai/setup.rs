//! Builds the AI half from the configuration: the model provider, the embedder, the vector
//! store, and on top of them the orchestrator and the semantic index the domain uses.

use super::metered::{MeteredEmbedder, MeteredLlm, MeteredStore};
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use super::embed::{DEFAULT_LOCAL_DIMENSION, Embedder, LocalEmbedder};
use super::index::{StoreMismatch, VectorIndex};
use super::llm::LlmProvider;
use super::minilm::{self, MiniLmEmbedder};
use super::offline::OfflineProvider;
use super::orchestrator::{Orchestrator, OrchestratorSettings};
use super::providers::{
    AnthropicProvider, AnthropicSettings, HttpSettings, OpenAiEmbedder, OpenAiEmbedderSettings,
    OpenAiProvider, OpenAiSettings,
};
use super::vector::VectorStore;
use super::vector::edge::EdgeStore;
use super::vector::qdrant::QdrantStore;
use crate::config::{
    AiConfig, AiProvider, EmbeddingsConfig, EmbeddingsProvider, VectorBackend, VectorConfig,
};

/// API keys, from the environment only.
#[derive(Default, Clone)]
pub struct AiSecrets {
    pub anthropic_api_key: Option<String>,
    pub openai_api_key: Option<String>,
    pub qdrant_api_key: Option<String>,
}

impl std::fmt::Debug for AiSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let set = |k: &Option<String>| k.as_ref().map(|_| "***");
        f.debug_struct("AiSecrets")
            .field("anthropic_api_key", &set(&self.anthropic_api_key))
            .field("openai_api_key", &set(&self.openai_api_key))
            .field("qdrant_api_key", &set(&self.qdrant_api_key))
            .finish()
    }
}

pub fn provider(config: &AiConfig, secrets: &AiSecrets) -> anyhow::Result<Arc<dyn LlmProvider>> {
    let http = HttpSettings {
        connect_timeout: Duration::from_secs(config.connect_timeout_secs),
        response_timeout: Duration::from_secs(config.request_timeout_secs),
        idle_timeout: Duration::from_secs(config.request_timeout_secs),
        max_retries: config.max_retries,
        ..HttpSettings::default()
    };
    Ok(match config.provider {
        AiProvider::Offline => Arc::new(OfflineProvider::new(config.tz()?)),
        AiProvider::Anthropic => {
            let defaults = AnthropicSettings::default();
            Arc::new(
                AnthropicProvider::new(AnthropicSettings {
                    base_url: config.base_url.clone().unwrap_or(defaults.base_url),
                    model: config.model.clone().unwrap_or(defaults.model),
                    api_key: secrets.anthropic_api_key.clone(),
                    http,
                })
                .context("ai.provider = \"anthropic\"")?,
            )
        }
        AiProvider::Openai => {
            let defaults = OpenAiSettings::default();
            let base_url = config.base_url.clone().unwrap_or(defaults.base_url.clone());
            if base_url == defaults.base_url && secrets.openai_api_key.is_none() {
                anyhow::bail!(
                    "ai.provider = \"openai\" with OpenAI's API needs OPENAI_API_KEY \
                     (or set ai.base_url to a server that needs no key)"
                );
            }
            Arc::new(
                OpenAiProvider::new(OpenAiSettings {
                    base_url,
                    model: config.model.clone().unwrap_or(defaults.model),
                    api_key: secrets.openai_api_key.clone(),
                    http,
                })
                .context("ai.provider = \"openai\"")?,
            )
        }
    })
}

pub fn embedder(
    config: &EmbeddingsConfig,
    data_dir: &Path,
    secrets: &AiSecrets,
) -> anyhow::Result<Arc<dyn Embedder>> {
    let hashed = || -> Arc<dyn Embedder> {
        Arc::new(LocalEmbedder::new(
            config.dimension.unwrap_or(DEFAULT_LOCAL_DIMENSION),
        ))
    };
    Ok(match config.provider {
        EmbeddingsProvider::Hashed => hashed(),
        EmbeddingsProvider::Minilm => {
            let dir = config.model_dir(data_dir);
            Arc::new(
                MiniLmEmbedder::load(&dir).with_context(|| {
                    format!("embeddings.provider = \"minilm\" ({})", dir.display())
                })?,
            )
        }
        EmbeddingsProvider::Auto => {
            let dir = config.model_dir(data_dir);
            match minilm::verify(&dir) {
                Ok(()) => Arc::new(MiniLmEmbedder::load(&dir).with_context(|| {
                    format!(
                        "embeddings.provider = \"auto\": loading MiniLM from {}",
                        dir.display()
                    )
                })?),
                Err(why) => {
                    tracing::warn!(
                        "embeddings.provider = \"auto\": {why}; using the hashed embedder, which \
                         matches words, not meaning. For semantic memory: `pixie models fetch`, \
                         then `pixie reindex` and a restart"
                    );
                    hashed()
                }
            }
        }
        EmbeddingsProvider::Openai => {
            let defaults = OpenAiEmbedderSettings::default();
            let base_url = config.base_url.clone().unwrap_or(defaults.base_url.clone());
            if base_url == defaults.base_url && secrets.openai_api_key.is_none() {
                anyhow::bail!(
                    "embeddings.provider = \"openai\" with OpenAI's API needs OPENAI_API_KEY \
                     (or set embeddings.base_url to a server that needs no key)"
                );
            }
            Arc::new(
                OpenAiEmbedder::new(OpenAiEmbedderSettings {
                    base_url,
                    model: config.model.clone().unwrap_or(defaults.model),
                    api_key: secrets.openai_api_key.clone(),
                    dimension: config.dimension.unwrap_or(defaults.dimension),
                    request_dimension: config.dimension.is_some(),
                    batch_size: config.batch_size,
                    http: HttpSettings {
                        response_timeout: Duration::from_secs(config.request_timeout_secs),
                        idle_timeout: Duration::from_secs(config.request_timeout_secs),
                        ..HttpSettings::default()
                    },
                })
                .context("embeddings.provider = \"openai\"")?,
            )
        }
    })
}

/// Opens the vector store and checks that its collection fits the embedder (creating it when
/// missing). A mismatch stops the start: vectors of two sizes cannot be compared.
pub async fn vector_store(
    config: &VectorConfig,
    data_dir: &Path,
    secrets: &AiSecrets,
    dimension: usize,
    recreate: bool,
) -> anyhow::Result<Arc<dyn VectorStore>> {
    let store: Arc<dyn VectorStore> = match config.backend {
        VectorBackend::Edge => {
            let dir = data_dir.join("vectors");
            Arc::new(
                EdgeStore::open(&dir)
                    .with_context(|| format!("opening the vector store in {}", dir.display()))?
                    .with_min_free_bytes(config.edge_min_free_mb.saturating_mul(1 << 20)),
            )
        }
        VectorBackend::Qdrant => Arc::new(
            QdrantStore::connect(
                &config.url,
                secrets.qdrant_api_key.clone(),
                &config.collection,
                Duration::from_secs(config.timeout_secs),
            )
            .with_context(|| format!("connecting to Qdrant at vector.url = {}", config.url))?,
        ),
    };
    store
        .ensure_collection(dimension, recreate)
        .await
        .with_context(|| format!("preparing the {} vector store", store.name()))?;
    Ok(store)
}

/// The model as a metric label: the configured name, or the provider's default.
fn model_label(config: &AiConfig) -> String {
    match config.provider {
        AiProvider::Offline => "offline".to_owned(),
        AiProvider::Anthropic => config
            .model
            .clone()
            .unwrap_or_else(|| AnthropicSettings::default().model),
        AiProvider::Openai => config
            .model
            .clone()
            .unwrap_or_else(|| OpenAiSettings::default().model),
    }
}

/// The embedder as a metric label, from its id.
fn embedder_label(id: &str) -> &'static str {
    if id.starts_with("hashed") {
        "hashed"
    } else if id.starts_with("openai") {
        "openai"
    } else {
        "minilm"
    }
}

/// The AI half, ready for the domain.
pub struct Ai {
    pub assistant: Arc<Orchestrator>,
    pub index: Arc<VectorIndex>,
    pub store: Arc<dyn VectorStore>,
    pub provider_name: &'static str,
}

pub async fn build(
    ai: &AiConfig,
    embeddings: &EmbeddingsConfig,
    vector: &VectorConfig,
    data_dir: &Path,
    secrets: &AiSecrets,
    store_override: Option<Arc<dyn VectorStore>>,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Ai> {
    let provider: Arc<dyn LlmProvider> = Arc::new(MeteredLlm::new(
        provider(ai, secrets)?,
        model_label(ai),
        metrics.clone(),
    ));
    let embedder = embedder(embeddings, data_dir, secrets)?;
    let embedder_name = embedder_label(&embedder.id());
    let embedder: Arc<dyn Embedder> = Arc::new(MeteredEmbedder::new(
        embedder,
        embedder_name,
        metrics.clone(),
    ));
    let store = match store_override {
        Some(store) => {
            store.ensure_collection(embedder.dimension(), false).await?;
            store
        }
        None => vector_store(vector, data_dir, secrets, embedder.dimension(), false).await?,
    };
    let store: Arc<dyn VectorStore> = Arc::new(MeteredStore::new(store, metrics));
    let provider_name = provider.name();
    let assistant = Arc::new(Orchestrator::new(
        provider,
        OrchestratorSettings {
            max_tool_rounds: ai.max_tool_rounds,
            max_tokens: ai.max_tokens,
            timezone: ai.tz()?,
            context_budget_chars: ai.context_budget_chars,
        },
    ));
    let index = Arc::new(VectorIndex::new(embedder, store.clone()));
    match index.check_store().await {
        Ok(()) => {}
        // Checked when the store answers: until then, search leans on words alone.
        Err(StoreMismatch::Store(e)) => {
            tracing::warn!(error = %e, "the vector store is down: its embedder will be checked when it is back");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(Ai {
        assistant,
        index,
        store,
        provider_name,
    })
}
