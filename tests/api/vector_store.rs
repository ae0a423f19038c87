//! Vector store conformance: one suite, run against every `VectorStore` implementation. No
//! PostgreSQL needed.
//!
//! - `vector_store::edge::*`: Qdrant Edge in a fresh temp directory; always runs.
//! - `vector_store::qdrant::*`: a Qdrant server, one fresh collection per test (deleted after).
//!   Ignored unless asked for:
//!   `PIXIE_TEST_QDRANT_URL=http://localhost:6334 cargo test --test api vector_store -- --include-ignored`
//!   (e.g. against `docker run -p 6334:6334 qdrant/qdrant`; an API key, if the server wants
//!   one, goes in `PIXIE_TEST_QDRANT_API_KEY`).

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use pixie::ai::vector::edge::EdgeStore;
use pixie::ai::vector::qdrant::QdrantStore;
use pixie::ai::vector::{VectorError, VectorHit, VectorPoint, VectorStore};
use pixie::domain::assistant::DocKind;
use uuid::Uuid;

const DIM: usize = 8;
const ALICE: &str = "user_alice";
/// With a space: a keyword, never to be matched as full text.
const BOB: &str = "user bob";

/// Generates one test per case and backend.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod edge {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::Backend::edge().run(super::$case).await;
                }
            )+
        }
        mod qdrant {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[ignore = "needs a Qdrant server: set PIXIE_TEST_QDRANT_URL (e.g. a qdrant/qdrant container)"]
                async fn $case() {
                    super::Backend::server().run(super::$case).await;
                }
            )+
        }
    };
}

conformance!(
    search_finds_the_nearest_first,
    search_is_filtered_to_the_user,
    search_filters_kinds,
    upsert_replaces,
    delete_removes_only_that_users_points,
    delete_user_removes_only_that_user,
    count_is_per_user,
    the_embedder_record_is_no_users_point,
    ensure_collection_is_idempotent_and_checks_the_dimension,
    data_survives_reopening,
    wrong_vectors_are_invalid,
    limit_is_respected,
    empty_store_finds_nothing,
    operations_before_ensure_collection_are_unavailable,
    concurrent_writers_and_readers,
);

/// Edge only: the WAL lock keeps a second process (e.g. `pixie reindex` next to a running
/// server) out of an open store, with a message that says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_opener_of_an_edge_store_is_refused() {
    let backend = Backend::edge();
    let first = backend.ready().await;
    let second = backend.open();
    match second.ensure_collection(DIM, false).await {
        Err(VectorError::Unavailable(message)) => {
            assert!(message.contains("in use by another process"), "{message}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    drop(first);
    second
        .ensure_collection(DIM, false)
        .await
        .expect("open once the first is closed");
}

/// Where a test's store lives; `open` may be called again to simulate a restart.
enum Backend {
    Edge(TempDir),
    Server { url: String, collection: String },
}

impl Backend {
    fn edge() -> Self {
        Self::Edge(TempDir::new())
    }

    fn server() -> Self {
        let url = std::env::var("PIXIE_TEST_QDRANT_URL")
            .expect("set PIXIE_TEST_QDRANT_URL (e.g. http://localhost:6334) to run these tests");
        let collection = format!("pixie_test_{}", Uuid::new_v4().simple());
        Self::Server { url, collection }
    }

    fn open(&self) -> Box<dyn VectorStore> {
        match self {
            Self::Edge(dir) => Box::new(EdgeStore::open(&dir.0).expect("open the edge store")),
            Self::Server { url, collection } => Box::new(
                QdrantStore::connect(url, api_key(), collection, Duration::from_secs(10))
                    .expect("build the Qdrant client"),
            ),
        }
    }

    /// Runs `case`, then deletes the test's collection, even if the case panicked.
    async fn run(self, case: impl AsyncFnOnce(&Backend)) {
        let outcome = AssertUnwindSafe(case(&self)).catch_unwind().await;
        if let Self::Server { url, collection } = &self {
            let client = qdrant_client::Qdrant::from_url(url)
                .api_key(api_key())
                .skip_compatibility_check()
                .build()
                .expect("build the Qdrant client");
            let _ = client.delete_collection(collection).await;
        }
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }

    /// The store as a crash would leave it now: for the edge store, a copy of its files taken
    /// while it is open (a second process could not open them: the WAL is locked). A server
    /// keeps its own state.
    fn as_left_by_a_crash(&self) -> Self {
        match self {
            Self::Edge(dir) => {
                let copy = TempDir::new();
                copy_dir(&dir.0, &copy.0).expect("copy the store's files");
                Self::Edge(copy)
            }
            Self::Server { url, collection } => Self::Server {
                url: url.clone(),
                collection: collection.clone(),
            },
        }
    }

    /// Opens the store and creates its collection with `DIM`-sized vectors.
    async fn ready(&self) -> Box<dyn VectorStore> {
        let store = self.open();
        store
            .ensure_collection(DIM, false)
            .await
            .expect("ensure_collection");
        store
    }
}

fn api_key() -> Option<String> {
    std::env::var("PIXIE_TEST_QDRANT_API_KEY").ok()
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        Self(std::env::temp_dir().join(format!("pixie-vectors-{}", Uuid::new_v4().simple())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// The `i`-th basis vector.
fn axis(i: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[i] = 1.0;
    v
}

/// `a·x + b·y`.
fn blend(a: f32, x: usize, b: f32, y: usize) -> Vec<f32> {
    let mut v = vec![0.0; DIM];
    v[x] += a;
    v[y] += b;
    v
}

fn point(user: &str, kind: DocKind, vector: Vec<f32>, snippet: &str) -> VectorPoint {
    VectorPoint {
        id: Uuid::new_v4(),
        user_id: user.to_owned(),
        kind,
        vector,
        snippet: snippet.to_owned(),
    }
}

async fn upsert(store: &dyn VectorStore, points: &[VectorPoint]) {
    store.upsert(points.to_vec()).await.expect("upsert");
}

async fn search(
    store: &dyn VectorStore,
    user: &str,
    vector: Vec<f32>,
    kinds: &[DocKind],
) -> Vec<VectorHit> {
    store.search(user, vector, kinds, 10).await.expect("search")
}

fn ids(hits: &[VectorHit]) -> Vec<Uuid> {
    hits.iter().map(|hit| hit.id).collect()
}

fn assert_close(actual: f32, expected: f32) {
    assert!(
        (actual - expected).abs() < 1e-4,
        "score {actual}, expected {expected}"
    );
}

async fn count(store: &dyn VectorStore, user: &str) -> u64 {
    store.count(user).await.expect("count")
}

// ---- The cases ----

async fn search_finds_the_nearest_first(backend: &Backend) {
    let store = backend.ready().await;
    let exact = point(ALICE, DocKind::Task, axis(0), "buy milk");
    let near = point(ALICE, DocKind::Event, blend(1.0, 0, 1.0, 1), "dentist");
    let far = point(ALICE, DocKind::Memory, axis(1), "likes tea");
    let opposite = point(ALICE, DocKind::Message, blend(-1.0, 0, 0.0, 1), "hello");
    upsert(
        &*store,
        &[far.clone(), opposite.clone(), exact.clone(), near.clone()],
    )
    .await;

    // Twice the length of `exact`: cosine ignores magnitude.
    let hits = search(&*store, ALICE, blend(2.0, 0, 0.0, 1), &[]).await;

    assert_eq!(ids(&hits), [exact.id, near.id, far.id, opposite.id]);
    assert_eq!(
        hits[0],
        VectorHit {
            id: exact.id,
            kind: DocKind::Task,
            score: hits[0].score,
            snippet: "buy milk".to_owned()
        }
    );
    assert_eq!(
        (hits[1].kind, hits[1].snippet.as_str()),
        (DocKind::Event, "dentist")
    );
    assert_close(hits[0].score, 1.0);
    assert_close(hits[1].score, std::f32::consts::FRAC_1_SQRT_2);
    assert_close(hits[2].score, 0.0);
    assert_close(hits[3].score, -1.0);
}

async fn search_is_filtered_to_the_user(backend: &Backend) {
    let store = backend.ready().await;
    let alices = point(ALICE, DocKind::Memory, axis(0), "alice's secret");
    let bobs = point(BOB, DocKind::Memory, axis(0), "bob's secret");
    upsert(&*store, &[alices.clone(), bobs.clone()]).await;

    assert_eq!(
        ids(&search(&*store, ALICE, axis(0), &[]).await),
        [alices.id]
    );
    assert_eq!(ids(&search(&*store, BOB, axis(0), &[]).await), [bobs.id]);
    for stranger in ["user_carol", "user", "bob", ""] {
        assert!(
            search(&*store, stranger, axis(0), &[]).await.is_empty(),
            "{stranger:?} sees points"
        );
        assert_eq!(
            count(&*store, stranger).await,
            0,
            "{stranger:?} counts points"
        );
    }
}

async fn search_filters_kinds(backend: &Backend) {
    let store = backend.ready().await;
    let task = point(ALICE, DocKind::Task, axis(0), "task");
    let event = point(ALICE, DocKind::Event, blend(1.0, 0, 0.1, 1), "event");
    let memory = point(ALICE, DocKind::Memory, blend(1.0, 0, 0.2, 1), "memory");
    let bobs_task = point(BOB, DocKind::Task, axis(0), "bob's task");
    upsert(
        &*store,
        &[
            task.clone(),
            event.clone(),
            memory.clone(),
            bobs_task.clone(),
        ],
    )
    .await;

    let hits = search(&*store, ALICE, axis(0), &[DocKind::Task]).await;
    assert_eq!(ids(&hits), [task.id]);
    let hits = search(&*store, ALICE, axis(0), &[DocKind::Memory, DocKind::Event]).await;
    assert_eq!(ids(&hits), [event.id, memory.id]);
    assert!(
        search(&*store, ALICE, axis(0), &[DocKind::Message])
            .await
            .is_empty()
    );
    let hits = search(&*store, ALICE, axis(0), &[]).await;
    assert_eq!(ids(&hits), [task.id, event.id, memory.id]);
    let hits = search(&*store, BOB, axis(0), &[DocKind::Task, DocKind::Event]).await;
    assert_eq!(ids(&hits), [bobs_task.id]);
}

async fn upsert_replaces(backend: &Backend) {
    let store = backend.ready().await;
    let original = point(ALICE, DocKind::Task, axis(0), "draft");
    upsert(&*store, std::slice::from_ref(&original)).await;
    let edited = VectorPoint {
        kind: DocKind::Memory,
        vector: axis(1),
        snippet: "final".to_owned(),
        ..original.clone()
    };
    upsert(&*store, &[edited]).await;

    assert_eq!(count(&*store, ALICE).await, 1);
    let hits = search(&*store, ALICE, axis(1), &[]).await;
    assert_eq!(hits.len(), 1);
    assert_eq!(
        (hits[0].id, hits[0].kind, hits[0].snippet.as_str()),
        (original.id, DocKind::Memory, "final")
    );
    assert_close(hits[0].score, 1.0);
    assert!(
        search(&*store, ALICE, axis(0), &[DocKind::Task])
            .await
            .is_empty()
    );
}

async fn delete_removes_only_that_users_points(backend: &Backend) {
    let store = backend.ready().await;
    let a1 = point(ALICE, DocKind::Task, axis(0), "a1");
    let a2 = point(ALICE, DocKind::Task, axis(1), "a2");
    let b1 = point(BOB, DocKind::Task, axis(0), "b1");
    upsert(&*store, &[a1.clone(), a2.clone(), b1.clone()]).await;

    // Alice names her own point and Bob's: only hers goes.
    store
        .delete(ALICE, &[a1.id, b1.id, Uuid::new_v4()])
        .await
        .expect("delete");
    assert_eq!(ids(&search(&*store, ALICE, axis(0), &[]).await), [a2.id]);
    assert_eq!(ids(&search(&*store, BOB, axis(0), &[]).await), [b1.id]);

    // Bob's point named by Alice alone: nothing happens.
    store.delete(ALICE, &[b1.id]).await.expect("delete");
    assert_eq!(count(&*store, BOB).await, 1);
    store.delete(ALICE, &[]).await.expect("delete nothing");
    assert_eq!(count(&*store, ALICE).await, 1);
}

async fn delete_user_removes_only_that_user(backend: &Backend) {
    let store = backend.ready().await;
    let alices: Vec<_> = (0..5)
        .map(|i| point(ALICE, DocKind::Message, axis(i), "a"))
        .collect();
    let bobs: Vec<_> = (0..3)
        .map(|i| point(BOB, DocKind::Message, axis(i), "b"))
        .collect();
    upsert(&*store, &alices).await;
    upsert(&*store, &bobs).await;

    store.delete_user(ALICE).await.expect("delete_user");
    assert_eq!(count(&*store, ALICE).await, 0);
    assert!(search(&*store, ALICE, axis(0), &[]).await.is_empty());
    assert_eq!(count(&*store, BOB).await, 3);
    store
        .delete_user(ALICE)
        .await
        .expect("deleting an absent user is fine");
}

async fn count_is_per_user(backend: &Backend) {
    let store = backend.ready().await;
    assert_eq!(count(&*store, ALICE).await, 0);
    let alices: Vec<_> = (0..7)
        .map(|i| point(ALICE, DocKind::Event, axis(i % DIM), "a"))
        .collect();
    upsert(&*store, &alices).await;
    upsert(&*store, &[point(BOB, DocKind::Event, axis(0), "b")]).await;
    assert_eq!(count(&*store, ALICE).await, 7);
    assert_eq!(count(&*store, BOB).await, 1);
    assert_eq!(store.count_all().await.expect("count_all"), 8);
}

/// The store's record of its embedder is a point of the empty user id: only a search for that
/// id finds it, and no user's count or search sees it.
async fn the_embedder_record_is_no_users_point(backend: &Backend) {
    let store: std::sync::Arc<dyn VectorStore> = backend.ready().await.into();
    upsert(&*store, &[point(ALICE, DocKind::Memory, axis(0), "a")]).await;
    let embedder = std::sync::Arc::new(pixie::ai::embed::LocalEmbedder::new(DIM));
    let index = pixie::ai::index::VectorIndex::new(embedder, store.clone());
    assert!(index.record().await.unwrap().is_none());
    // Points without a record: whose are they?
    let refused = index.check_store().await.unwrap_err().to_string();
    assert!(refused.contains("pixie reindex"), "{refused}");
    let record = pixie::ai::index::StoreRecord {
        embedder: format!("hashed-v1:{DIM}"),
        rebuilding: None,
    };
    index.set_record(&record).await.unwrap();
    assert_eq!(index.record().await.unwrap(), Some(record));
    assert_eq!(count(&*store, ALICE).await, 1);
    assert_eq!(ids(&search(&*store, ALICE, axis(0), &[]).await).len(), 1);
    assert_eq!(store.count_all().await.unwrap(), 2);
}

async fn ensure_collection_is_idempotent_and_checks_the_dimension(backend: &Backend) {
    let store = backend.ready().await;
    let kept = point(ALICE, DocKind::Task, axis(0), "kept");
    upsert(&*store, std::slice::from_ref(&kept)).await;
    store
        .ensure_collection(DIM, false)
        .await
        .expect("a second ensure_collection");
    assert_eq!(ids(&search(&*store, ALICE, axis(0), &[]).await), [kept.id]);

    match store.ensure_collection(DIM + 1, false).await {
        Err(VectorError::DimensionMismatch { existing, wanted }) => {
            assert_eq!((existing, wanted), (DIM, DIM + 1));
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
    // The mismatch changed nothing.
    assert_eq!(count(&*store, ALICE).await, 1);
    assert!(store.is_healthy().await);

    // Recreating with another size starts empty, at the new size.
    store
        .ensure_collection(DIM + 1, true)
        .await
        .expect("recreate");
    assert_eq!(count(&*store, ALICE).await, 0);
    store
        .upsert(vec![point(ALICE, DocKind::Task, vec![0.5; DIM + 1], "new")])
        .await
        .expect("upsert");
    assert_eq!(count(&*store, ALICE).await, 1);
    let old_size = store.search(ALICE, axis(0), &[], 10).await;
    assert!(
        matches!(old_size, Err(VectorError::Invalid(_))),
        "{old_size:?}"
    );
}

async fn data_survives_reopening(backend: &Backend) {
    let store = backend.ready().await;
    let points: Vec<_> = (0..DIM)
        .map(|i| point(ALICE, DocKind::Memory, axis(i), &format!("m{i}")))
        .collect();
    upsert(&*store, &points).await;
    store.delete(ALICE, &[points[0].id]).await.expect("delete");

    // What a crash (kill -9) would leave, then a clean shutdown: both keep every write.
    let crashed = backend.as_left_by_a_crash();
    drop(store);
    for backend in [&crashed, backend] {
        let store = backend.ready().await;
        assert_eq!(count(&*store, ALICE).await, DIM as u64 - 1);
        let hits = search(&*store, ALICE, axis(3), &[]).await;
        assert_eq!((hits[0].id, hits[0].snippet.as_str()), (points[3].id, "m3"));
        assert!(
            !ids(&hits).contains(&points[0].id),
            "a deleted point came back"
        );
    }

    // A restart with another embedder.
    let store = backend.open();
    match store.ensure_collection(DIM * 2, false).await {
        Err(e @ VectorError::DimensionMismatch { .. }) => {
            let message = e.to_string();
            assert!(message.contains(&format!("{DIM}-dimensional")), "{message}");
            assert!(
                message.contains(&format!("{}-dimensional", DIM * 2)),
                "{message}"
            );
        }
        other => panic!("expected DimensionMismatch, got {other:?}"),
    }
}

async fn wrong_vectors_are_invalid(backend: &Backend) {
    let store = backend.ready().await;
    let short = point(ALICE, DocKind::Task, vec![1.0; DIM - 1], "short");
    let nan = point(ALICE, DocKind::Task, vec![f32::NAN; DIM], "nan");
    let good = point(ALICE, DocKind::Task, axis(0), "good");
    for batch in [vec![short], vec![good.clone(), nan]] {
        let result = store.upsert(batch).await;
        assert!(matches!(result, Err(VectorError::Invalid(_))), "{result:?}");
    }
    assert_eq!(
        count(&*store, ALICE).await,
        0,
        "a rejected batch was partly stored"
    );
    for vector in [vec![1.0; DIM + 1], Vec::new(), vec![f32::INFINITY; DIM]] {
        let result = store.search(ALICE, vector, &[], 10).await;
        assert!(matches!(result, Err(VectorError::Invalid(_))), "{result:?}");
    }
}

async fn limit_is_respected(backend: &Backend) {
    let store = backend.ready().await;
    let points: Vec<_> = (0..20)
        .map(|i| {
            point(
                ALICE,
                DocKind::Message,
                blend(1.0, 0, i as f32 / 10.0, 1),
                &i.to_string(),
            )
        })
        .collect();
    upsert(&*store, &points).await;

    let hits = store.search(ALICE, axis(0), &[], 5).await.expect("search");
    assert_eq!(ids(&hits), ids_of(&points[..5]));
    assert!(hits.windows(2).all(|pair| pair[0].score >= pair[1].score));
    assert_eq!(
        store
            .search(ALICE, axis(0), &[], 50)
            .await
            .expect("search")
            .len(),
        20
    );
    assert!(
        store
            .search(ALICE, axis(0), &[], 0)
            .await
            .expect("search")
            .is_empty()
    );
}

fn ids_of(points: &[VectorPoint]) -> Vec<Uuid> {
    points.iter().map(|point| point.id).collect()
}

async fn empty_store_finds_nothing(backend: &Backend) {
    let store = backend.ready().await;
    assert!(search(&*store, ALICE, axis(0), &[]).await.is_empty());
    assert!(
        search(&*store, ALICE, axis(0), &[DocKind::Task])
            .await
            .is_empty()
    );
    assert_eq!(count(&*store, ALICE).await, 0);
    assert!(store.is_healthy().await);
}

async fn operations_before_ensure_collection_are_unavailable(backend: &Backend) {
    let store = backend.open();
    let search = store.search(ALICE, axis(0), &[], 10).await;
    assert!(
        matches!(search, Err(VectorError::Unavailable(_))),
        "{search:?}"
    );
    let count = store.count(ALICE).await;
    assert!(
        matches!(count, Err(VectorError::Unavailable(_))),
        "{count:?}"
    );
    let upsert = store
        .upsert(vec![point(ALICE, DocKind::Task, axis(0), "early")])
        .await;
    assert!(
        matches!(upsert, Err(VectorError::Unavailable(_))),
        "{upsert:?}"
    );
}

async fn concurrent_writers_and_readers(backend: &Backend) {
    let store: Arc<dyn VectorStore> = backend.ready().await.into();
    let tasks: Vec<_> = (0..8)
        .map(|user| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                let user = format!("user_{user}");
                for round in 0..5 {
                    let batch: Vec<_> = (0..4)
                        .map(|i| point(&user, DocKind::Message, axis((round + i) % DIM), "x"))
                        .collect();
                    store.upsert(batch).await.expect("upsert");
                    let hits = store
                        .search(&user, axis(round % DIM), &[], 100)
                        .await
                        .expect("search");
                    assert_eq!(hits.len(), (round + 1) * 4, "{user} sees a wrong set");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a task panicked");
    }
    for user in 0..8 {
        assert_eq!(count(&*store, &format!("user_{user}")).await, 20);
    }
}
