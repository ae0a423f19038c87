//! Recall: what the user's own data says about a question.
//!
//! Two legs, each filtered to the signed-in user: meaning (the semantic index, which trails
//! the writes by the indexer's backlog) and words (full text over committed rows, so a write
//! is found the moment it is acknowledged). Each leg's hits are judged, then the two
//! rankings are fused (see [`Fusion`]; the choice is measured by `cargo bench --bench
//! memory`). The ranking serves a person:
//! - at equal relevance, explicit memories, tasks and events come before chat messages, and
//!   a message that asks something (a question states no fact) comes after both;
//! - the turn's own message and messages that only repeat the question are left out of each
//!   leg, and near-duplicates of a better hit out of the answer;
//! - the assistant's own replies are not in either leg at all (they are not indexed).
//!
//! When the semantic index cannot answer, recall goes on with words alone.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::assistant::DocKind;
use super::error::DomainResult;
use super::ports::{Found, SearchLeg};
use super::service::Domain;
use super::values::UserId;

/// Reciprocal rank fusion's `k`: small, so that the top ranks of each leg weigh.
pub const RRF_K: f32 = 10.0;
/// A chat message weighs this much against a memory, task or event of the same ranks.
const MESSAGE_WEIGHT: f32 = 0.8;
/// And a message that asks something this much more.
const QUESTION_WEIGHT: f32 = 0.5;
/// Characters of a hit's text shown with it.
const SNIPPET_CHARS: usize = 280;

/// One hit of recall: `score` orders the hits of one answer and means nothing across answers.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub kind: DocKind,
    pub id: Uuid,
    pub score: f32,
    pub snippet: String,
    /// When the document was first written (a memory: when the user said it).
    pub created_at: DateTime<Utc>,
}

/// What to recall.
#[derive(Debug, Clone, Copy)]
pub struct RecallQuery<'a> {
    pub text: &'a str,
    /// Restricted to these kinds; all when empty.
    pub kinds: &'a [DocKind],
    pub limit: usize,
    /// A document never returned (the message being answered).
    pub exclude: Option<Uuid>,
    /// Which legs run: both, except to measure one alone (`cargo bench --bench memory`).
    pub legs: Legs,
    /// How the legs' rankings become one; `None`: the default.
    pub fusion: Option<Fusion>,
}

/// How the two legs' hits are combined. `cargo bench --bench memory` measures them over the
/// labelled sets of `bench/memory/` and the public LoCoMo benchmark; the default is
/// reciprocal rank with `k` [`RRF_K`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion, `Σ 1 / (k + rank)`: positions only, the two legs as equals.
    /// Which leg is the stronger depends on what the user says and asks (meaning on the
    /// conversational set, words on LoCoMo, where names and rare nouns decide): fusions
    /// that favour one leg lose where the other is the better, this one gains on all sets.
    Rrf { k: f32 },
    /// Meaning leads: a hit scores its cosine, plus `bonus` when the word leg also has it in
    /// its top `depth`; what only the words find comes after.
    Confirm { bonus: f32, depth: usize },
    /// `w · cosine + (1 − w) · rank / the query's best rank`.
    Convex(f32),
}

impl Default for Fusion {
    fn default() -> Self {
        Self::Rrf { k: RRF_K }
    }
}

impl Fusion {
    /// What a hit at `rank` (from 0) of the meaning leg, with this cosine, adds.
    fn meaning(self, rank: usize, cosine: f32) -> f32 {
        match self {
            Self::Confirm { .. } => cosine.clamp(0.0, 1.0),
            Self::Rrf { k } => 1.0 / (k + rank as f32 + 1.0),
            Self::Convex(weight) => weight * cosine.clamp(0.0, 1.0),
        }
    }

    /// What a hit at `rank` of the word leg, with this full-text rank, adds (`best`: the
    /// query's best full-text rank).
    fn words(self, rank: usize, text_rank: f32, best: f32) -> f32 {
        match self {
            Self::Confirm { bonus, depth } if rank < depth => bonus,
            Self::Confirm { .. } => 0.0,
            Self::Rrf { k } => 1.0 / (k + rank as f32 + 1.0),
            Self::Convex(_) if best <= 0.0 => 0.0,
            Self::Convex(weight) => (1.0 - weight) * text_rank / best,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Legs {
    #[default]
    Both,
    Meaning,
    Words,
}

impl Domain {
    /// Both legs (or one, as `query.legs` says), fused and ranked; see the module
    /// documentation.
    pub async fn recall(
        &self,
        user: &UserId,
        query: RecallQuery<'_>,
    ) -> DomainResult<Vec<SearchHit>> {
        if query.limit == 0 {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let meter = &self.ports.meter;
        // Deeper than the answer: hits are dropped below, and fusion needs each leg's tail.
        let depth = (query.limit * 5).clamp(30, 100);
        let meaning = async {
            if query.legs == Legs::Words {
                return Ok(Vec::new());
            }
            let hits = self
                .ports
                .index
                .recall(user, query.text, query.kinds, depth)
                .await;
            meter.searched(SearchLeg::Meaning, started.elapsed());
            hits
        };
        let words = async {
            if query.legs == Legs::Meaning {
                return Ok(Vec::new());
            }
            let hits = self
                .ports
                .lexical
                .search(user, query.text, query.kinds, depth)
                .await;
            meter.searched(SearchLeg::Words, started.elapsed());
            hits
        };
        let (meaning, words) = tokio::join!(meaning, words);
        let words = words?;
        let meaning = meaning.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "recall by meaning failed; recalling by words alone");
            Vec::new()
        });

        let fusion = query.fusion.unwrap_or_default();
        // Every candidate's text, to judge it, read in one round trip: as stored now (a
        // document deleted since the semantic index had it is gone from the answer).
        let best_words = words.iter().map(|r| r.rank).fold(0.0_f32, f32::max);
        let mut candidates: Vec<(DocKind, Uuid)> = words.iter().map(|r| (r.kind, r.id)).collect();
        let mut seen: HashSet<Uuid> = candidates.iter().map(|(_, id)| *id).collect();
        candidates.extend(
            meaning
                .iter()
                .filter(|hit| seen.insert(hit.id))
                .map(|hit| (hit.kind, hit.id)),
        );
        let mut texts: HashMap<Uuid, Found> = self
            .ports
            .lexical
            .fetch(user, &candidates)
            .await?
            .into_iter()
            .map(|f| (f.id, f))
            .collect();

        // Each leg is judged before the two are fused, so that the positions fusion weighs
        // are among the hits that could be answers: the message being answered and messages
        // that only repeat the question go; a chat message weighs less than a memory, task
        // or event, and one that asks something less again.
        let asked = Words::of(query.text);
        let weight_of = |id: Uuid| -> Option<f32> {
            let found = texts.get(&id)?;
            if Some(id) == query.exclude {
                return None;
            }
            if found.kind != DocKind::Message {
                return Some(1.0);
            }
            let question = is_question(&found.text);
            if question && asked.repeated_by(&Words::of(&found.text)) {
                return None;
            }
            Some(MESSAGE_WEIGHT * if question { QUESTION_WEIGHT } else { 1.0 })
        };
        let judged = |leg: Vec<(Uuid, f32)>| -> Vec<(Uuid, f32)> {
            let mut leg: Vec<(Uuid, f32)> = leg
                .into_iter()
                .filter_map(|(id, score)| Some((id, score * weight_of(id)?)))
                .collect();
            leg.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            leg
        };
        let meaning = judged(meaning.iter().map(|h| (h.id, h.score)).collect());
        let words = judged(words.iter().map(|r| (r.id, r.rank)).collect());
        let mut fused: HashMap<Uuid, f32> = HashMap::new();
        for (rank, (id, cosine)) in meaning.into_iter().enumerate() {
            *fused.entry(id).or_default() += fusion.meaning(rank, cosine);
        }
        for (rank, (id, text_rank)) in words.into_iter().enumerate() {
            *fused.entry(id).or_default() += fusion.words(rank, text_rank, best_words);
        }
        let mut ranked: Vec<(f32, Found)> = fused
            .into_iter()
            .filter_map(|(id, score)| Some((score, texts.remove(&id)?)))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        let mut kept: Vec<(String, Words)> = Vec::new();
        let mut hits = Vec::new();
        for (score, found) in ranked {
            if hits.len() == query.limit {
                break;
            }
            let key = normalised(&found.text);
            let words = Words::of(&found.text);
            if kept
                .iter()
                .any(|(k, w)| *k == key || w.near_duplicate_of(&words))
            {
                continue;
            }
            kept.push((key, words));
            hits.push(SearchHit {
                kind: found.kind,
                id: found.id,
                score,
                snippet: snippet(&found.text),
                created_at: found.created_at,
            });
        }
        meter.searched(SearchLeg::All, started.elapsed());
        Ok(hits)
    }
}

fn snippet(text: &str) -> String {
    match text.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// The text with case, punctuation and spacing taken out: two texts that differ only so are
/// the same hit.
fn normalised(text: &str) -> String {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Whether a message asks rather than tells.
fn is_question(text: &str) -> bool {
    const ASKING: &[&str] = &[
        "what", "when", "where", "who", "whom", "whose", "which", "why", "how", "do", "does",
        "did", "can", "could", "would", "should", "will", "is", "are", "am", "have", "has", "any",
        "whats", "wheres", "whos", "hows",
    ];
    let text = text.trim();
    if text.ends_with('?') {
        return true;
    }
    let first = text
        .split(|c: char| !c.is_alphanumeric())
        .find(|w| !w.is_empty())
        .map(str::to_lowercase)
        .unwrap_or_default();
    ASKING.contains(&first.as_str())
}

/// The words of a text that carry its meaning: lower case, without the common ones, plurals
/// and possessives folded.
struct Words(HashSet<String>);

impl Words {
    fn of(text: &str) -> Self {
        const COMMON: &[&str] = &[
            "a", "an", "the", "and", "or", "of", "to", "in", "on", "at", "for", "is", "are", "was",
            "were", "be", "my", "me", "i", "you", "your", "it", "its", "do", "does", "did", "what",
            "when", "where", "who", "which", "how", "why", "that", "this", "again", "please", "s",
            "about", "know", "tell", "remind",
        ];
        Self(
            text.split(|c: char| !c.is_alphanumeric())
                .map(str::to_lowercase)
                .filter(|w| !w.is_empty() && !COMMON.contains(&w.as_str()))
                .map(|w| match w.strip_suffix('s') {
                    Some(stem) if stem.len() > 2 && !w.ends_with("ss") => stem.to_owned(),
                    _ => w,
                })
                .collect(),
        )
    }

    /// Whether the two say the same with at most a word in ten changed.
    fn near_duplicate_of(&self, other: &Words) -> bool {
        let union = self.0.union(&other.0).count();
        union > 0 && self.0.intersection(&other.0).count() * 10 >= union * 9
    }

    /// Whether `other` says nothing this does not: a question asked again.
    fn repeated_by(&self, other: &Words) -> bool {
        if self.0.is_empty() || other.0.is_empty() {
            return false;
        }
        let shared = self.0.intersection(&other.0).count();
        let union = self.0.union(&other.0).count();
        shared * 5 >= union * 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_their_repeats() {
        assert!(is_question("when is my sister's birthday?"));
        assert!(is_question("What's on my calendar"));
        assert!(!is_question("my sister's birthday is March 3"));
        let asked = Words::of("when is my sister's birthday?");
        assert!(asked.repeated_by(&Words::of("When is my sisters birthday again")));
        assert!(asked.repeated_by(&Words::of("what's my sister's birthday?")));
        assert!(!asked.repeated_by(&Words::of("is my brother's birthday in June?")));
        assert!(!asked.repeated_by(&Words::of("")));
    }

    #[test]
    fn normalised_texts_ignore_case_and_punctuation() {
        assert_eq!(
            normalised("My sister's birthday: March 3!"),
            normalised("my sister s birthday march 3")
        );
        assert_ne!(normalised("March 3"), normalised("March 4"));
        assert!(snippet(&"x".repeat(300)).ends_with('…'));
    }
}
