//! Latency and recall of the embedded vector store (Qdrant Edge) for one heavy user among many:
//! 100,000 random 384-dimensional unit vectors for one user plus 100,000 spread across 1,000
//! other users, then top-10 searches filtered to the heavy user, through the `VectorStore`
//! trait (so the wrapper's locking and blocking-pool hops are counted). Recall is measured
//! against an exact scan.
//!
//! `cargo bench --bench recall`. Options: `PIXIE_BENCH_POINTS=20000` shrinks both populations;
//! `PIXIE_BENCH_DATA=subspace` draws the vectors from a 32-dimensional subspace instead of the
//! whole space. Uniform random vectors are the worst case for any graph index (every point is
//! almost as far as any other, so no neighbourhood leads anywhere); real text embeddings have a
//! low intrinsic dimension, which `subspace` imitates.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pixie::ai::vector::edge::EdgeStore;
use pixie::ai::vector::{VectorPoint, VectorStore};
use pixie::domain::assistant::DocKind;
use uuid::Uuid;

const DIM: usize = 384;
const OTHER_USERS: usize = 1_000;
const BATCH: usize = 1_000;
const QUERIES: usize = 1_000;
/// Queries checked against an exact scan.
const RECALL_QUERIES: usize = 100;
const TOP: usize = 10;
const CONCURRENCY: usize = 4;
const HEAVY_USER: &str = "user_heavy";
/// The intrinsic dimension of `PIXIE_BENCH_DATA=subspace`.
const SUBSPACE: usize = 32;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let points = match std::env::var("PIXIE_BENCH_POINTS") {
        Ok(n) => n.parse()?,
        Err(_) => 100_000,
    };
    let mut rng = fastrand::Rng::with_seed(42);
    let (data, label) = match std::env::var("PIXIE_BENCH_DATA").as_deref() {
        Ok("subspace") => (
            Data::Subspace((0..SUBSPACE).map(|_| unit_vector(&mut rng)).collect()),
            format!("random unit vectors of a {SUBSPACE}-dimensional subspace"),
        ),
        Ok("uniform") | Err(_) => (Data::Uniform, "uniform random unit vectors".to_owned()),
        Ok(other) => anyhow::bail!("PIXIE_BENCH_DATA: uniform or subspace, not {other}"),
    };
    println!("data: {label}, {DIM} dimensions");
    let dir = std::env::temp_dir().join(format!("pixie-recall-{}", Uuid::new_v4().simple()));
    let result = run(&dir, points, &data, &mut rng).await;
    std::fs::remove_dir_all(&dir)?;
    result
}

async fn run(
    dir: &Path,
    points: usize,
    data: &Data,
    rng: &mut fastrand::Rng,
) -> anyhow::Result<()> {
    let store = EdgeStore::open(dir)?;
    store.ensure_collection(DIM, false).await?;

    // Fill: the heavy user's batches interleaved with the other users', as an outbox would.
    let mut heavy: Vec<(DocKind, Vec<f32>)> = Vec::with_capacity(points);
    let started = Instant::now();
    for batch in 0..points.div_ceil(BATCH) {
        let size = BATCH.min(points - batch * BATCH);
        let mine: Vec<_> = (0..size)
            .map(|_| point(HEAVY_USER.to_owned(), data.vector(rng), rng))
            .collect();
        heavy.extend(mine.iter().map(|p| (p.kind, p.vector.clone())));
        store.upsert(mine).await?;
        let others = (0..size)
            .map(|i| {
                let user = format!("user_{}", (batch * BATCH + i) % OTHER_USERS);
                point(user, data.vector(rng), rng)
            })
            .collect();
        store.upsert(others).await?;
    }
    let fill = started.elapsed();
    println!(
        "fill: {} points ({points} for one user, {points} across {OTHER_USERS} others) in \
         {:.1} s: {:.0} points/s, each batch of {BATCH} flushed and indexed before returning",
        2 * points,
        fill.as_secs_f64(),
        (2 * points) as f64 / fill.as_secs_f64()
    );
    println!(
        "on disk: {} (of which WAL {})",
        mib(disk_usage(dir)?),
        mib(disk_usage(&dir.join("shard/wal"))?)
    );

    drop(store);
    let started = Instant::now();
    let store = Arc::new(EdgeStore::open(dir)?);
    store.ensure_collection(DIM, false).await?;
    println!("reopen: {:.2} s", started.elapsed().as_secs_f64());
    assert_eq!(store.count(HEAVY_USER).await?, points as u64);

    let queries: Vec<_> = (0..QUERIES).map(|_| data.vector(rng)).collect();
    report("user", &store, &queries, &[], &heavy).await?;
    // The heavy user's points have random kinds: a kind filter keeps about a quarter.
    report("user + kind", &store, &queries, &[DocKind::Memory], &heavy).await?;
    Ok(())
}

/// Prints latency percentiles, throughput and recall@TOP against an exact scan of `heavy`.
async fn report(
    label: &str,
    store: &Arc<EdgeStore>,
    queries: &[Vec<f32>],
    kinds: &[DocKind],
    heavy: &[(DocKind, Vec<f32>)],
) -> anyhow::Result<()> {
    let mut latencies = Vec::with_capacity(queries.len());
    let mut found = Vec::with_capacity(queries.len());
    let started = Instant::now();
    for query in queries {
        let t = Instant::now();
        let hits = store.search(HEAVY_USER, query.clone(), kinds, TOP).await?;
        latencies.push(t.elapsed());
        found.push(hits);
    }
    let sequential = queries.len() as f64 / started.elapsed().as_secs_f64();
    anyhow::ensure!(
        found.iter().all(|hits| hits.len() == TOP),
        "a search found < {TOP}"
    );

    let started = Instant::now();
    let tasks: Vec<_> = queries
        .chunks(queries.len().div_ceil(CONCURRENCY))
        .map(|chunk| {
            let (store, chunk, kinds) = (Arc::clone(store), chunk.to_vec(), kinds.to_vec());
            tokio::spawn(async move {
                for query in chunk {
                    store.search(HEAVY_USER, query, &kinds, TOP).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let concurrent = queries.len() as f64 / started.elapsed().as_secs_f64();

    latencies.sort();
    let at = |q: f64| ms(latencies[((latencies.len() - 1) as f64 * q).round() as usize]);
    println!(
        "search ({label}, top {TOP}, {} queries): p50 {}, p90 {}, p99 {}, max {}; \
         {sequential:.0} queries/s sequential, {concurrent:.0} with {CONCURRENCY} tasks",
        queries.len(),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    );

    // Ids are not kept; vectors are unit-length, so the exact scores identify the hits.
    let checked = queries.len().min(RECALL_QUERIES);
    let mut recalled = 0;
    for (query, hits) in queries.iter().zip(&found).take(checked) {
        let mut exact: Vec<f32> = heavy
            .iter()
            .filter(|(kind, _)| kinds.is_empty() || kinds.contains(kind))
            .map(|(_, vector)| dot(query, vector))
            .collect();
        exact.sort_by(|a, b| b.total_cmp(a));
        let threshold = exact[TOP - 1] - 1e-5;
        recalled += hits.iter().filter(|hit| hit.score >= threshold).count();
    }
    println!(
        "recall@{TOP} ({label}, {checked} queries vs an exact scan): {:.3}",
        recalled as f64 / (checked * TOP) as f64
    );
    Ok(())
}

fn point(user_id: String, vector: Vec<f32>, rng: &mut fastrand::Rng) -> VectorPoint {
    VectorPoint {
        id: Uuid::from_u128(rng.u128(..)),
        user_id,
        kind: DocKind::ALL[rng.usize(..DocKind::ALL.len())],
        vector,
        snippet: "a snippet of the document's text, as stored for recall".to_owned(),
    }
}

enum Data {
    Uniform,
    /// Random combinations of these unit vectors.
    Subspace(Vec<Vec<f32>>),
}

impl Data {
    fn vector(&self, rng: &mut fastrand::Rng) -> Vec<f32> {
        match self {
            Self::Uniform => unit_vector(rng),
            Self::Subspace(basis) => {
                let mut v = vec![0.0; DIM];
                for axis in basis {
                    let weight = rng.f32() * 2.0 - 1.0;
                    v.iter_mut().zip(axis).for_each(|(x, a)| *x += weight * a);
                }
                normalized(v)
            }
        }
    }
}

fn unit_vector(rng: &mut fastrand::Rng) -> Vec<f32> {
    normalized((0..DIM).map(|_| rng.f32() * 2.0 - 1.0).collect())
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let norm = dot(&v, &v).sqrt();
    v.into_iter().map(|x| x / norm).collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Bytes allocated on disk (not apparent sizes: files may be sparse or preallocated).
fn disk_usage(path: &Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path)?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path)? {
            total += disk_usage(&entry?.path())?;
        }
    }
    Ok(total)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
