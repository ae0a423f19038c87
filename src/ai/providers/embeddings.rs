//! Embeddings from any OpenAI-compatible `POST {base_url}/embeddings` (OpenAI, Ollama, vLLM,
//! llama.cpp, LM Studio, …): `{model, input: [texts]}` → `{data: [{index, embedding}]}`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::http::{HttpSettings, Transport, bearer, endpoint};
use crate::ai::embed::{EmbedError, Embedder};
use crate::ai::llm::LlmError;

#[derive(Clone)]
pub struct OpenAiEmbedderSettings {
    /// Up to and including the version, as for chat: `https://api.openai.com/v1`, …
    pub base_url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer` when set.
    pub api_key: Option<String>,
    /// The length of the model's vectors; every vector returned is checked against it, since
    /// a vector store built for one size cannot hold another.
    pub dimension: usize,
    /// Also ask for `dimension` in the request (`dimensions`), for models that can shorten
    /// their vectors (OpenAI's `text-embedding-3-*`). Other servers may reject the field.
    pub request_dimension: bool,
    /// Texts per request.
    pub batch_size: usize,
    pub http: HttpSettings,
}

impl Default for OpenAiEmbedderSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: "text-embedding-3-small".to_owned(),
            api_key: None,
            dimension: 1536,
            request_dimension: false,
            batch_size: 64,
            http: HttpSettings::default(),
        }
    }
}

pub struct OpenAiEmbedder {
    transport: Transport,
    url: String,
    model: String,
    dimension: usize,
    request_dimension: bool,
    batch_size: usize,
}

impl OpenAiEmbedder {
    pub fn new(settings: OpenAiEmbedderSettings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.dimension > 0,
            "the embedding dimension must be positive"
        );
        anyhow::ensure!(
            settings.batch_size > 0,
            "the embedding batch size must be positive"
        );
        Ok(Self {
            transport: Transport::new(settings.http, bearer(settings.api_key.as_deref())?)?,
            url: endpoint(&settings.base_url, "embeddings")?,
            model: settings.model,
            dimension: settings.dimension,
            request_dimension: settings.request_dimension,
            batch_size: settings.batch_size,
        })
    }

    async fn embed_batch(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut body = json!({ "model": self.model, "input": texts });
        if self.request_dimension {
            body["dimensions"] = json!(self.dimension);
        }
        let response = self
            .transport
            .post_json(&self.url, &body)
            .await
            .map_err(embed_error)?;
        let body = self
            .transport
            .read_body(response)
            .await
            .map_err(embed_error)?;
        let mut data = serde_json::from_slice::<Response>(&body)
            .map_err(|error| bad(format!("not an embeddings response: {error}")))?
            .data;
        if data.len() != texts.len() {
            return Err(bad(format!(
                "{} vectors for {} texts",
                data.len(),
                texts.len()
            )));
        }
        // The API does not promise input order, only an `index` per vector (servers that
        // leave it out answer in order; the sort is stable).
        data.sort_by_key(|item| item.index);
        if data
            .iter()
            .enumerate()
            .any(|(i, item)| item.index.is_some_and(|index| index != i))
        {
            return Err(bad("vector indices are not 0..n".to_owned()));
        }
        data.into_iter()
            .map(|item| match item.embedding.len() {
                n if n == self.dimension => Ok(item.embedding),
                n => Err(bad(format!(
                    "model {} returned a vector of {n} dimensions, but the configured \
                     dimension is {}: set the dimension to the model's",
                    self.model, self.dimension
                ))),
            })
            .collect()
    }
}

#[async_trait]
impl Embedder for OpenAiEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn id(&self) -> String {
        format!("openai:{}:{}", self.model, self.dimension)
    }

    #[tracing::instrument(name = "embeddings", skip_all, fields(model = %self.model, texts = texts.len()))]
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut vectors = Vec::with_capacity(texts.len());
        for batch in texts.chunks(self.batch_size) {
            vectors.extend(self.embed_batch(batch).await?);
        }
        Ok(vectors)
    }
}

#[derive(Deserialize)]
struct Response {
    data: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    index: Option<usize>,
    embedding: Vec<f32>,
}

fn bad(message: String) -> EmbedError {
    EmbedError::BadResponse(message)
}

/// The shared transport speaks the model seam's errors; an embedder has only two: try again
/// later, or the answer (4xx included: bad key, unknown model) is unusable.
fn embed_error(error: LlmError) -> EmbedError {
    match error {
        LlmError::Unavailable { message, .. } => EmbedError::Unavailable(message),
        LlmError::Upstream(message) | LlmError::Protocol(message) => {
            EmbedError::BadResponse(message)
        }
    }
}
