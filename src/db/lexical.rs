//! The lexical leg of recall over PostgreSQL full text: each searchable table has a generated
//! `search` tsvector (English stemming) with a GIN index on `(user_id, search)`, so a search
//! reads only the signed-in user's postings and sees every committed row. Matches are ranked
//! by BM25 (see [`LexicalIndex::search`]'s query).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Float4, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::PgStore;
use crate::domain::assistant::DocKind;
use crate::domain::ports::{Found, LexicalIndex};
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

/// At most this many distinct words of a query are weighed (each costs a pass over the
/// matching documents); the query matches on all of them.
const MAX_WORDS: usize = 16;

/// The words of the query (`$2`), English-stemmed, any of which may match.
const ANY_WORD: &str = "replace(plainto_tsquery('english', $2)::text, ' & ', ' | ')::tsquery";

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
    #[diesel(sql_type = Float4)]
    rank: f32,
}

impl Row {
    fn found(self) -> Option<Found> {
        Some(Found {
            kind: DocKind::parse(&self.kind)?,
            id: self.id,
            text: self.text,
            created_at: self.created_at,
            rank: self.rank,
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

#[async_trait]
impl LexicalIndex for PgStore {
    async fn search(
        &self,
        user: &UserId,
        query: &str,
        kinds: &[DocKind],
        limit: usize,
    ) -> DomainResult<Vec<Found>> {
        let user = user.as_str().to_owned();
        let query = query.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let kinds = kinds_or_all(kinds);
        // Every document of the user with any of the query's words (plainto_tsquery would
        // want them all). The query is written out in each branch (not a CTE) so that the
        // planner sees it and takes the index.
        let matches: Vec<String> = kinds
            .iter()
            .map(|kind| {
                let (table, _) = source(*kind);
                format!(
                    "SELECT '{kind}'::text AS kind, id, created_at, search FROM {table}
                      WHERE user_id = $1 AND search @@ {ANY_WORD}",
                    kind = kind.as_str()
                )
            })
            .collect();
        let texts: Vec<String> = kinds
            .iter()
            .map(|kind| {
                let (table, text) = source(*kind);
                format!(
                    "SELECT top.kind, top.id, {text} AS text, top.created_at, top.rank::real AS rank
                       FROM top JOIN {table} d ON d.id = top.id
                      WHERE top.kind = '{kind}'",
                    kind = kind.as_str()
                )
            })
            .collect();
        // Okapi BM25 (k1 1.2, b 0.75) with each word counted once per document: a rare word
        // of the query weighs more than a common one (ts_rank weighs them all alike, so a
        // name the user says every day drowned the one word that mattered), and a long
        // document counts each of its words for less. Document frequencies and the average
        // length are those of the matching documents, read in the same pass.
        let sql = format!(
            "WITH m AS MATERIALIZED ({matches}),
                  words AS (SELECT plainto_tsquery('simple', w) AS q
                              FROM unnest(tsvector_to_array(to_tsvector('english', $2))) AS w
                             LIMIT {MAX_WORDS}),
                  totals AS (SELECT count(*)::float8 AS n,
                                    coalesce(avg(length(search)), 1)::float8 AS average
                               FROM m),
                  idf AS (SELECT words.q,
                                 ln((totals.n - df.n + 0.5) / (df.n + 0.5) + 1) AS weight
                            FROM words CROSS JOIN totals
                            CROSS JOIN LATERAL (SELECT count(*)::float8 AS n
                                                  FROM m WHERE m.search @@ words.q) df),
                  top AS (SELECT m.kind, m.id, m.created_at,
                                 (SELECT coalesce(sum(idf.weight), 0) FROM idf
                                   WHERE m.search @@ idf.q)
                                 * 2.2 / (1 + 1.2 * (0.25 + 0.75 * length(m.search)
                                                            / greatest(totals.average, 1)))
                                   AS rank
                            FROM m CROSS JOIN totals
                           ORDER BY rank DESC, m.id
                           LIMIT $3)
             {} ORDER BY rank DESC, id",
            texts.join(" UNION ALL "),
            matches = matches.join(" UNION ALL "),
        );
        self.run(move |conn| {
            let rows: Vec<Row> = diesel::sql_query(sql)
                .bind::<Text, _>(&user)
                .bind::<Text, _>(&query)
                .bind::<BigInt, _>(limit)
                .load(conn)?;
            Ok(rows.into_iter().filter_map(Row::found).collect())
        })
        .await
    }

    async fn fetch(&self, user: &UserId, ids: &[(DocKind, Uuid)]) -> DomainResult<Vec<Found>> {
        let user = user.as_str().to_owned();
        let mut by_kind: Vec<(DocKind, Vec<Uuid>)> = Vec::new();
        for (kind, id) in ids {
            match by_kind.iter_mut().find(|(k, _)| k == kind) {
                Some((_, list)) => list.push(*id),
                None => by_kind.push((*kind, vec![*id])),
            }
        }
        self.run(move |conn| {
            let mut out = Vec::new();
            for (kind, ids) in by_kind {
                let (table, text) = source(kind);
                // The assistant's replies are not facts: a vector left from before they were
                // kept out of the index finds nothing here.
                let role = if kind == DocKind::Message {
                    " AND role = 'user'"
                } else {
                    ""
                };
                let sql = format!(
                    "SELECT '{kind}' AS kind, id, {text} AS text, created_at, 0::real AS rank
                       FROM {table} WHERE user_id = $1 AND id = ANY($2){role}",
                    kind = kind.as_str()
                );
                let rows: Vec<Row> = diesel::sql_query(sql)
                    .bind::<Text, _>(&user)
                    .bind::<Array<SqlUuid>, _>(&ids)
                    .load(conn)?;
                out.extend(rows.into_iter().filter_map(Row::found));
            }
            Ok(out)
        })
        .await
    }
}
