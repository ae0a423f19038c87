//! Memory: retrieval quality over the labelled set of `bench/memory/` (its README says how it
//! was made), and `/v1/search` latency at scale.
//!
//! `cargo bench --bench memory` (PostgreSQL at `PIXIE_BENCH_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/pixie_bench_memory?sslmode=disable`, dropped and created
//! again for each run; the MiniLM files at `PIXIE_BENCH_MODEL_DIR`, default the test suite's
//! copy under the target directory, fetched with `pixie models fetch` if missing).
//!
//! - **quality**: for the hashed embedder and for MiniLM, the set is written through the domain
//!   (memories, tasks, events, user messages), indexed, and every question asked of the server's
//!   recall with the meaning leg alone, the word leg alone and both fused: recall@5, recall@10
//!   (an evidence document in the top k) and MRR@10, overall and per category. A plain BM25
//!   over the same texts (computed here) is the reference a word index is usually held to.
//! - **latency**: `PIXIE_BENCH_DOCS` documents (default 100,000) of one user with MiniLM, then
//!   the set's questions through `GET /v1/search?limit=10` one at a time: p50, p99, and the
//!   process's CPU time per search (server and client share the process and the cores).
//!
//! `PIXIE_BENCH_PARTS` picks the parts (default `quality,latency`), `PIXIE_BENCH_SETS` the
//! labelled sets of `bench/memory/` for quality (default `dataset.json,conversations.json`),
//! or paths to others in the same format (`bench/memory/from_locomo.py` makes one of the
//! public LoCoMo benchmark).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use mimalloc::MiMalloc;
use pixie::app::{Application, Secrets};
use pixie::config::{Config, EmbeddingsProvider};
use pixie::domain::conversation::{NewConversation, NewMessage, Role};
use pixie::domain::event::NewEvent;
use pixie::domain::memory::NewMemory;
use pixie::domain::recall::{Fusion, Legs, RecallQuery};
use pixie::domain::task::NewTask;
use pixie::domain::{Domain, UserId};
use serde::Deserialize;
use uuid::Uuid;

/// The allocator of the `pixie` binary, so that the numbers are the server's.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Deserialize)]
struct Dataset {
    users: Vec<BenchUser>,
}

#[derive(Deserialize)]
struct BenchUser {
    id: String,
    documents: Vec<Doc>,
    questions: Vec<Question>,
}

#[derive(Deserialize, Clone)]
struct Doc {
    key: String,
    kind: String,
    text: Option<String>,
    title: Option<String>,
    description: Option<String>,
    project: Option<String>,
    location: Option<String>,
    #[serde(rename = "startAt")]
    start_at: Option<DateTime<Utc>>,
    #[serde(rename = "endAt")]
    end_at: Option<DateTime<Utc>>,
}

impl Doc {
    /// The text the index holds for it (as `Document::of_*` joins it).
    fn text(&self) -> String {
        [
            self.text.as_deref(),
            self.title.as_deref(),
            self.description.as_deref(),
            self.project.as_deref(),
            self.location.as_deref(),
        ]
        .into_iter()
        .flatten()
        .filter(|t| !t.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
    }
}

#[derive(Deserialize)]
struct Question {
    q: String,
    evidence: Vec<String>,
    category: String,
}

fn reset_database(url: &str) -> anyhow::Result<()> {
    let (base, name) = url
        .split('?')
        .next()
        .and_then(|u| u.rsplit_once('/'))
        .ok_or_else(|| anyhow::anyhow!("no database name in {url}"))?;
    let mut admin = PgConnection::establish(&format!("{base}/postgres"))?;
    diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)?;
    diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin)?;
    Ok(())
}

fn model_dir() -> PathBuf {
    std::env::var_os("PIXIE_BENCH_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("models/all-MiniLM-L6-v2")
        })
}

struct Server {
    domain: Domain,
    addr: std::net::SocketAddr,
    handle: actix_web::dev::ServerHandle,
    db_url: String,
    data_dir: PathBuf,
}

async fn start(embedder: EmbeddingsProvider) -> anyhow::Result<Server> {
    let db_url = std::env::var("PIXIE_BENCH_DATABASE_URL").unwrap_or_else(|_| {
        "postgres://postgres@127.0.0.1:5432/pixie_bench_memory?sslmode=disable".into()
    });
    reset_database(&db_url)?;
    let data_dir =
        std::env::temp_dir().join(format!("pixie-bench-memory-{}", Uuid::new_v4().simple()));
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".parse()?;
    config.server.data_dir = data_dir.clone();
    config.database.url = db_url.clone();
    config.embeddings.provider = embedder;
    config.embeddings.model_dir = Some(model_dir());
    config.vector.outbox_poll_ms = 100;
    config.log.level = "warn".into();
    let app = Application::build(config, Secrets::default()).await?;
    let server = Server {
        domain: app.domain().clone(),
        addr: app.local_addr(),
        handle: app.handle(),
        db_url,
        data_dir,
    };
    tokio::spawn(app.run_until_stopped());
    Ok(server)
}

impl Server {
    async fn stop(self) {
        let Self {
            domain,
            handle,
            data_dir,
            ..
        } = self;
        handle.stop(true).await;
        // The store flushes when its last holder goes: before its directory does.
        drop(domain);
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = std::fs::remove_dir_all(&data_dir);
    }

    /// Waits until the indexer has taken every outbox row.
    async fn indexed(&self) -> anyhow::Result<()> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let url = self.db_url.clone();
        let mut conn = tokio::task::spawn_blocking(move || PgConnection::establish(&url)).await??;
        let started = Instant::now();
        let mut last = Instant::now();
        loop {
            let left = diesel::sql_query("SELECT count(*) AS n FROM vector_outbox")
                .get_result::<Count>(&mut conn)?
                .n;
            if left == 0 {
                return Ok(());
            }
            if last.elapsed() > Duration::from_secs(30) {
                eprintln!(
                    "  indexing: {left} documents to go after {:.0?}",
                    started.elapsed()
                );
                last = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Writes a user's documents through the domain; returns key → entity id.
async fn load(
    domain: &Domain,
    user: &UserId,
    docs: &[Doc],
) -> anyhow::Result<HashMap<String, Uuid>> {
    domain.sign_in(user, Utc::now()).await?;
    let conversation = domain
        .create_conversation(user, NewConversation { title: None })
        .await?;
    let mut ids = HashMap::new();
    for doc in docs {
        let id = match doc.kind.as_str() {
            "memory" => {
                domain
                    .create_memory(
                        user,
                        NewMemory {
                            content: doc.text(),
                            kind: None,
                        },
                    )
                    .await?
                    .id
            }
            "task" => {
                domain
                    .create_task(
                        user,
                        NewTask {
                            title: doc.title.clone().unwrap_or_default(),
                            description: doc.description.clone(),
                            project: doc.project.clone(),
                            status: None,
                            priority: None,
                            due_at: None,
                        },
                    )
                    .await?
                    .id
            }
            "event" => {
                let start = doc.start_at.unwrap_or_else(Utc::now);
                domain
                    .create_event(
                        user,
                        NewEvent {
                            title: doc.title.clone().unwrap_or_default(),
                            description: doc.description.clone(),
                            location: doc.location.clone(),
                            start_at: start,
                            end_at: doc
                                .end_at
                                .filter(|e| *e > start)
                                .unwrap_or(start + chrono::Duration::hours(1)),
                            is_all_day: false,
                            recurrence: None,
                            alerts: Vec::new(),
                        },
                    )
                    .await?
                    .id
            }
            _ => {
                domain
                    .append_message(
                        user,
                        conversation.id,
                        NewMessage {
                            role: Role::User,
                            content: doc.text(),
                            tool_calls: Vec::new(),
                            client_message_id: None,
                            reply_to: None,
                        },
                    )
                    .await?
                    .id
            }
        };
        ids.insert(doc.key.clone(), id);
    }
    Ok(ids)
}

#[derive(Default, Clone, Copy)]
struct Score {
    questions: usize,
    at5: usize,
    at10: usize,
    reciprocal: f64,
}

impl Score {
    fn add(&mut self, rank: Option<usize>) {
        self.questions += 1;
        if let Some(rank) = rank {
            if rank <= 5 {
                self.at5 += 1;
            }
            if rank <= 10 {
                self.at10 += 1;
                self.reciprocal += 1.0 / rank as f64;
            }
        }
    }

    fn row(&self) -> String {
        let n = self.questions.max(1) as f64;
        format!(
            "{:.3} | {:.3} | {:.3}",
            self.at5 as f64 / n,
            self.at10 as f64 / n,
            self.reciprocal / n
        )
    }
}

/// Counts one question's hits, overall and in its category.
fn tally(
    all: &mut Score,
    by_category: &mut HashMap<String, Score>,
    question: &Question,
    keys: &HashMap<String, Uuid>,
    hits: &[Uuid],
) {
    let evidence: Vec<Uuid> = question
        .evidence
        .iter()
        .filter_map(|k| keys.get(k).copied())
        .collect();
    let rank = rank_of(hits, &evidence);
    all.add(rank);
    by_category
        .entry(question.category.clone())
        .or_default()
        .add(rank);
}

/// The rank (from 1) of the first evidence document among the hits.
fn rank_of(hits: &[Uuid], evidence: &[Uuid]) -> Option<usize> {
    hits.iter()
        .position(|id| evidence.contains(id))
        .map(|i| i + 1)
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) over one user's texts, lower-cased alphanumeric words.
struct Bm25 {
    docs: Vec<(Uuid, HashMap<String, f64>, f64)>,
    df: HashMap<String, f64>,
    average: f64,
}

fn terms(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

impl Bm25 {
    fn new(docs: impl Iterator<Item = (Uuid, String)>) -> Self {
        let mut df: HashMap<String, f64> = HashMap::new();
        let docs: Vec<_> = docs
            .map(|(id, text)| {
                let words = terms(&text);
                let mut tf: HashMap<String, f64> = HashMap::new();
                for w in &words {
                    *tf.entry(w.clone()).or_default() += 1.0;
                }
                for w in tf.keys() {
                    *df.entry(w.clone()).or_default() += 1.0;
                }
                (id, tf, words.len() as f64)
            })
            .collect();
        let average = docs.iter().map(|d| d.2).sum::<f64>() / docs.len().max(1) as f64;
        Self { docs, df, average }
    }

    fn top(&self, query: &str, k: usize) -> Vec<Uuid> {
        let n = self.docs.len() as f64;
        let query = terms(query);
        let mut scored: Vec<(f64, Uuid)> = self
            .docs
            .iter()
            .map(|(id, tf, len)| {
                let score = query
                    .iter()
                    .filter_map(|t| {
                        let f = *tf.get(t)?;
                        let df = self.df.get(t).copied().unwrap_or(0.0);
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        Some(idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * len / self.average)))
                    })
                    .sum::<f64>();
                (score, *id)
            })
            .filter(|(s, _)| *s > 0.0)
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().take(k).map(|(_, id)| id).collect()
    }
}

async fn quality(set: &str, dataset: &Dataset) -> anyhow::Result<()> {
    let mut table: Vec<(String, Score, HashMap<String, Score>)> = Vec::new();
    let mut bm25_done = false;
    for (embedder, name) in [
        (EmbeddingsProvider::Hashed, "hashed"),
        (EmbeddingsProvider::Minilm, "MiniLM"),
    ] {
        let server = start(embedder).await?;
        let started = Instant::now();
        let mut ids = Vec::new();
        for user in &dataset.users {
            let id = UserId::parse(&user.id).map_err(anyhow::Error::msg)?;
            ids.push(load(&server.domain, &id, &user.documents).await?);
        }
        server.indexed().await?;
        eprintln!(
            "{name}: {} users loaded and indexed in {:.1?}",
            ids.len(),
            started.elapsed()
        );
        let mut modes: Vec<(String, Legs, Option<Fusion>)> =
            vec![(format!("{name} alone"), Legs::Meaning, None)];
        if embedder == EmbeddingsProvider::Hashed {
            modes.push(("lexical (PostgreSQL) alone".into(), Legs::Words, None));
        }
        for (label, fusion) in [
            ("reciprocal rank, k 10", Fusion::Rrf { k: 10.0 }),
            ("reciprocal rank, k 60", Fusion::Rrf { k: 60.0 }),
            (
                "meaning leads, words confirm (+0.05 in their top 10)",
                Fusion::Confirm {
                    bonus: 0.05,
                    depth: 10,
                },
            ),
            (
                "meaning leads, words confirm (+0.1 in their top 10)",
                Fusion::Confirm {
                    bonus: 0.1,
                    depth: 10,
                },
            ),
            ("convex, meaning 0.5", Fusion::Convex(0.5)),
            ("convex, meaning 0.8", Fusion::Convex(0.8)),
        ] {
            let default = if fusion == Fusion::default() {
                ", the default"
            } else {
                ""
            };
            modes.push((
                format!("hybrid: lexical + {name}, {label}{default}"),
                Legs::Both,
                Some(fusion),
            ));
        }
        if let Ok(path) = std::env::var("PIXIE_BENCH_DUMP") {
            dump(
                &server,
                dataset,
                &ids,
                &format!("{path}.{}.{name}.jsonl", set_name(set)),
            )
            .await?;
        }
        for (mode, legs, fusion) in modes {
            let mut all = Score::default();
            let mut by_category: HashMap<String, Score> = HashMap::new();
            for (user, keys) in dataset.users.iter().zip(&ids) {
                let id = UserId::parse(&user.id).map_err(anyhow::Error::msg)?;
                for question in &user.questions {
                    let hits = server
                        .domain
                        .recall(
                            &id,
                            RecallQuery {
                                text: &question.q,
                                kinds: &[],
                                limit: 10,
                                exclude: None,
                                legs,
                                fusion,
                            },
                        )
                        .await?;
                    let hits: Vec<Uuid> = hits.iter().map(|h| h.id).collect();
                    tally(&mut all, &mut by_category, question, keys, &hits);
                }
            }
            table.push((mode, all, by_category));
        }
        if !bm25_done {
            let mut all = Score::default();
            let mut by_category: HashMap<String, Score> = HashMap::new();
            for (user, keys) in dataset.users.iter().zip(&ids) {
                let index = Bm25::new(
                    user.documents
                        .iter()
                        .filter_map(|d| Some((*keys.get(&d.key)?, d.text()))),
                );
                for question in &user.questions {
                    let hits = index.top(&question.q, 10);
                    tally(&mut all, &mut by_category, question, keys, &hits);
                }
            }
            table.push(("BM25 reference (in the bench)".into(), all, by_category));
            bm25_done = true;
        }
        server.stop().await;
    }
    let questions: usize = dataset.users.iter().map(|u| u.questions.len()).sum();
    let documents: usize = dataset.users.iter().map(|u| u.documents.len()).sum();
    println!(
        "\n{}: {questions} questions over {documents} documents of {} users\n",
        set_name(set),
        dataset.users.len()
    );
    println!("| retrieval | recall@5 | recall@10 | MRR@10 |");
    println!("|---|---|---|---|");
    for (mode, all, _) in &table {
        println!("| {mode} | {} |", all.row());
    }
    let mut categories: Vec<&String> = table[0].2.keys().collect();
    categories.sort();
    println!("\nrecall@10 by category:\n");
    println!(
        "| retrieval | {} |",
        categories
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(categories.len()));
    for (mode, _, by) in &table {
        let cells: Vec<String> = categories
            .iter()
            .map(|c| {
                let s = by.get(*c).copied().unwrap_or_default();
                format!("{:.2}", s.at10 as f64 / s.questions.max(1) as f64)
            })
            .collect();
        println!("| {mode} | {} |", cells.join(" | "));
    }
    Ok(())
}

/// Each leg's own top 30 for every question, as the set's document keys with their scores
/// (`PIXIE_BENCH_DUMP`): for trying other fusions outside the server.
async fn dump(
    server: &Server,
    dataset: &Dataset,
    ids: &[HashMap<String, Uuid>],
    path: &str,
) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for (user, keys) in dataset.users.iter().zip(ids) {
        let id = UserId::parse(&user.id).map_err(anyhow::Error::msg)?;
        let key_of: HashMap<Uuid, &str> = keys.iter().map(|(k, v)| (*v, k.as_str())).collect();
        for question in &user.questions {
            let mut legs = Vec::new();
            // Convex(1) scores a meaning hit by its cosine, Convex(0) a word hit by its rank
            // over the best (times the message and question weights, as in the server).
            for (legs_of, fusion) in [
                (Legs::Meaning, Some(Fusion::Convex(1.0))),
                (Legs::Words, Some(Fusion::Convex(0.0))),
            ] {
                let hits = server
                    .domain
                    .recall(
                        &id,
                        RecallQuery {
                            text: &question.q,
                            kinds: &[],
                            limit: 30,
                            exclude: None,
                            legs: legs_of,
                            fusion,
                        },
                    )
                    .await?;
                legs.push(
                    hits.iter()
                        .map(|h| serde_json::json!([key_of.get(&h.id), h.kind, h.score]))
                        .collect::<Vec<_>>(),
                );
            }
            let evidence = &question.evidence;
            let line = serde_json::json!({
                "user": user.id, "q": question.q, "category": question.category,
                "evidence": evidence, "meaning": legs[0], "words": legs[1],
            });
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// A set's file name: `PIXIE_BENCH_SETS` names the sets of `bench/memory/` by name, and
/// others (a converted public benchmark, see `from_locomo.py`) by path.
fn set_name(set: &str) -> &str {
    std::path::Path::new(set)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(set)
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

async fn latency(dataset: &Dataset) -> anyhow::Result<()> {
    let total: usize = std::env::var("PIXIE_BENCH_DOCS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let server = start(EmbeddingsProvider::Minilm).await?;
    let user = UserId::parse("bench_scale").map_err(anyhow::Error::msg)?;
    // The set's documents, then variations of them, up to the size.
    let base: Vec<Doc> = dataset
        .users
        .iter()
        .flat_map(|u| u.documents.clone())
        .collect();
    let mut docs = Vec::with_capacity(total);
    for i in 0..total {
        let mut doc = base[i % base.len()].clone();
        doc.key = format!("d{i}");
        if i >= base.len() {
            let round = i / base.len();
            let suffix = [
                " (again)",
                " — noted",
                " for later",
                " this week",
                " btw",
                " today",
            ][round % 6];
            doc.text = doc.text.map(|t| format!("{t}{suffix} #{round}"));
            doc.title = doc.title.map(|t| format!("{t}{suffix} #{round}"));
        }
        docs.push(doc);
    }
    let started = Instant::now();
    load(&server.domain, &user, &docs).await?;
    eprintln!(
        "latency: {total} documents written in {:.1?}; indexing with MiniLM…",
        started.elapsed()
    );
    let indexing = Instant::now();
    server.indexed().await?;
    eprintln!("latency: indexed in {:.1?}", indexing.elapsed());

    let client = reqwest::Client::new();
    let questions: Vec<&str> = dataset
        .users
        .iter()
        .flat_map(|u| u.questions.iter().map(|q| q.q.as_str()))
        .collect();
    let ask = async |q: &str| -> anyhow::Result<Duration> {
        let url = format!(
            "http://{}/v1/search?limit=10&q={}",
            server.addr,
            url::form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>()
        );
        let t = Instant::now();
        let reply = client
            .get(url)
            .bearer_auth("dev:bench_scale")
            .send()
            .await?;
        anyhow::ensure!(
            reply.status().is_success(),
            "search answered {}",
            reply.status()
        );
        reply.bytes().await?;
        Ok(t.elapsed())
    };
    for q in questions.iter().take(20) {
        ask(q).await?;
    }
    let cpu = cpu_time();
    let mut times = Vec::new();
    for q in &questions {
        times.push(ask(q).await?);
    }
    let cpu = cpu_time() - cpu;
    times.sort();
    let at = |p: f64| times[((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1];
    println!(
        "\n/v1/search at {total} documents of one user (MiniLM + lexical, limit 10, one at a time): \
         {} searches, p50 {:.1?}, p99 {:.1?}, max {:.1?}; CPU {:.1} ms per search (server and client)",
        times.len(),
        at(0.50),
        at(0.99),
        times.last().copied().unwrap_or_default(),
        cpu.as_secs_f64() * 1000.0 / times.len() as f64
    );
    server.stop().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("bench/memory");
    let read = |name: &str| -> anyhow::Result<Dataset> {
        Ok(serde_json::from_slice(&std::fs::read(dir.join(name))?)?)
    };
    let dataset = read("dataset.json")?;
    let sets = std::env::var("PIXIE_BENCH_SETS")
        .unwrap_or_else(|_| "dataset.json,conversations.json".into());
    let parts = std::env::var("PIXIE_BENCH_PARTS").unwrap_or_else(|_| "quality,latency".into());
    if pixie::ai::minilm::verify(&model_dir()).is_err() {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_pixie"))
            .args(["models", "fetch"])
            .env("PIXIE__EMBEDDINGS__MODEL_DIR", model_dir())
            .status()?;
        anyhow::ensure!(status.success(), "pixie models fetch failed");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if parts.contains("quality") {
            for set in sets.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if dir.join(set).is_file() {
                    quality(set, &read(set)?).await?;
                } else {
                    anyhow::bail!("{set}: no such set in bench/memory/ nor such file");
                }
            }
        }
        if parts.contains("latency") {
            latency(&dataset).await?;
        }
        anyhow::Ok(())
    })
}
