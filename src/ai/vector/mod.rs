//! Vector stores: where document embeddings live. Every point carries its owner's user id and
//! every search is filtered to one user.
//!
//! - [`edge`]: Qdrant Edge, in process, on disk under `server.data_dir/vectors` (the default).
//! - [`qdrant`]: a Qdrant server or cluster over gRPC (`qdrant-client`).

pub mod edge;
pub mod qdrant;

use async_trait::async_trait;
use uuid::Uuid;

use crate::domain::assistant::DocKind;

/// One stored vector: a document of one user.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorPoint {
    /// The document's id (the task, event, memory or message id); also the point id.
    pub id: Uuid,
    pub user_id: String,
    pub kind: DocKind,
    pub vector: Vec<f32>,
    /// The start of the document's text, returned with search hits.
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub id: Uuid,
    pub kind: DocKind,
    /// Cosine similarity.
    pub score: f32,
    pub snippet: String,
}

#[derive(Debug, thiserror::Error)]
pub enum VectorError {
    /// The collection exists with vectors of another size (the embedder changed).
    #[error(
        "the vector collection holds {existing}-dimensional vectors but the embedder makes \
         {wanted}-dimensional ones; point the store elsewhere or run `pixie reindex`"
    )]
    DimensionMismatch { existing: usize, wanted: usize },
    /// The store cannot be reached or failed; the operation may succeed later.
    #[error("vector store unavailable: {0}")]
    Unavailable(String),
    /// A bad argument (e.g. a vector of the wrong size).
    #[error("vector store rejected the request: {0}")]
    Invalid(String),
}

#[async_trait]
pub trait VectorStore: Send + Sync {
    /// `edge` or `qdrant`.
    fn name(&self) -> &'static str;
    /// Creates the collection (cosine distance, `dimension`-sized vectors, an index on the
    /// user id) if missing; fails with `DimensionMismatch` if it exists with another size.
    /// With `recreate`, drops any existing collection first.
    async fn ensure_collection(&self, dimension: usize, recreate: bool) -> Result<(), VectorError>;
    /// Inserts or replaces points by id.
    async fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), VectorError>;
    /// Deletes these points of this user (points of other users are never touched).
    async fn delete(&self, user_id: &str, ids: &[Uuid]) -> Result<(), VectorError>;
    /// Deletes every point of the user.
    async fn delete_user(&self, user_id: &str) -> Result<(), VectorError>;
    /// The `limit` points of this user closest to `vector`, best first, restricted to
    /// `kinds` (all kinds when empty).
    async fn search(
        &self,
        user_id: &str,
        vector: Vec<f32>,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError>;
    /// Number of points of the user (for tests and `pixie reindex` reports).
    async fn count(&self, user_id: &str) -> Result<u64, VectorError>;
    /// Number of points in the collection, of every user.
    async fn count_all(&self) -> Result<u64, VectorError>;
    /// For `/readyz`.
    async fn is_healthy(&self) -> bool;
}
