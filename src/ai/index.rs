//! The semantic index port over an embedder and a vector store.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;

use super::embed::{EmbedError, Embedder};
use super::vector::{VectorError, VectorPoint, VectorStore};
use crate::domain::UserId;
use crate::domain::assistant::{AssistantError, DocKind, Document, Recalled, SemanticIndex};

/// Characters of a document kept with its vector and shown in search results.
const SNIPPET_CHARS: usize = 280;

pub struct VectorIndex {
    embedder: Arc<dyn Embedder>,
    store: Arc<dyn VectorStore>,
}

impl VectorIndex {
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> Self {
        Self { embedder, store }
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }
}

fn from_embed(e: EmbedError) -> AssistantError {
    match e {
        EmbedError::Unavailable(m) => AssistantError::Unavailable(m),
        EmbedError::BadResponse(m) => AssistantError::BadGateway(m),
    }
}

fn from_store(e: VectorError) -> AssistantError {
    match e {
        VectorError::Unavailable(m) => AssistantError::Unavailable(m),
        other => AssistantError::BadGateway(other.to_string()),
    }
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[async_trait]
impl SemanticIndex for VectorIndex {
    async fn index(&self, documents: &[Document]) -> Result<(), AssistantError> {
        if documents.is_empty() {
            return Ok(());
        }
        let texts: Vec<String> = documents.iter().map(|d| d.text.clone()).collect();
        let vectors = self.embedder.embed(&texts).await.map_err(from_embed)?;
        if vectors.len() != documents.len() {
            return Err(AssistantError::BadGateway(format!(
                "the embedder returned {} vectors for {} texts",
                vectors.len(),
                documents.len()
            )));
        }
        let points = documents
            .iter()
            .zip(vectors)
            .map(|(d, vector)| VectorPoint {
                id: d.id,
                user_id: d.user.as_str().to_owned(),
                kind: d.kind,
                vector,
                snippet: snippet(&d.text),
            })
            .collect();
        self.store.upsert(points).await.map_err(from_store)
    }

    async fn forget(&self, user: &UserId, ids: &[Uuid]) -> Result<(), AssistantError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.store
            .delete(user.as_str(), ids)
            .await
            .map_err(from_store)
    }

    async fn forget_user(&self, user: &UserId) -> Result<(), AssistantError> {
        self.store
            .delete_user(user.as_str())
            .await
            .map_err(from_store)
    }

    async fn recall(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<Recalled>, AssistantError> {
        let mut vectors = self
            .embedder
            .embed(&[query.to_owned()])
            .await
            .map_err(from_embed)?;
        let Some(vector) = vectors.pop() else {
            return Err(AssistantError::BadGateway(
                "the embedder returned no vector".into(),
            ));
        };
        let hits = self
            .store
            .search(user.as_str(), vector, kinds, limit)
            .await
            .map_err(from_store)?;
        // Nothing in common (cosine ≤ 0) is noise, not a result.
        Ok(hits
            .into_iter()
            .filter(|h| h.score > 0.0)
            .map(|h| Recalled {
                kind: h.kind,
                id: h.id,
                score: h.score,
                snippet: h.snippet,
            })
            .collect())
    }
}
