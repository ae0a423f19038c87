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
    /// Set once the store is known to hold this embedder's vectors.
    checked: tokio::sync::OnceCell<()>,
}

/// The store's record of what filled it: one point of no user (user ids are never empty),
/// found by a search filtered to that empty id; its snippet is this record as JSON.
const RECORD_ID: Uuid = Uuid::from_u128(0x7069_7869_6500_0000_656d_6265_6464_6572);
const RECORD_USER: &str = "";

/// What filled the store, and whether a rebuild is under way (with where it got to).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreRecord {
    pub embedder: String,
    /// Set while `pixie reindex` runs: the kind and id it had done up to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuilding: Option<Progress>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    pub kind: DocKind,
    pub after: Option<Uuid>,
}

/// Why the store cannot be used with this embedder.
#[derive(Debug, thiserror::Error)]
pub enum StoreMismatch {
    #[error(
        "the vector store holds vectors of the embedder {found:?}, and this configuration \
         embeds with {wanted:?}: the two cannot be compared. Run `pixie reindex` to re-embed \
         everything with {wanted:?} (or configure the embedder that filled the store)"
    )]
    OtherEmbedder { found: String, wanted: String },
    #[error(
        "the vector store holds vectors but does not record which embedder made them (an \
         older version filled it); run `pixie reindex` to rebuild it with {wanted:?}"
    )]
    Unrecorded { wanted: String },
    #[error("a `pixie reindex` did not finish; run it again to resume it")]
    Rebuilding,
    #[error(transparent)]
    Store(#[from] VectorError),
}

impl VectorIndex {
    pub fn new(embedder: Arc<dyn Embedder>, store: Arc<dyn VectorStore>) -> Self {
        Self {
            embedder,
            store,
            checked: tokio::sync::OnceCell::new(),
        }
    }

    pub fn store(&self) -> &Arc<dyn VectorStore> {
        &self.store
    }

    pub fn embedder(&self) -> &Arc<dyn Embedder> {
        &self.embedder
    }

    /// What the store says filled it, if it says.
    pub async fn record(&self) -> Result<Option<StoreRecord>, VectorError> {
        let hits = self.store.search(RECORD_USER, self.unit(), &[], 1).await?;
        Ok(hits
            .into_iter()
            .find(|h| h.id == RECORD_ID)
            .and_then(|h| serde_json::from_str(&h.snippet).ok()))
    }

    /// Writes the store's record.
    pub async fn set_record(&self, record: &StoreRecord) -> Result<(), VectorError> {
        let snippet = serde_json::to_string(record)
            .map_err(|e| VectorError::Invalid(format!("the store record: {e}")))?;
        self.store
            .upsert(vec![VectorPoint {
                id: RECORD_ID,
                user_id: RECORD_USER.to_owned(),
                kind: DocKind::Memory,
                vector: self.unit(),
                snippet,
            }])
            .await
    }

    fn unit(&self) -> Vec<f32> {
        let mut vector = vec![0.0; self.embedder.dimension().max(1)];
        vector[0] = 1.0;
        vector
    }

    /// Checks that the store holds this embedder's vectors; an empty store is claimed for it.
    /// A store that holds another's (or does not say whose) is refused: vectors of two
    /// embedders side by side would give meaningless rankings.
    pub async fn check_store(&self) -> Result<(), StoreMismatch> {
        self.checked
            .get_or_try_init(|| async {
                let wanted = self.embedder.id();
                match self.record().await? {
                    Some(StoreRecord {
                        rebuilding: Some(_),
                        ..
                    }) => Err(StoreMismatch::Rebuilding),
                    Some(record) if record.embedder == wanted => Ok(()),
                    Some(record) => Err(StoreMismatch::OtherEmbedder {
                        found: record.embedder,
                        wanted,
                    }),
                    None if self.store.count_all().await? == 0 => {
                        self.set_record(&StoreRecord {
                            embedder: wanted,
                            rebuilding: None,
                        })
                        .await?;
                        Ok(())
                    }
                    None => Err(StoreMismatch::Unrecorded { wanted }),
                }
            })
            .await
            .map(|_| ())
    }

    /// Takes the store as this embedder's without looking (a rebuild that made it so).
    pub fn trust_store(&self) {
        let _ = self.checked.set(());
    }

    /// The check before any use; a store that was down at start is checked when it answers.
    async fn ready(&self) -> Result<(), AssistantError> {
        self.check_store().await.map_err(|e| match e {
            StoreMismatch::Store(e) => from_store(e),
            other => AssistantError::BadGateway(other.to_string()),
        })
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
        self.ready().await?;
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
        self.ready().await?;
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
