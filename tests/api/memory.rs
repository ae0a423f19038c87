//! Memory that answers: what was just said is found at once (the lexical leg reads committed
//! rows), meaning is matched with MiniLM, each user's memory is theirs alone, and the vector
//! store refuses another embedder's vectors until `pixie reindex`.

use std::time::Duration;

use pixie::app::{Application, Secrets};
use pixie::config::{Config, EmbeddingsProvider};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{urlencode, wait_for_search};
use crate::helpers::{TestApp, TestDatabase, spawn_app_with, spawn_app_without_indexer, temp_dir};

fn with_minilm(config: &mut Config) {
    config.embeddings.provider = EmbeddingsProvider::Minilm;
    config.embeddings.model_dir = Some(crate::minilm::model_dir());
}

async fn search(app: &TestApp, user: &str, q: &str) -> Vec<Value> {
    let reply = app
        .get(&format!("/v1/search?q={}", urlencode(q)), user)
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["items"].as_array().unwrap().clone()
}

async fn chat(app: &TestApp, user: &str, text: &str) -> Value {
    let reply = app.post("/v1/chat", user, json!({ "text": text })).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

#[tokio::test]
async fn what_was_just_remembered_is_found_in_the_very_next_turn() {
    // No indexer: nothing reaches the vector store, so only the lexical leg can find it.
    let app = spawn_app_without_indexer().await;
    chat(&app, "sam", "when is my sister's birthday again?").await;
    chat(&app, "sam", "remember that my sister's birthday is March 3").await;

    let answer = chat(&app, "sam", "when is my sister's birthday?").await;
    let calls = answer["assistantMessage"]["toolCalls"].as_array().unwrap();
    let lookup = calls
        .iter()
        .find(|c| c["name"] == "search_memory")
        .unwrap_or_else(|| panic!("no search_memory call: {answer}"));
    let results = lookup["result"]["results"].as_array().unwrap();
    assert_eq!(
        results[0]["text"], "my sister's birthday is March 3",
        "{results:?}"
    );
    // The question being asked, and the same question asked before, are no answers.
    assert!(
        results
            .iter()
            .all(|r| !r["text"].as_str().unwrap().contains("when is")),
        "{results:?}"
    );

    // The answer quotes the memory, not a list of hits.
    assert_eq!(
        answer["assistantMessage"]["content"],
        "You told me today: my sister's birthday is March 3.",
        "{answer}"
    );

    let items = search_now(&app, "sam", "sister birthday").await;
    assert_eq!(items[0]["kind"], "memory", "{items:?}");
    assert_eq!(items[0]["snippet"], "my sister's birthday is March 3");
    assert!(items[0]["createdAt"].is_string());
    // Another user finds nothing of sam's, by any word.
    assert_eq!(
        search(&app, "tess", "sister birthday March").await,
        Vec::<Value>::new()
    );
}

async fn search_now(app: &TestApp, user: &str, q: &str) -> Vec<Value> {
    let items = search(app, user, q).await;
    assert!(!items.is_empty(), "nothing found for {q:?}");
    items
}

#[tokio::test]
async fn minilm_finds_what_was_meant_not_only_what_was_said() {
    let app = spawn_app_with(with_minilm, Secrets::default()).await;
    for content in [
        "my sister's birthday is March 3",
        "the car needs new winter tires",
        "I'm allergic to peanuts",
        "the wifi password hint is the dog's name",
    ] {
        let created = app
            .post("/v1/memories", "ida", json!({ "content": content }))
            .await;
        assert_eq!(created.status, StatusCode::CREATED);
    }
    app.post(
        "/v1/memories",
        "jon",
        json!({"content": "my sibling lives in Oslo"}),
    )
    .await;
    // No word in common with the memory it means.
    let items = wait_for_search(&app, "ida", "what do you know about my sibling", |items| {
        items
            .first()
            .is_some_and(|i| i["snippet"] == "my sister's birthday is March 3")
    })
    .await;
    assert!(
        items
            .iter()
            .all(|i| !i["snippet"].as_str().unwrap().contains("Oslo")),
        "{items:?}"
    );
    // Each memory is found by meaning once the indexer has written it (they may land in
    // different batches); wait_for_search fails if that never happens.
    for (q, meant) in [
        ("vehicle maintenance", "the car needs new winter tires"),
        ("food I can't eat", "I'm allergic to peanuts"),
    ] {
        wait_for_search(&app, "ida", q, |items| {
            items.first().is_some_and(|i| i["snippet"] == meant)
        })
        .await;
    }
}

#[tokio::test]
async fn each_users_memory_is_theirs_in_both_legs() {
    let app = spawn_app_with(|_| {}, Secrets::default()).await;
    app.post(
        "/v1/memories",
        "una",
        json!({"content": "The locker code is 4417"}),
    )
    .await;
    app.create_task("una", json!({"title": "Change the locker code"}))
        .await;
    // Indexed for una (vector leg) ...
    wait_for_search(&app, "una", "locker code", |items| items.len() == 2).await;
    // ... and nobody else finds it, by words or by meaning.
    for q in ["locker code", "4417", "combination lock"] {
        assert_eq!(search(&app, "vic", q).await, Vec::<Value>::new(), "{q}");
    }
}

fn config_for(url: &str, data_dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.server.bind = "127.0.0.1:0".parse().unwrap();
    config.server.workers = 1;
    config.server.data_dir = data_dir.to_owned();
    config.database.url = url.to_owned();
    config.database.pool_size = 2;
    config.vector.outbox_poll_ms = 50;
    config
}

/// Builds the application, retrying while the last one's threads still hold the store.
async fn build(config: &Config) -> anyhow::Result<Application> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match Application::build(config.clone(), Secrets::default()).await {
            Err(e)
                if format!("{e:#}").contains("in use by another process")
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => return other,
        }
    }
}

/// Serves on the configuration until `work` is done.
async fn serve(config: &Config, work: impl AsyncFnOnce(String)) {
    let app = build(config).await.expect("the server starts");
    let base = format!("http://{}", app.local_addr());
    let handle = app.handle();
    let server = tokio::spawn(app.run_until_stopped());
    work(base).await;
    handle.stop(true).await;
    server.await.unwrap().unwrap();
}

fn reindex(config: &Config) -> std::process::Output {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pixie"))
            .arg("reindex")
            .env_remove("PIXIE_CONFIG")
            .env("PIXIE__DATABASE__URL", &config.database.url)
            .env("PIXIE__SERVER__DATA_DIR", &config.server.data_dir)
            .env("PIXIE__EMBEDDINGS__PROVIDER", "minilm")
            .env(
                "PIXIE__EMBEDDINGS__MODEL_DIR",
                config.embeddings.model_dir.as_ref().unwrap(),
            )
            .current_dir(env!("CARGO_TARGET_TMPDIR"))
            .output()
            .expect("run pixie reindex");
        let busy = String::from_utf8_lossy(&out.stderr).contains("in use by another process");
        if !busy || std::time::Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn another_embedder_is_refused_until_the_store_is_rebuilt() {
    let db = tokio::task::spawn_blocking(TestDatabase::migrated)
        .await
        .unwrap();
    let data_dir = temp_dir("pixie-embedder");
    let hashed = {
        let mut config = config_for(&db.url, &data_dir);
        config.embeddings.provider = EmbeddingsProvider::Hashed;
        config
    };
    let client = reqwest::Client::new();
    serve(&hashed, async |base| {
        let created = client
            .post(format!("{base}/v1/memories"))
            .bearer_auth("dev:kai")
            .json(&json!({"content": "my sister's birthday is March 3"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        // Indexed with the hashed embedder before the server stops.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            let found: Value = client
                .get(format!("{base}/v1/search?q=sister"))
                .bearer_auth("dev:kai")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if found["items"].as_array().is_some_and(|i| !i.is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;

    // The same 384 dimensions, another embedder: refused, naming the way out.
    let mut minilm = config_for(&db.url, &data_dir);
    with_minilm(&mut minilm);
    let error = match build(&minilm).await {
        Ok(_) => panic!("MiniLM must not start on hashed vectors"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        error.contains("pixie reindex") && error.contains("hashed-v1") && error.contains("minilm"),
        "{error}"
    );

    // A rebuild that was interrupted is refused too, and `pixie reindex` resumes it.
    {
        let store = pixie::ai::setup::vector_store(
            &minilm.vector,
            &data_dir,
            &Default::default(),
            384,
            true,
        )
        .await
        .unwrap();
        let embedder =
            pixie::ai::setup::embedder(&minilm.embeddings, &data_dir, &Default::default()).unwrap();
        let index = pixie::ai::index::VectorIndex::new(embedder.clone(), store);
        index
            .set_record(&pixie::ai::index::StoreRecord {
                embedder: embedder.id(),
                rebuilding: Some(pixie::ai::index::Progress {
                    kind: pixie::domain::assistant::DocKind::Memory,
                    after: None,
                }),
            })
            .await
            .unwrap();
    }
    let error = match build(&minilm).await {
        Ok(_) => panic!("a half-built store must not serve"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("did not finish"), "{error}");
    let out = tokio::task::spawn_blocking({
        let minilm = minilm.clone();
        move || reindex(&minilm)
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("resuming"), "{stdout}");
    assert!(stdout.contains("reindexed 1 documents"), "{stdout}");

    serve(&minilm, async |base| {
        let found: Value = client
            .get(format!("{base}/v1/search?q={}", urlencode("my sibling")))
            .bearer_auth("dev:kai")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            found["items"][0]["snippet"], "my sister's birthday is March 3",
            "{found}"
        );
    })
    .await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

#[tokio::test]
async fn facts_about_the_user_are_remembered_and_answered() {
    let app = spawn_app_without_indexer().await;
    for fact in ["my favorite color is green", "I'm allergic to peanuts"] {
        let told = chat(&app, "lea", fact).await;
        assert_eq!(
            told["assistantMessage"]["content"], "I'll remember that.",
            "{told}"
        );
    }
    let memories = app.get("/v1/memories", "lea").await.body;
    let contents: Vec<&str> = memories["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert!(
        contents.contains(&"my favorite color is green"),
        "{memories}"
    );
    assert!(contents.contains(&"I'm allergic to peanuts"), "{memories}");

    let color = chat(&app, "lea", "what's my favorite color?").await;
    assert_eq!(
        color["assistantMessage"]["content"], "You told me today: my favorite color is green.",
        "{color}"
    );
    let known = chat(&app, "lea", "what do you know about peanuts").await;
    let listed = known["assistantMessage"]["content"].as_str().unwrap();
    assert!(
        listed.starts_with("Here is what I know about that:")
            && listed.contains("allergic to peanuts"),
        "{listed}"
    );
}

#[tokio::test]
async fn the_rare_word_of_a_question_weighs_more_than_a_common_one() {
    // Words alone (no indexer): "Anna" is in most of the user's memories, "passport" in one.
    let app = spawn_app_without_indexer().await;
    for content in [
        "Anna called about dinner on Friday",
        "Anna liked the movie a lot",
        "Anna is visiting in May with Anna's kids",
        "Anna's cat is sick, Anna is worried",
        "The passport is in the top drawer of the desk",
    ] {
        let reply = app
            .post("/v1/memories", "ravi", json!({ "content": content }))
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    }
    let items = search_now(&app, "ravi", "where did Anna put the passport").await;
    assert_eq!(
        items[0]["snippet"], "The passport is in the top drawer of the desk",
        "{items:?}"
    );
    assert_eq!(items.len(), 5, "every memory shares a word: {items:?}");
}
