//! Embeddings: text → fixed-size vectors whose cosine similarity tracks relatedness.
//!
//! [`LocalEmbedder`] is the networkless default. It hashes features of the text into a signed
//! vector and L2-normalises it:
//! - lower-cased words (English stop words dropped, plural `s` stripped), weight 1;
//! - adjacent word pairs, weight 0.5 (word order matters a little);
//! - character trigrams of each word with boundary marks (`#bi`, `bir`, …, `ay#`), weight 0.3,
//!   so that typos and inflections (`birthday` / `birthdays` / `bday`-less variants) still overlap.
//!
//! What it can match: texts that share words or word fragments ("dentist appointment" ↔
//! "appointment at the dentist", "sister's birthday" ↔ "birthday of my sister"). What it cannot:
//! synonyms and paraphrases without shared fragments ("car" ↔ "automobile", "doctor" ↔
//! "physician"), or other languages. For those there is all-MiniLM-L6-v2 in process
//! ([`super::minilm`], after `pixie models fetch`), or any OpenAI-compatible `/v1/embeddings`.

use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("embedding provider unavailable: {0}")]
    Unavailable(String),
    #[error("embedding provider answered something unusable: {0}")]
    BadResponse(String),
}

#[async_trait]
pub trait Embedder: Send + Sync {
    /// Length of every vector this embedder returns.
    fn dimension(&self) -> usize;
    /// What makes its vectors comparable with one another (the model and its weights, or the
    /// algorithm): recorded with the vector store, which refuses another embedder's queries.
    fn id(&self) -> String;
    /// One vector per text, in order.
    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

pub const DEFAULT_LOCAL_DIMENSION: usize = 384;

const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "i", "in", "is",
    "it", "its", "me", "my", "of", "on", "or", "our", "so", "that", "the", "this", "to", "was",
    "we", "were", "will", "with", "you", "your",
];

/// Deterministic feature-hashing embedder; no network, no model files.
#[derive(Debug, Clone)]
pub struct LocalEmbedder {
    dimension: usize,
}

impl Default for LocalEmbedder {
    fn default() -> Self {
        Self::new(DEFAULT_LOCAL_DIMENSION)
    }
}

impl LocalEmbedder {
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension: dimension.max(1),
        }
    }

    pub fn embed_one(&self, text: &str) -> Vec<f32> {
        let mut vector = vec![0f32; self.dimension];
        let lower = text.to_lowercase();
        let words: Vec<String> = lower
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty() && !STOP_WORDS.contains(w))
            .map(stem)
            .collect();
        for word in &words {
            self.add(&mut vector, "w", word, 1.0);
            let marked: Vec<char> = format!("#{word}#").chars().collect();
            for gram in marked.windows(3) {
                let gram: String = gram.iter().collect();
                self.add(&mut vector, "c", &gram, 0.3);
            }
        }
        for pair in words.windows(2) {
            self.add(&mut vector, "b", &format!("{} {}", pair[0], pair[1]), 0.5);
        }
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            vector.iter_mut().for_each(|x| *x /= norm);
        }
        vector
    }

    /// Adds a feature at its hashed index, with a hashed sign so that collisions cancel out
    /// on average instead of piling up.
    fn add(&self, vector: &mut [f32], kind: &str, feature: &str, weight: f32) {
        let hash = fnv1a(kind.as_bytes(), feature.as_bytes());
        let index = (hash % self.dimension as u64) as usize;
        let sign = if hash >> 63 == 0 { 1.0 } else { -1.0 };
        vector[index] += sign * weight;
    }
}

/// A light English plural stemmer: `birthdays` → `birthday`, `parties` → `party`, while
/// `glass` and `bus` stay. Enough to make singular and plural the same feature.
fn stem(word: &str) -> String {
    let plural_s = word.ends_with('s') && !word.ends_with("ss") && !word.ends_with("us");
    if word.len() > 4 && word.ends_with("ies") {
        format!("{}y", &word[..word.len() - 3])
    } else if word.len() > 3 && plural_s {
        word[..word.len() - 1].to_owned()
    } else {
        word.to_owned()
    }
}

/// FNV-1a, 64-bit: stable across runs, platforms and releases (unlike `std`'s hasher), so
/// stored vectors stay comparable with new ones.
fn fnv1a(prefix: &[u8], bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in prefix.iter().chain([0u8].iter()).chain(bytes) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn dimension(&self) -> usize {
        self.dimension
    }

    fn id(&self) -> String {
        format!("hashed-v1:{}", self.dimension)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        Ok(texts.iter().map(|t| self.embed_one(t)).collect())
    }
}

/// Cosine similarity of two vectors of equal length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(a: &str, b: &str) -> f32 {
        let e = LocalEmbedder::default();
        cosine(&e.embed_one(a), &e.embed_one(b))
    }

    #[test]
    fn vectors_are_deterministic_normalised_and_sized() {
        let e = LocalEmbedder::default();
        let v = e.embed_one("My sister's birthday is 3 May");
        assert_eq!(v.len(), 384);
        assert_eq!(v, e.embed_one("My sister's birthday is 3 May"));
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // Pinned value: the hash must never change, or stored vectors stop matching.
        assert_eq!(fnv1a(b"w", b"milk"), 0x84e2876595a07ee1_u64);
    }

    #[test]
    fn related_texts_are_closer_than_unrelated_ones() {
        let query = "when is my sister's birthday";
        let related = sim(query, "My sister's birthday is 3 May");
        let unrelated = sim(query, "Dentist appointment on Friday");
        assert!(related > 0.5, "{related}");
        assert!(related > unrelated + 0.3, "{related} vs {unrelated}");
        // Typos and inflections still overlap through character trigrams.
        assert!(sim("birthdays", "birthday") > 0.99);
        assert!(sim("parties", "party") > 0.99);
        assert_eq!(stem("glass"), "glass");
        assert!(sim("dentist apointment", "dentist appointment") > 0.6);
    }

    #[test]
    fn empty_and_stop_word_only_texts_are_zero_vectors() {
        let e = LocalEmbedder::default();
        assert!(e.embed_one("").iter().all(|x| *x == 0.0));
        assert!(e.embed_one("the and of").iter().all(|x| *x == 0.0));
        assert_eq!(cosine(&e.embed_one(""), &e.embed_one("milk")), 0.0);
    }

    #[tokio::test]
    async fn embeds_batches_in_order() {
        let e = LocalEmbedder::new(64);
        let texts = vec!["milk".to_owned(), "eggs".to_owned()];
        let out = e.embed(&texts).await.unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0], e.embed_one("milk"));
        assert_eq!(e.dimension(), 64);
    }
}
