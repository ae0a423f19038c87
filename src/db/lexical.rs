//! The lexical leg of recall over PostgreSQL full text: each searchable table has a generated
//! `search` tsvector (English stemming) with a GIN index on its lexemes prefixed by their
//! owner (`pixie_user_terms`, see its migration), so a search reads only the signed-in user's
//! postings of its words and sees every committed row. Matches are ranked by BM25 (see
//! [`bm25`]).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::PgStore;
use crate::domain::assistant::DocKind;
use crate::domain::ports::{Found, LexicalIndex, Ranked};
use crate::domain::{DomainResult, UserId};

/// What each kind's text is, as the vector index embeds it (`Document::of_*`), and where.
fn source(kind: DocKind) -> (&'static str, &'static str) {
    match kind {
        DocKind::Memory => ("memories", "content"),
        DocKind::Task => (
            "tasks",
            "concat_ws(E'\\n', title, nullif(btrim(description), ''), nullif(btrim(project), ''))",
        ),
        DocKind::Event => (
            "events",
            "concat_ws(E'\\n', title, nullif(btrim(description), ''), nullif(btrim(location), ''))",
        ),
        DocKind::Message => ("messages", "content"),
    }
}

/// At most this many distinct words of a query are weighed (bits of a mask); the query
/// matches on any of them.
const MAX_WORDS: usize = 16;
/// Matching documents of each kind ranked by BM25, at most: the best by ts_rank (a bound on
/// a search's cost when a word is in most of a user's documents).
const MAX_MATCHES: usize = 5_000;

/// The query's (`$2`) words, English-stemmed, any of which may match. Written out in each
/// branch, not taken from a CTE: the planner then sees it, and a scan with it costs about
/// half as much (`EXPLAIN ANALYZE`).
const ANY_WORD: &str = "replace(plainto_tsquery('english', $2)::text, ' & ', ' | ')::tsquery";

/// A lexeme as a tsquery operand (quoted, its quotes and backslashes doubled, so that no
/// character of it is an operator).
fn operand(word: &str) -> String {
    format!("'{}'", word.replace('\\', "\\\\").replace('\'', "''"))
}

#[derive(QueryableByName)]
struct Word {
    #[diesel(sql_type = Text)]
    word: String,
    /// The word as the user's documents are indexed (`pixie_user_terms`).
    #[diesel(sql_type = Text)]
    term: String,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Text)]
    text: String,
    #[diesel(sql_type = Timestamptz)]
    created_at: DateTime<Utc>,
}

impl Row {
    fn found(self) -> Option<Found> {
        Some(Found {
            kind: DocKind::parse(&self.kind)?,
            id: self.id,
            text: self.text,
            created_at: self.created_at,
        })
    }
}

fn kinds_or_all(kinds: &[DocKind]) -> Vec<DocKind> {
    if kinds.is_empty() {
        DocKind::ALL.to_vec()
    } else {
        let mut kinds = kinds.to_vec();
        kinds.dedup();
        kinds
    }
}

#[derive(QueryableByName)]
struct Match {
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
    #[diesel(sql_type = Integer)]
    length: i32,
    /// Bit `i`: the document has the query's word `i`.
    #[diesel(sql_type = Integer)]
    words: i32,
}

/// Okapi BM25 (k1 1.2, b 0.75) over the matching documents, each word counted once per
/// document: a rare word of the query weighs more than a common one (ts_rank weighs them all
/// alike, so a name the user says every day drowned the one word that mattered), and a long
/// document counts each of its words for less. Document frequencies and the average length
/// are those of the matching documents. Returns (score, match) best first.
fn bm25(matches: Vec<Match>, words: usize, limit: usize) -> Vec<(f32, Match)> {
    let n = matches.len() as f64;
    if n == 0.0 {
        return Vec::new();
    }
    let mut df = vec![0.0_f64; words];
    let mut total_length = 0.0;
    for m in &matches {
        total_length += f64::from(m.length);
        for (i, d) in df.iter_mut().enumerate() {
            if m.words & (1 << i) != 0 {
                *d += 1.0;
            }
        }
    }
    let average = (total_length / n).max(1.0);
    let idf: Vec<f64> = df
        .iter()
        .map(|d| ((n - d + 0.5) / (d + 0.5) + 1.0).ln())
        .collect();
    let mut scored: Vec<(f32, Match)> = matches
        .into_iter()
        .map(|m| {
            let weight: f64 = (0..words)
                .filter(|i| m.words & (1 << i) != 0)
                .map(|i| idf[i])
                .sum();
            let norm = 2.2 / (1.0 + 1.2 * (0.25 + 0.75 * f64::from(m.length) / average));
            ((weight * norm) as f32, m)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
    scored.truncate(limit);
    scored
}

#[async_trait]
impl LexicalIndex for PgStore {
    async fn search(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> DomainResult<Vec<Ranked>> {
        let user_id = user.as_str().to_owned();
        let query = query.to_owned();
        let kinds = kinds_or_all(kinds);
        let (matches, words) = self
            .run(move |conn| {
                // The query's distinct words, as the documents' tsvectors hold them, read on
                // the same connection as the scan: the scan weighs only the words there are.
                let (words, terms): (Vec<String>, Vec<String>) = diesel::sql_query(format!(
                    "SELECT w AS word, left(md5($2), 8) || ':' || w AS term
                       FROM unnest(tsvector_to_array(to_tsvector('english', $1))) AS w
                      LIMIT {MAX_WORDS}"
                ))
                .bind::<Text, _>(&query)
                .bind::<Text, _>(&user_id)
                .load::<Word>(conn)?
                .into_iter()
                .map(|w| (w.word, w.term))
                .unzip();
                if words.is_empty() {
                    return Ok((Vec::new(), 0));
                }
                // Which of the words each matching document has, in the pass over the
                // user's postings that finds it (a per-row subquery here costs a hundred
                // times more).
                let mask = (0..words.len())
                    .map(|i| {
                        format!(
                            "(CASE WHEN search @@ $3[{}]::tsquery THEN {} ELSE 0 END)",
                            i + 1,
                            1_i32 << i
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" + ");
                let branches: Vec<String> = kinds
                    .iter()
                    .map(|kind| {
                        let (table, _) = source(*kind);
                        format!(
                            "(SELECT '{kind}'::text AS kind, id, length(search) AS length,
                                     {mask} AS words
                                FROM {table}
                               WHERE user_id = $1 AND search IS NOT NULL
                                 AND pixie_user_terms(user_id, search) && $4
                               ORDER BY ts_rank(search, {ANY_WORD}, 1) DESC, id
                               LIMIT {MAX_MATCHES})",
                            kind = kind.as_str()
                        )
                    })
                    .collect();
                let operands: Vec<String> = words.iter().map(|w| operand(w)).collect();
                let matches: Vec<Match> = diesel::sql_query(branches.join(" UNION ALL "))
                    .bind::<Text, _>(&user_id)
                    .bind::<Text, _>(&query)
                    .bind::<Array<Text>, _>(&operands)
                    .bind::<Array<Text>, _>(&terms)
                    .load(conn)?;
                Ok((matches, words.len()))
            })
            .await?;
        Ok(bm25(matches, words, limit)
            .into_iter()
            .filter_map(|(rank, m)| {
                Some(Ranked {
                    kind: DocKind::parse(&m.kind)?,
                    id: m.id,
                    rank,
                })
            })
            .collect())
    }

    async fn fetch(&self, user: &UserId, ids: &[(DocKind, Uuid)]) -> DomainResult<Vec<Found>> {
        let mut kinds: Vec<DocKind> = ids.iter().map(|(kind, _)| *kind).collect();
        kinds.sort_by_key(|kind| kind.as_str());
        kinds.dedup();
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        // One statement for every kind: `$2` holds all the ids, and each table finds its own.
        let branches: Vec<String> = kinds
            .iter()
            .map(|kind| {
                let (table, text) = source(*kind);
                // The assistant's replies are not facts: a vector left from before they
                // were kept out of the index finds nothing here.
                let role = if *kind == DocKind::Message {
                    " AND role = 'user'"
                } else {
                    ""
                };
                format!(
                    "(SELECT '{kind}'::text AS kind, id, {text} AS text, created_at
                        FROM {table} WHERE user_id = $1 AND id = ANY($2){role})",
                    kind = kind.as_str()
                )
            })
            .collect();
        let sql = branches.join(" UNION ALL ");
        let user = user.as_str().to_owned();
        let ids: Vec<Uuid> = ids.iter().map(|(_, id)| *id).collect();
        self.run(move |conn| {
            let rows: Vec<Row> = diesel::sql_query(sql)
                .bind::<Text, _>(&user)
                .bind::<Array<SqlUuid>, _>(&ids)
                .load(conn)?;
            Ok(rows.into_iter().filter_map(Row::found).collect())
        })
        .await
    }
}
