//! Qdrant Edge: the embedded vector store, in process, on disk (the default backend).
//!
//! # Layout
//! One Qdrant Edge shard in `<dir>/shard`, where `dir` is given to [`EdgeStore::open`]
//! (`server.data_dir/vectors`): `edge_config.json` (vector size, cosine distance, HNSW settings;
//! this is where the dimension persists across restarts), `segments/` (vectors, payloads, payload
//! and HNSW indexes) and `wal/`. One point per document: the document's UUID as point id, one
//! unnamed dense vector, and the payload `{user_id, kind, user_kind, snippet}`, where
//! `user_kind` is `"<kind>:<user_id>"` (see below).
//!
//! # Isolation per user
//! Every search, count and delete carries a `user_id = <caller>` filter, deletes included (a
//! delete is "these ids *of this user*", never a bare id lookup), so a caller cannot reach another
//! user's point even by naming its id. The layout is Qdrant's multitenancy one: a keyword index
//! on `user_id` marked as the tenant key, and HNSW links built per tenant only (`m = 0`,
//! `payload_m = 16`). A search walks its user's own graph, or scans that user's points through
//! the index when they are too few to deserve a graph, so its cost does not grow with the
//! number of other users. A search restricted to kinds filters on `user_kind`, which has its own
//! HNSW links per (kind, user): filtering a user's graph down to one kind instead leaves it in
//! disconnected pieces (recall@10 fell to 0.02 in `benches/recall.rs`; ACORN, which Qdrant
//! offers for this, needs the global graph that `m = 0` leaves out).
//!
//! # Concurrency and durability
//! [`EdgeShard`] is synchronous and locks internally; every call runs on the blocking pool. Reads
//! run in parallel. Writes are serialised by [`Shard::writes`] because `EdgeShard::flush`
//! *panics* if it races an update (it `try_lock`s the WAL) or an optimiser swapping segments,
//! or if the disk fails it; those panics are caught (see [`flush`] and `Shard`'s `Drop`).
//! qdrant-edge 0.7 does not replay its WAL on load, so each write is flushed before it returns
//! (otherwise a crash would lose it); and it has no background optimiser, so a write that makes
//! a segment large enough builds its HNSW index before returning (seconds for 10⁵ points).
//! Known limit of 0.7: the WAL is never truncated and grows with every write; recreating the
//! collection (`pixie reindex --recreate`) resets it.

use std::io::ErrorKind;
use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use qdrant_edge::{
    Condition, CountRequest, CreateIndex, DEFAULT_VECTOR_NAME, Distance, EdgeConfig,
    EdgeOptimizersConfig, EdgeShard, EdgeVectorParams, FieldCondition, FieldIndexOperations,
    Filter, HnswIndexConfig, JsonPath, KeywordIndexParams, Match, NamedQuery, OperationError,
    Payload, PayloadFieldSchema, PayloadSchemaParams, PointId, PointInsertOperations,
    PointOperations, PointStructPersisted, QueryEnum, QueryRequest, ScoredPoint, ScoringQuery,
    UpdateOperation, VectorInternal, VectorStructPersisted, WithPayloadInterface, WithVector,
};
use serde_json::{Map, Value};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};
use uuid::Uuid;

use super::{VectorError, VectorHit, VectorPoint, VectorStore};
use crate::domain::assistant::DocKind;

const USER_ID: &str = "user_id";
const KIND: &str = "kind";
const USER_KIND: &str = "user_kind";
const SNIPPET: &str = "snippet";

/// `vector.edge_min_free_mb`'s default.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 256 << 20;

/// The embedded store. Cheap to share behind an `Arc`; every method is safe to call
/// concurrently.
pub struct EdgeStore {
    /// The shard's directory, `<dir>/shard`.
    path: PathBuf,
    /// Writes wait while the disk has less room than this (see [`Shard::room`]).
    min_free_bytes: u64,
    /// `None` until [`VectorStore::ensure_collection`] opens or creates the shard. Operations
    /// hold a read guard for their whole duration, so `ensure_collection` (write guard) can drop
    /// and delete the shard knowing nothing still uses it.
    state: Arc<RwLock<Option<Shard>>>,
}

struct Shard {
    /// Closed by `Shard`'s own `Drop` (see there).
    edge: ManuallyDrop<EdgeShard>,
    dimension: usize,
    path: PathBuf,
    min_free_bytes: u64,
    /// Held across update + flush + optimise (see the module docs).
    writes: Mutex<()>,
}

type ShardGuard = OwnedRwLockReadGuard<Option<Shard>, Shard>;

impl EdgeStore {
    /// Prepares the store under `dir` (created if missing). The shard itself is opened, or
    /// created, by `ensure_collection`, which knows the dimension to expect.
    pub fn open(dir: &Path) -> Result<Self, VectorError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            VectorError::Unavailable(format!("cannot create {}: {e}", dir.display()))
        })?;
        Ok(Self {
            path: dir.join("shard"),
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            state: Arc::new(RwLock::new(None)),
        })
    }

    /// Writes wait (fail as unavailable, and the outbox retries them) while the store's disk
    /// has less than this many bytes free.
    pub fn with_min_free_bytes(mut self, bytes: u64) -> Self {
        self.min_free_bytes = bytes;
        self
    }

    async fn shard(&self) -> Result<ShardGuard, VectorError> {
        let guard = self.state.clone().read_owned().await;
        OwnedRwLockReadGuard::try_map(guard, Option::as_ref).map_err(|_| {
            VectorError::Unavailable("the vector collection is not open yet".to_owned())
        })
    }

    async fn write(&self, op: UpdateOperation) -> Result<(), VectorError> {
        let shard = self.shard().await?;
        blocking(move || shard.write_points(op)).await
    }
}

impl Shard {
    /// Loads the shard at `path`, or creates it with `dimension`-sized vectors if there is none.
    fn open(path: &Path, dimension: usize, min_free_bytes: u64) -> Result<Self, VectorError> {
        let edge = match EdgeConfig::load(path) {
            Some(config) => {
                config.map_err(edge_error)?;
                EdgeShard::load(path, None).map_err(|e| open_error(path, e))?
            }
            None => {
                std::fs::create_dir_all(path).map_err(|e| {
                    VectorError::Unavailable(format!("cannot create {}: {e}", path.display()))
                })?;
                EdgeShard::new(path, new_config(dimension)).map_err(|e| open_error(path, e))?
            }
        };
        let dimension = edge
            .config()
            .vectors
            .get(DEFAULT_VECTOR_NAME)
            .map(|params| params.size)
            .ok_or_else(|| {
                VectorError::Unavailable(format!(
                    "{} holds no unnamed dense vector: not a Pixie vector store",
                    path.display()
                ))
            })?;
        Ok(Self {
            edge: ManuallyDrop::new(edge),
            dimension,
            path: path.to_owned(),
            min_free_bytes,
            writes: Mutex::new(()),
        })
    }

    /// The store's files are memory-mapped and grow as points arrive: a page written when the
    /// disk is full is a SIGBUS, which kills the process (seen with a full tmpfs). So a write
    /// waits, as unavailable, while the disk has less than `min_free_bytes` left; the outbox
    /// retries it, and PostgreSQL keeps what it indexes meanwhile.
    fn room(&self) -> Result<(), VectorError> {
        match fs4::available_space(&self.path) {
            Ok(free) if free < self.min_free_bytes => Err(VectorError::Unavailable(format!(
                "{} MiB free on the disk of {}; indexing waits for {} MiB",
                free >> 20,
                self.path.display(),
                self.min_free_bytes >> 20
            ))),
            // A disk that cannot say how full it is is written to, as before.
            Ok(_) | Err(_) => Ok(()),
        }
    }

    /// [`Self::apply`] for points, which take room: only while the disk has it.
    fn write_points(&self, op: UpdateOperation) -> Result<(), VectorError> {
        self.room()?;
        self.apply(op)
    }

    /// Applies one update durably, then lets the optimiser index what became large enough.
    fn apply(&self, op: UpdateOperation) -> Result<(), VectorError> {
        // A panic in `flush` poisons the mutex; the shard itself stays consistent.
        let _writing = self.writes.lock().unwrap_or_else(PoisonError::into_inner);
        self.edge.update(op).map_err(edge_error)?;
        flush(&self.edge)?;
        if self.edge.optimize().map_err(edge_error)? {
            flush(&self.edge)?;
        }
        Ok(())
    }
}

/// `EdgeShard::flush` panics when the disk fails it (full, files removed under it): caught
/// here so that a write fails with an error instead of unwinding through the store.
fn flush(edge: &EdgeShard) -> Result<(), VectorError> {
    std::panic::catch_unwind(AssertUnwindSafe(|| edge.flush())).map_err(|_| {
        VectorError::Unavailable("the vector store could not write to disk".to_owned())
    })
}

impl Drop for Shard {
    fn drop(&mut self) {
        // SAFETY: `edge` is taken once, here, and never used again.
        let edge = unsafe { ManuallyDrop::take(&mut self.edge) };
        // `EdgeShard` flushes again when dropped and panics if that fails, which would abort
        // the process during an unwind: flush where the panic can be caught, and leave a shard
        // that cannot be flushed open rather than crash. Every write was flushed when it was
        // made, so nothing is lost.
        match flush(&edge) {
            Ok(()) => drop(edge),
            Err(e) => {
                tracing::error!(error = %e, "the vector store could not be closed cleanly");
                std::mem::forget(edge);
            }
        }
    }
}

/// Segments are capped at this many KiB of vectors (about 170,000 of 384 dimensions), which
/// bounds the work of one optimisation, done under the write lock. The default (256 MiB per CPU)
/// makes ingestion depend on the machine and, at 2 × 10⁵ points on 2 CPUs, re-merges everything
/// into one segment over and over (230 points/s); 64 MiB ingests 5 × faster but searches 5
/// segments per query (p99 9–20 ms instead of 2.6 ms). Measured with `benches/recall.rs`.
const MAX_SEGMENT_KIB: usize = 256 * 1024;

/// Cosine vectors; HNSW links only within each user and each kind of a user (the indexed payload
/// values), none across the whole collection.
fn new_config(dimension: usize) -> EdgeConfig {
    EdgeConfig::builder()
        .vector(
            DEFAULT_VECTOR_NAME,
            EdgeVectorParams::builder(dimension, Distance::Cosine).build(),
        )
        .hnsw_config(HnswIndexConfig {
            m: 0,
            payload_m: Some(16),
            ..HnswIndexConfig::default()
        })
        .optimizers(EdgeOptimizersConfig {
            max_segment_size: Some(MAX_SEGMENT_KIB),
            ..EdgeOptimizersConfig::default()
        })
        .build()
}

/// A keyword index with HNSW links per value (one graph per user, or per kind of one user).
fn keyword_index(field: &'static str, tenant: bool) -> UpdateOperation {
    UpdateOperation::FieldIndexOperation(FieldIndexOperations::CreateIndex(CreateIndex {
        field_name: key(field),
        field_schema: Some(PayloadFieldSchema::FieldParams(
            PayloadSchemaParams::Keyword(KeywordIndexParams {
                is_tenant: Some(tenant),
                enable_hnsw: Some(true),
                ..KeywordIndexParams::default()
            }),
        )),
    }))
}

#[async_trait]
impl VectorStore for EdgeStore {
    fn name(&self) -> &'static str {
        "edge"
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn ensure_collection(&self, dimension: usize, recreate: bool) -> Result<(), VectorError> {
        if dimension == 0 {
            return Err(VectorError::Invalid(
                "the vector dimension must be > 0".to_owned(),
            ));
        }
        let mut state = self.state.clone().write_owned().await;
        let (path, min_free_bytes) = (self.path.clone(), self.min_free_bytes);
        blocking(move || {
            if recreate {
                drop(state.take()); // flushes and closes the files
                match std::fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        return Err(VectorError::Unavailable(format!(
                            "cannot remove {}: {e}",
                            path.display()
                        )));
                    }
                    _ => {}
                }
            }
            let shard = match state.take() {
                Some(shard) => shard,
                None => Shard::open(&path, dimension, min_free_bytes)?,
            };
            let result = if shard.dimension == dimension {
                // Creating an index that exists is a no-op: this also completes a partial setup.
                [
                    keyword_index(USER_ID, true),
                    keyword_index(USER_KIND, false),
                ]
                .into_iter()
                .try_for_each(|op| shard.apply(op))
            } else {
                Err(VectorError::DimensionMismatch {
                    existing: shard.dimension,
                    wanted: dimension,
                })
            };
            // Kept open even on a mismatch: every operation checks vector sizes against it.
            *state = Some(shard);
            result
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(points = points.len()))]
    async fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        if points.is_empty() {
            return Ok(());
        }
        let shard = self.shard().await?;
        for point in &points {
            check_vector(&point.vector, shard.dimension)?;
        }
        let points = points
            .into_iter()
            .map(|point| {
                let payload = Map::from_iter([
                    (
                        USER_KIND.to_owned(),
                        user_kind(point.kind, &point.user_id).into(),
                    ),
                    (USER_ID.to_owned(), Value::String(point.user_id)),
                    (KIND.to_owned(), Value::from(point.kind.as_str())),
                    (SNIPPET.to_owned(), Value::String(point.snippet)),
                ]);
                PointStructPersisted {
                    id: PointId::Uuid(point.id),
                    vector: VectorStructPersisted::Single(point.vector),
                    payload: Some(Payload(payload)),
                }
            })
            .collect();
        let op = UpdateOperation::PointOperation(PointOperations::UpsertPoints(
            PointInsertOperations::PointsList(points),
        ));
        blocking(move || shard.write_points(op)).await
    }

    #[tracing::instrument(level = "debug", skip(self, ids), fields(ids = ids.len()))]
    async fn delete(&self, user_id: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        if ids.is_empty() {
            return Ok(());
        }
        let filter =
            user_filter(user_id, &[]).with_point_ids(ids.iter().copied().map(PointId::Uuid));
        self.write(UpdateOperation::PointOperation(
            PointOperations::DeletePointsByFilter(filter),
        ))
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn delete_user(&self, user_id: &str) -> Result<(), VectorError> {
        self.write(UpdateOperation::PointOperation(
            PointOperations::DeletePointsByFilter(user_filter(user_id, &[])),
        ))
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
        let shard = self.shard().await?;
        check_vector(&vector, shard.dimension)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let request = QueryRequest {
            prefetches: Vec::new(),
            query: Some(ScoringQuery::Vector(QueryEnum::Nearest(NamedQuery {
                query: VectorInternal::Dense(vector),
                using: None,
            }))),
            filter: Some(user_filter(user_id, kinds)),
            score_threshold: None,
            limit,
            offset: 0,
            params: None,
            with_vector: WithVector::Bool(false),
            with_payload: WithPayloadInterface::Bool(true),
        };
        blocking(move || {
            let points = shard.edge.query(request).map_err(edge_error)?;
            points.into_iter().map(hit).collect()
        })
        .await
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn count(&self, user_id: &str) -> Result<u64, VectorError> {
        let shard = self.shard().await?;
        let request = CountRequest {
            filter: Some(user_filter(user_id, &[])),
            exact: true,
        };
        blocking(move || {
            let count = shard.edge.count(request).map_err(edge_error)?;
            Ok(count as u64)
        })
        .await
    }

    async fn count_all(&self) -> Result<u64, VectorError> {
        let shard = self.shard().await?;
        let request = CountRequest {
            filter: None,
            exact: true,
        };
        blocking(move || Ok(shard.edge.count(request).map_err(edge_error)? as u64)).await
    }

    async fn is_healthy(&self) -> bool {
        self.state.read().await.is_some()
    }
}

/// Rejects a vector the collection cannot hold, before it reaches the engine.
pub(super) fn check_vector(vector: &[f32], dimension: usize) -> Result<(), VectorError> {
    if vector.len() != dimension {
        return Err(VectorError::Invalid(format!(
            "a {}-dimensional vector for a collection of {dimension}-dimensional ones",
            vector.len()
        )));
    }
    if !vector.iter().all(|x| x.is_finite()) {
        return Err(VectorError::Invalid(
            "the vector holds NaN or infinity".to_owned(),
        ));
    }
    Ok(())
}

/// The value that has a graph per (kind, user). Unambiguous: kinds hold no `:`.
fn user_kind(kind: DocKind, user_id: &str) -> String {
    format!("{}:{user_id}", kind.as_str())
}

/// `user_id = user_id`, and `kind ∈ kinds` unless `kinds` is empty.
fn user_filter(user_id: &str, kinds: &[DocKind]) -> Filter {
    let mut must = vec![Condition::Field(FieldCondition::new_match(
        key(USER_ID),
        Match::from(user_id.to_owned()),
    ))];
    if !kinds.is_empty() {
        let values = kinds
            .iter()
            .map(|&kind| user_kind(kind, user_id))
            .collect::<Vec<_>>();
        must.push(Condition::Field(FieldCondition::new_match(
            key(USER_KIND),
            Match::from(values),
        )));
    }
    Filter {
        must: Some(must),
        ..Filter::default()
    }
}

fn key(field: &'static str) -> JsonPath {
    field
        .parse()
        .expect("payload field names are valid JSON paths")
}

fn hit(point: ScoredPoint) -> Result<VectorHit, VectorError> {
    let corrupt = |what: &str| VectorError::Unavailable(format!("point {}: {what}", point.id));
    let PointId::Uuid(id) = point.id else {
        return Err(corrupt("not a UUID"));
    };
    let field = |name: &str| {
        point
            .payload
            .as_ref()
            .and_then(|payload| payload.0.get(name))
            .and_then(Value::as_str)
    };
    let kind = field(KIND)
        .and_then(DocKind::parse)
        .ok_or_else(|| corrupt("no valid kind"))?;
    let snippet = field(SNIPPET)
        .ok_or_else(|| corrupt("no snippet"))?
        .to_owned();
    Ok(VectorHit {
        id,
        kind,
        score: point.score,
        snippet,
    })
}

/// The WAL is locked while a shard is open: a second opener (another `pixie` process on the
/// same data directory, e.g. `pixie reindex` next to a running server) gets `WouldBlock`.
fn open_error(path: &Path, error: OperationError) -> VectorError {
    if error.to_string().contains("WouldBlock") {
        return VectorError::Unavailable(format!(
            "the vector store in {} is in use by another process (stop the server before \
             `pixie reindex`; give each instance its own server.data_dir, or use \
             vector.backend = \"qdrant\" for several instances)",
            path.display()
        ));
    }
    edge_error(error)
}

fn edge_error(error: OperationError) -> VectorError {
    match error {
        OperationError::WrongVectorDimension { .. }
        | OperationError::ValidationError { .. }
        | OperationError::NonFiniteNumber { .. } => VectorError::Invalid(error.to_string()),
        _ => VectorError::Unavailable(error.to_string()),
    }
}

/// Runs engine calls off the async runtime: they take locks and touch the disk.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, VectorError> + Send + 'static,
) -> Result<T, VectorError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| VectorError::Unavailable(format!("vector store task failed: {e}")))?
}
