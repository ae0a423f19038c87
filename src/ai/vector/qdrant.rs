//! A Qdrant server or cluster over gRPC (`qdrant-client`), for production.
//!
//! # Layout
//! The same as the embedded store's (see `edge`): one collection (its name comes from the
//! config) with one unnamed cosine vector per point; the point id is the document's UUID and
//! the payload is `{user_id, kind, user_kind, snippet}`, `user_kind` being `"<kind>:<user_id>"`.
//! Keyword payload indexes on `user_id` (marked as the tenant key) and `user_kind`; HNSW links
//! only within each value of those (`m = 0`, `payload_m = 16`): Qdrant's recommended
//! multitenancy setup, where a search filtered to one user walks that user's own graph, and a
//! search restricted to kinds walks the graphs of those kinds of that user.
//!
//! # Isolation per user
//! Every search, count and delete carries a `user_id` filter; a delete is
//! `user_id = <caller> AND id ∈ ids`, so naming another user's id deletes nothing. User ids are
//! matched as exact keywords, built explicitly: qdrant-client's `From<String>` for `MatchValue`
//! turns any string containing whitespace into a full-text match.
//!
//! Writes wait for the server to apply them (`wait = true`), so a search right after an upsert
//! sees it, as with the embedded store.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use qdrant_client::qdrant::r#match::MatchValue;
use qdrant_client::qdrant::point_id::PointIdOptions;
use qdrant_client::qdrant::value::Kind;
use qdrant_client::qdrant::vectors_config::Config;
use qdrant_client::qdrant::{
    CollectionInfo, Condition, CountPointsBuilder, CreateCollectionBuilder,
    CreateFieldIndexCollectionBuilder, DeletePointsBuilder, Distance, FieldType, Filter,
    HnswConfigDiffBuilder, KeywordIndexParamsBuilder, PointStruct, Query, QueryPointsBuilder,
    RepeatedStrings, ScoredPoint, UpsertPointsBuilder, Value, VectorParamsBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use uuid::Uuid;

use super::edge::check_vector;
use super::{VectorError, VectorHit, VectorPoint, VectorStore};
use crate::domain::assistant::DocKind;

const USER_ID: &str = "user_id";
const KIND: &str = "kind";
const USER_KIND: &str = "user_kind";
const SNIPPET: &str = "snippet";

/// gRPC status `INVALID_ARGUMENT`: Qdrant's answer to bad input (e.g. a vector of the wrong
/// size). `tonic` is not a direct dependency, hence the number.
const GRPC_INVALID_ARGUMENT: i32 = 3;

pub struct QdrantStore {
    client: Qdrant,
    collection: String,
    /// The collection's vector size once `ensure_collection` has checked it (0 before), so a
    /// vector of the wrong size is `Invalid` before it costs a round trip.
    dimension: AtomicUsize,
}

impl QdrantStore {
    /// Builds the client; it connects lazily, on the first request (`is_healthy` tells whether
    /// the server answers). `url` is the gRPC endpoint, e.g. `http://localhost:6334`;
    /// `timeout` bounds each request and each connection attempt.
    pub fn connect(
        url: &str,
        api_key: Option<String>,
        collection: &str,
        timeout: Duration,
    ) -> Result<Self, VectorError> {
        // The compatibility check would block the caller on a health check from a private
        // runtime, and only print its verdict.
        let client = Qdrant::from_url(url)
            .api_key(api_key)
            .timeout(timeout)
            .connect_timeout(timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| VectorError::Invalid(format!("Qdrant at {url}: {e}")))?;
        Ok(Self {
            client,
            collection: collection.to_owned(),
            dimension: AtomicUsize::new(0),
        })
    }

    /// Creates the collection with our layout. Another instance may have created it in the
    /// meantime: that is success.
    async fn create_collection(&self, dimension: usize) -> Result<(), VectorError> {
        let request = CreateCollectionBuilder::new(&self.collection)
            .vectors_config(VectorParamsBuilder::new(dimension as u64, Distance::Cosine))
            .hnsw_config(HnswConfigDiffBuilder::default().m(0).payload_m(16));
        match self.client.create_collection(request).await {
            Ok(_) => Ok(()),
            Err(e) if self.exists().await? => {
                tracing::debug!(error = %e, "collection created concurrently");
                Ok(())
            }
            Err(e) => Err(qdrant_error(e)),
        }
    }

    async fn exists(&self) -> Result<bool, VectorError> {
        self.client
            .collection_exists(&self.collection)
            .await
            .map_err(qdrant_error)
    }

    async fn info(&self) -> Result<CollectionInfo, VectorError> {
        let response = self
            .client
            .collection_info(&self.collection)
            .await
            .map_err(qdrant_error)?;
        response.result.ok_or_else(|| {
            VectorError::Unavailable("Qdrant described the collection with nothing".to_owned())
        })
    }

    /// Creates a keyword index. Whether Qdrant accepts re-creating an existing index has varied,
    /// so a failure is success if the index now exists (another instance made it).
    async fn keyword_index(&self, field: &str, tenant: bool) -> Result<(), VectorError> {
        let request =
            CreateFieldIndexCollectionBuilder::new(&self.collection, field, FieldType::Keyword)
                .field_index_params(
                    KeywordIndexParamsBuilder::default()
                        .is_tenant(tenant)
                        .enable_hnsw(true),
                )
                .wait(true);
        match self.client.create_field_index(request).await {
            Ok(_) => Ok(()),
            Err(e) if self.info().await?.payload_schema.contains_key(field) => {
                tracing::debug!(error = %e, field, "index created concurrently");
                Ok(())
            }
            Err(e) => Err(qdrant_error(e)),
        }
    }

    async fn delete_where(&self, filter: Filter) -> Result<(), VectorError> {
        let request = DeletePointsBuilder::new(&self.collection)
            .points(filter)
            .wait(true);
        self.client
            .delete_points(request)
            .await
            .map_err(qdrant_error)?;
        Ok(())
    }

    fn check_vector(&self, vector: &[f32]) -> Result<(), VectorError> {
        match self.dimension.load(Ordering::Relaxed) {
            0 => Ok(()), // not checked yet: the server decides
            dimension => check_vector(vector, dimension),
        }
    }
}

#[async_trait]
impl VectorStore for QdrantStore {
    fn name(&self) -> &'static str {
        "qdrant"
    }

    #[tracing::instrument(level = "debug", skip(self), fields(collection = %self.collection))]
    async fn ensure_collection(&self, dimension: usize, recreate: bool) -> Result<(), VectorError> {
        if dimension == 0 {
            return Err(VectorError::Invalid(
                "the vector dimension must be > 0".to_owned(),
            ));
        }
        let mut exists = self.exists().await?;
        if recreate && exists {
            self.client
                .delete_collection(&self.collection)
                .await
                .map_err(qdrant_error)?;
            exists = false;
        }
        if !exists {
            self.create_collection(dimension).await?;
        }
        let info = self.info().await?;
        let existing = vector_size(&info).ok_or_else(|| {
            VectorError::Invalid(format!(
                "the Qdrant collection {} does not hold one unnamed cosine vector per point: it \
                 was not created by Pixie; choose another collection name",
                self.collection
            ))
        })?;
        if existing != dimension {
            return Err(VectorError::DimensionMismatch {
                existing,
                wanted: dimension,
            });
        }
        for (field, tenant) in [(USER_ID, true), (USER_KIND, false)] {
            if !info.payload_schema.contains_key(field) {
                self.keyword_index(field, tenant).await?;
            }
        }
        self.dimension.store(dimension, Ordering::Relaxed);
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(points = points.len()))]
    async fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        for point in &points {
            self.check_vector(&point.vector)?;
        }
        let points: Vec<_> = points
            .into_iter()
            .map(|point| {
                let payload = Payload::from([
                    (
                        USER_KIND,
                        Value::from(user_kind(point.kind, &point.user_id)),
                    ),
                    (USER_ID, Value::from(point.user_id)),
                    (KIND, Value::from(point.kind.as_str())),
                    (SNIPPET, Value::from(point.snippet)),
                ]);
                PointStruct::new(point.id.to_string(), point.vector, payload)
            })
            .collect();
        let request = UpsertPointsBuilder::new(&self.collection, points).wait(true);
        self.client
            .upsert_points(request)
            .await
            .map_err(qdrant_error)?;
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self, ids), fields(ids = ids.len()))]
    async fn delete(&self, user_id: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = Condition::has_id(ids.iter().map(Uuid::to_string));
        self.delete_where(Filter::must([user_condition(user_id), ids]))
            .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_user(&self, user_id: &str) -> Result<(), VectorError> {
        self.delete_where(Filter::must([user_condition(user_id)]))
            .await
    }

    #[tracing::instrument(level = "debug", skip(self, vector))]
    async fn search(
        &self,
        user_id: &str,
        vector: Vec<f32>,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        self.check_vector(&vector)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut filter = Filter::must([user_condition(user_id)]);
        if !kinds.is_empty() {
            let strings = kinds.iter().map(|&kind| user_kind(kind, user_id)).collect();
            filter.must.push(Condition::matches(
                USER_KIND,
                MatchValue::Keywords(RepeatedStrings { strings }),
            ));
        }
        let request = QueryPointsBuilder::new(&self.collection)
            .query(Query::new_nearest(vector))
            .filter(filter)
            .limit(limit as u64)
            .with_payload(true);
        let response = self.client.query(request).await.map_err(qdrant_error)?;
        response.result.into_iter().map(hit).collect()
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn count(&self, user_id: &str) -> Result<u64, VectorError> {
        let request = CountPointsBuilder::new(&self.collection)
            .filter(Filter::must([user_condition(user_id)]))
            .exact(true);
        let response = self.client.count(request).await.map_err(qdrant_error)?;
        Ok(response.result.map_or(0, |result| result.count))
    }

    async fn count_all(&self) -> Result<u64, VectorError> {
        let request = CountPointsBuilder::new(&self.collection).exact(true);
        let response = self.client.count(request).await.map_err(qdrant_error)?;
        Ok(response.result.map_or(0, |result| result.count))
    }

    async fn is_healthy(&self) -> bool {
        self.client.health_check().await.is_ok()
    }
}

/// The size of the collection's unnamed cosine vector, if that is its layout.
fn vector_size(info: &CollectionInfo) -> Option<usize> {
    let params = info.config.as_ref()?.params.as_ref()?;
    match params.vectors_config.as_ref()?.config.as_ref()? {
        Config::Params(vector) if vector.distance == Distance::Cosine as i32 => {
            Some(vector.size as usize)
        }
        _ => None,
    }
}

/// The value that has a graph per (kind, user). Unambiguous: kinds hold no `:`.
fn user_kind(kind: DocKind, user_id: &str) -> String {
    format!("{}:{user_id}", kind.as_str())
}

/// `user_id = <user_id>`, as an exact keyword match.
fn user_condition(user_id: &str) -> Condition {
    Condition::matches(USER_ID, MatchValue::Keyword(user_id.to_owned()))
}

fn hit(point: ScoredPoint) -> Result<VectorHit, VectorError> {
    let corrupt = |what: &str| VectorError::Unavailable(format!("a Qdrant search hit {what}"));
    let id = match point.id.and_then(|id| id.point_id_options) {
        Some(PointIdOptions::Uuid(id)) => {
            Uuid::parse_str(&id).map_err(|_| corrupt("has an id that is not a UUID"))?
        }
        _ => return Err(corrupt("has no UUID")),
    };
    let field = |name: &str| match point.payload.get(name).and_then(|v| v.kind.as_ref()) {
        Some(Kind::StringValue(text)) => Some(text.as_str()),
        _ => None,
    };
    let kind = field(KIND)
        .and_then(DocKind::parse)
        .ok_or_else(|| corrupt("has no valid kind"))?;
    let snippet = field(SNIPPET).ok_or_else(|| corrupt("has no snippet"))?;
    Ok(VectorHit {
        id,
        kind,
        score: point.score,
        snippet: snippet.to_owned(),
    })
}

/// Bad input is `Invalid`; anything else (unreachable, timeouts, overload, a missing
/// collection, server errors) is `Unavailable`: it may work later.
fn qdrant_error(error: QdrantError) -> VectorError {
    match &error {
        QdrantError::ResponseError { status }
            if i32::from(status.code()) == GRPC_INVALID_ARGUMENT =>
        {
            VectorError::Invalid(status.message().to_owned())
        }
        QdrantError::ConversionError(_) | QdrantError::InvalidUri(_) => {
            VectorError::Invalid(error.to_string())
        }
        _ => VectorError::Unavailable(error.to_string()),
    }
}
