//! Decorators that time the AI half's calls for the metrics (`crate::metrics`): the model
//! provider (duration, time to the first event, tokens, errors by kind), the embedder and the
//! vector store (duration by operation). Each wraps the real one and changes nothing else.

use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use async_trait::async_trait;
use futures_util::StreamExt;
use uuid::Uuid;

use super::embed::{EmbedError, Embedder};
use super::llm::{LlmError, LlmEvent, LlmProvider, LlmRequest, LlmStream};
use super::vector::{VectorError, VectorHit, VectorPoint, VectorStore};
use crate::domain::assistant::DocKind;
use crate::metrics::{LlmLabels, Metrics};

pub struct MeteredLlm {
    inner: Arc<dyn LlmProvider>,
    metrics: Arc<Metrics>,
    labels: LlmLabels,
}

impl MeteredLlm {
    /// `model`: the configured model name (a label: it comes from the configuration only).
    pub fn new(inner: Arc<dyn LlmProvider>, model: String, metrics: Arc<Metrics>) -> Self {
        let labels = LlmLabels {
            provider: inner.name(),
            model,
        };
        Self {
            inner,
            metrics,
            labels,
        }
    }
}

fn error_kind(error: &LlmError) -> &'static str {
    match error {
        LlmError::Unavailable { .. } => "unavailable",
        LlmError::Upstream(_) => "upstream",
        LlmError::Protocol(_) => "protocol",
    }
}

#[async_trait]
impl LlmProvider for MeteredLlm {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn reads_system_prompt(&self) -> bool {
        self.inner.reads_system_prompt()
    }

    async fn stream(&self, request: &LlmRequest) -> Result<LlmStream, LlmError> {
        let started = Instant::now();
        let span = tracing::info_span!(
            "llm_call",
            provider = self.labels.provider,
            model = %self.labels.model
        );
        let stream = match tracing::Instrument::instrument(self.inner.stream(request), span).await {
            Ok(stream) => stream,
            Err(e) => {
                self.metrics.llm_error(&self.labels, error_kind(&e));
                self.metrics.llm_call(&self.labels, started.elapsed());
                return Err(e);
            }
        };
        let call = Call {
            metrics: self.metrics.clone(),
            labels: self.labels.clone(),
            started,
        };
        let mut first = true;
        let mut inner = stream;
        // Watches the events as they pass: the first one, usage, errors. The call's duration
        // is taken when the stream is dropped: the caller stops reading after the last event.
        let watched = futures_util::stream::poll_fn(move |cx| {
            let polled = inner.poll_next_unpin(cx);
            if let Poll::Ready(Some(item)) = &polled {
                if first {
                    first = false;
                    call.metrics
                        .llm_first_token(&call.labels, call.started.elapsed());
                }
                match item {
                    Ok(LlmEvent::Usage {
                        input_tokens,
                        output_tokens,
                    }) => call
                        .metrics
                        .llm_tokens(&call.labels, *input_tokens, *output_tokens),
                    Err(e) => call.metrics.llm_error(&call.labels, error_kind(e)),
                    Ok(_) => {}
                }
            }
            polled
        });
        Ok(Box::pin(watched))
    }
}

/// One model call in flight; its duration is recorded when it goes.
struct Call {
    metrics: Arc<Metrics>,
    labels: LlmLabels,
    started: Instant,
}

impl Drop for Call {
    fn drop(&mut self) {
        self.metrics.llm_call(&self.labels, self.started.elapsed());
    }
}

pub struct MeteredEmbedder {
    inner: Arc<dyn Embedder>,
    name: &'static str,
    metrics: Arc<Metrics>,
}

impl MeteredEmbedder {
    /// `name`: `minilm`, `hashed` or `openai`.
    pub fn new(inner: Arc<dyn Embedder>, name: &'static str, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            name,
            metrics,
        }
    }
}

#[async_trait]
impl Embedder for MeteredEmbedder {
    fn dimension(&self) -> usize {
        self.inner.dimension()
    }

    fn id(&self) -> String {
        self.inner.id()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let started = Instant::now();
        let vectors = self.inner.embed(texts).await;
        self.metrics.embedding(self.name, started.elapsed());
        vectors
    }
}

pub struct MeteredStore {
    inner: Arc<dyn VectorStore>,
    metrics: Arc<Metrics>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn VectorStore>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    fn timed(&self, operation: &'static str, started: Instant) {
        self.metrics
            .vector_store(self.inner.name(), operation, started.elapsed());
    }
}

#[async_trait]
impl VectorStore for MeteredStore {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    async fn ensure_collection(&self, dimension: usize, recreate: bool) -> Result<(), VectorError> {
        self.inner.ensure_collection(dimension, recreate).await
    }

    async fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        let started = Instant::now();
        let result = self.inner.upsert(points).await;
        self.timed("upsert", started);
        result
    }

    async fn delete(&self, user_id: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        let started = Instant::now();
        let result = self.inner.delete(user_id, ids).await;
        self.timed("delete", started);
        result
    }

    async fn delete_user(&self, user_id: &str) -> Result<(), VectorError> {
        let started = Instant::now();
        let result = self.inner.delete_user(user_id).await;
        self.timed("delete_user", started);
        result
    }

    async fn search(
        &self,
        user_id: &str,
        vector: Vec<f32>,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        let started = Instant::now();
        let result = self.inner.search(user_id, vector, kinds, limit).await;
        self.timed("search", started);
        result
    }

    async fn count(&self, user_id: &str) -> Result<u64, VectorError> {
        self.inner.count(user_id).await
    }

    async fn count_all(&self) -> Result<u64, VectorError> {
        self.inner.count_all().await
    }

    async fn is_healthy(&self) -> bool {
        self.inner.is_healthy().await
    }
}
