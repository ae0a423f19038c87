//! `GET /v1/search`, the vector outbox and `/readyz` with the vector store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::chat::{urlencode, wait_for_search};
use crate::helpers::{TestApp, spawn_app, spawn_app_full, temp_dir};
use pixie::ai::vector::edge::EdgeStore;
use pixie::ai::vector::{VectorError, VectorHit, VectorPoint, VectorStore};
use pixie::app::{Overrides, Secrets};
use pixie::domain::assistant::DocKind;

fn kinds_of(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["kind"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn search_finds_the_users_own_data_by_meaning() {
    let app = spawn_app().await;
    let task = app
        .create_task("mia", json!({"title": "Book the dentist appointment"}))
        .await;
    app.create_event(
        "mia",
        json!({"title": "Dentist", "location": "Main street clinic",
               "startAt": "2026-12-01T09:00:00Z", "endAt": "2026-12-01T10:00:00Z"}),
    )
    .await;
    app.post(
        "/v1/memories",
        "mia",
        json!({"content": "My dentist is Dr. Lopez"}),
    )
    .await;
    app.create_task("noah", json!({"title": "Dentist appointment for Noah"}))
        .await;

    let items = wait_for_search(&app, "mia", "dentist appointment", |items| items.len() >= 3).await;
    assert_eq!(items.len(), 3, "only mia's three documents: {items:?}");
    assert_eq!(items[0]["kind"], "task", "{items:?}");
    assert_eq!(items[0]["id"], task["id"]);
    assert_eq!(items[0]["snippet"], "Book the dentist appointment");
    let scores: Vec<f64> = items.iter().map(|i| i["score"].as_f64().unwrap()).collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "best first: {scores:?}"
    );
    assert!(!Value::Array(items.clone()).to_string().contains("Noah"));

    let memories = app
        .get("/v1/search?q=dentist&kinds=memory,event", "mia")
        .await;
    assert_eq!(memories.status, StatusCode::OK);
    let mut kinds = kinds_of(memories.body["items"].as_array().unwrap());
    kinds.sort();
    assert_eq!(kinds, ["event", "memory"]);
    let limited = app.get("/v1/search?q=dentist&limit=1", "mia").await;
    assert_eq!(limited.body["items"].as_array().unwrap().len(), 1);

    // An update is re-indexed; a delete drops the vector.
    let id = task["id"].as_str().unwrap();
    app.patch(
        &format!("/v1/tasks/{id}"),
        "mia",
        json!({"title": "Renew the passport"}),
    )
    .await;
    wait_for_search(&app, "mia", "passport", |items| {
        items.first().is_some_and(|i| i["id"] == task["id"])
    })
    .await;
    app.delete(&format!("/v1/tasks/{id}"), "mia").await;
    wait_for_search(&app, "mia", "passport", |items| {
        items.iter().all(|i| i["id"] != task["id"])
    })
    .await;
}

#[tokio::test]
async fn bad_searches_get_clear_errors() {
    let app = spawn_app().await;
    for query in [
        "",
        "?q=",
        "?q=%20%20",
        "?q=x&limit=0",
        "?q=x&limit=51",
        "?q=x&kinds=task,notes",
        "?q=x&sort=asc",
    ] {
        let reply = app.get(&format!("/v1/search{query}"), "olga").await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            reply.body
        );
        assert_eq!(reply.error_code(), "validation_failed", "{query}");
    }
    let long = "x".repeat(1001);
    let reply = app.get(&format!("/v1/search?q={long}"), "olga").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let empty = app
        .get(&format!("/v1/search?q={}", urlencode("anything")), "olga")
        .await;
    assert_eq!(empty.status, StatusCode::OK);
    assert_eq!(empty.body, json!({"items": []}));
}

#[tokio::test]
async fn readyz_reports_the_vector_store_and_the_model() {
    let app = spawn_app().await;
    let ready = app.get("/readyz", "x").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(
        ready.body,
        json!({"database": "ok", "vector_store": "ok", "llm": "unconfigured"})
    );
}

/// An edge store that fails every call while `down` is set.
struct Flaky {
    inner: EdgeStore,
    down: AtomicBool,
}

impl Flaky {
    fn check(&self) -> Result<(), VectorError> {
        if self.down.load(Ordering::SeqCst) {
            Err(VectorError::Unavailable("switched off by the test".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl VectorStore for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn ensure_collection(&self, dimension: usize, recreate: bool) -> Result<(), VectorError> {
        self.inner.ensure_collection(dimension, recreate).await
    }
    async fn upsert(&self, points: Vec<VectorPoint>) -> Result<(), VectorError> {
        self.check()?;
        self.inner.upsert(points).await
    }
    async fn delete(&self, user_id: &str, ids: &[Uuid]) -> Result<(), VectorError> {
        self.check()?;
        self.inner.delete(user_id, ids).await
    }
    async fn delete_user(&self, user_id: &str) -> Result<(), VectorError> {
        self.check()?;
        self.inner.delete_user(user_id).await
    }
    async fn search(
        &self,
        user_id: &str,
        vector: Vec<f32>,
        kinds: &[DocKind],
        limit: usize,
    ) -> Result<Vec<VectorHit>, VectorError> {
        self.check()?;
        self.inner.search(user_id, vector, kinds, limit).await
    }
    async fn count(&self, user_id: &str) -> Result<u64, VectorError> {
        self.inner.count(user_id).await
    }
    async fn count_all(&self) -> Result<u64, VectorError> {
        self.check()?;
        self.inner.count_all().await
    }
    async fn is_healthy(&self) -> bool {
        self.check().is_ok()
    }
}

async fn spawn_with(store: Arc<Flaky>) -> TestApp {
    spawn_app_full(
        |_| {},
        Secrets::default(),
        Overrides {
            vector_store: Some(store),
        },
    )
    .await
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_outbox_catches_up_after_the_vector_store_was_down() {
    let dir = temp_dir("pixie-flaky");
    let store = Arc::new(Flaky {
        inner: EdgeStore::open(&dir).unwrap(),
        down: AtomicBool::new(true),
    });
    let app = spawn_with(store.clone()).await;

    // Writes succeed while the store is down; their index work waits in the outbox.
    let task = app
        .create_task("pia", json!({"title": "Water the orchids"}))
        .await;
    app.post(
        "/v1/memories",
        "pia",
        json!({"content": "Orchids like rain water"}),
    )
    .await;
    let ready = app.get("/readyz", "x").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.body["vector_store"], "down");
    // Search leans on words alone meanwhile, and finds what was just written.
    let search = app.get("/v1/search?q=orchids", "pia").await;
    assert_eq!(search.status, StatusCode::OK, "{}", search.body);
    let found = search.body["items"].as_array().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found.iter().any(|i| i["id"] == task["id"]), "{found:?}");
    // Chat still works without recall.
    let turn = app
        .post(
            "/v1/chat",
            "pia",
            json!({"text": "add a task to repot the fern"}),
        )
        .await;
    assert_eq!(turn.status, StatusCode::OK, "{}", turn.body);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!app.outbox().is_empty(), "the jobs wait in the outbox");
    assert_eq!(store.count("pia").await.unwrap(), 0);

    store.down.store(false, Ordering::SeqCst);
    let items = wait_for_search(&app, "pia", "orchids", |items| items.len() >= 2).await;
    assert_eq!(items.len(), 2, "only the orchid documents match: {items:?}");
    assert!(items.iter().any(|i| i["id"] == task["id"]), "{items:?}");
    wait_until("the outbox drains", async || app.outbox().is_empty()).await;
    // The user's message, the task the turn made, the first task and the memory.
    let indexed = store.count("pia").await.unwrap();
    assert!(indexed >= 4, "indexed {indexed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn erasing_a_user_removes_their_vectors_only() {
    let dir = temp_dir("pixie-erase");
    let store = Arc::new(Flaky {
        inner: EdgeStore::open(&dir).unwrap(),
        down: AtomicBool::new(false),
    });
    let app = spawn_with(store.clone()).await;
    app.create_task("quinn", json!({"title": "Secret plan"}))
        .await;
    app.post(
        "/v1/chat",
        "quinn",
        json!({"text": "remember that the plan is secret"}),
    )
    .await;
    app.create_task("rosa", json!({"title": "Public plan"}))
        .await;
    wait_until("quinn is indexed", async || {
        store.count("quinn").await.unwrap() >= 2
    })
    .await;
    wait_until("rosa is indexed", async || {
        store.count("rosa").await.unwrap() == 1
    })
    .await;

    let erased = app.delete("/v1/me", "quinn").await;
    assert_eq!(erased.status, StatusCode::NO_CONTENT);
    wait_until("quinn's vectors go", async || {
        store.count("quinn").await.unwrap() == 0
    })
    .await;
    assert_eq!(store.count("rosa").await.unwrap(), 1);
    assert_eq!(
        app.get("/v1/search?q=plan", "quinn").await.body,
        json!({"items": []})
    );

    // Deleting a conversation removes its messages' vectors.
    let turn = app
        .post(
            "/v1/chat",
            "rosa",
            json!({"text": "remember that tulips bloom in april"}),
        )
        .await;
    // The task, the memory the turn made, and the user's message (not the reply).
    wait_until("rosa's chat is indexed", async || {
        store.count("rosa").await.unwrap() == 3
    })
    .await;
    let cid = turn.body["conversationId"].as_str().unwrap();
    app.delete(&format!("/v1/conversations/{cid}"), "rosa")
        .await;
    wait_until("the messages' vectors go", async || {
        store.count("rosa").await.unwrap() == 2
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
}
