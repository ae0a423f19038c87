//! Group commit of chat messages. Every turn stores two messages, and on a busy server many
//! turns store theirs at the same moment: each append waits in a queue, and whatever has
//! gathered while the previous statement ran is stored by one multi-row statement, one
//! transaction and one WAL flush, on one pooled connection. Each caller is answered once that
//! statement has committed: an acknowledged message is durable, as before. A batch that fails
//! (a retried client id, a row a check refuses) is stored again row by row, so that each
//! message gets the outcome it would have had on its own.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, QueryFragment};
use diesel::sql_types;
use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use super::models::{MessageRow, StoredToolCalls};
use super::repos::AppendMessage;
use super::{DbError, PgStore};
use crate::domain::{DomainError, DomainResult};

/// Rows one statement stores at most: enough to absorb a burst of a few hundred turns in
/// flight, small enough that the statement stays a few milliseconds long.
const BATCH_MAX: usize = 64;
/// Statements storing batches at once. Two: while one waits for its WAL flush, the next
/// batch gathers and is sent; more would split the queue into smaller batches.
const FLUSHES_IN_FLIGHT: usize = 2;
/// Appends waiting for a batch; beyond it, callers wait to be queued (back-pressure).
const QUEUE_MAX: usize = 1024;

struct Pending {
    row: MessageRow,
    reply: oneshot::Sender<DomainResult<bool>>,
}

/// The queue in front of the committer task, started by the first append (inside the
/// runtime that will run it).
#[derive(Default)]
pub(super) struct Appender {
    queue: OnceLock<mpsc::Sender<Pending>>,
}

impl PgStore {
    /// Stores a message as [`AppendMessage`] would, grouped with concurrent appends: `true`
    /// once it has committed, `false` when the conversation is not the user's.
    pub(super) async fn append_grouped(&self, row: MessageRow) -> DomainResult<bool> {
        let queue = self.appender.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::channel(QUEUE_MAX);
            // The committer holds a store without the queue, so that it ends with the queue.
            let store = PgStore {
                appender: Arc::default(),
                ..self.clone()
            };
            tokio::spawn(committer(store, receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = queue.send(Pending { row, reply }).await {
            // The committer is gone (the runtime that started it has ended): alone, then.
            let outcome = self.append_each(vec![pending.row]).await?;
            return outcome.into_iter().next().unwrap_or_else(|| {
                Err(DomainError::Internal(anyhow::anyhow!(
                    "an append had no outcome"
                )))
            });
        }
        answer.await.unwrap_or_else(|_| {
            Err(DomainError::Unavailable(
                "the message store stopped before the message was stored".into(),
            ))
        })
    }

    /// Each row in its own statement, on one connection: every row's own outcome.
    async fn append_each(&self, rows: Vec<MessageRow>) -> DomainResult<Vec<DomainResult<bool>>> {
        self.run(move |conn| {
            Ok(rows
                .iter()
                .map(|row| {
                    AppendMessage(row)
                        .execute(conn)
                        .map(|n| n > 0)
                        .map_err(|e| DomainError::from(DbError::from(e)))
                })
                .collect())
        })
        .await
    }
}

async fn committer(store: PgStore, mut queue: mpsc::Receiver<Pending>) {
    let flushes = Arc::new(Semaphore::new(FLUSHES_IN_FLIGHT));
    loop {
        // Wait for a free flush first: appends arriving meanwhile gather into the next batch.
        let Ok(permit) = flushes.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match queue.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            flush(&store, batch).await;
            drop(permit);
        });
    }
}

async fn flush(store: &PgStore, batch: Vec<Pending>) {
    // A key twice in one statement fails all of it: a retry racing its original waits for
    // the batch, then gets the outcome it would have had alone (a conflict, then a replay).
    let (mut ids, mut client_ids) = (HashSet::new(), HashSet::new());
    let (batch, again): (Vec<_>, Vec<_>) = batch.into_iter().partition(|p| {
        let fresh_id = ids.insert(p.row.id);
        let fresh_key = match &p.row.client_message_id {
            Some(c) => client_ids.insert((p.row.user_id.clone(), c.clone())),
            None => true,
        };
        fresh_id && fresh_key
    });
    store_batch(store, batch).await;
    if !again.is_empty() {
        let (rows, replies): (Vec<_>, Vec<_>) = again.into_iter().map(|p| (p.row, p.reply)).unzip();
        let outcome = store.append_each(rows).await;
        answer(replies, outcome);
    }
}

async fn store_batch(store: &PgStore, batch: Vec<Pending>) {
    let (rows, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(|p| (p.row, p.reply)).unzip();
    if rows.is_empty() {
        return;
    }
    if rows.len() == 1 {
        let outcome = store.append_each(rows).await;
        answer(replies, outcome);
        return;
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let (rows, stored) = match store
        .run(move |conn| {
            let stored = AppendMessages::of(&rows).load::<Uuid>(conn);
            Ok((rows, stored))
        })
        .await
    {
        Ok(result) => result,
        Err(e) => {
            // No connection at all: every row fails alike.
            for reply in replies {
                let _ = reply.send(Err(same(&e)));
            }
            return;
        }
    };
    match stored {
        Ok(stored) => {
            for (id, reply) in ids.iter().zip(replies) {
                let _ = reply.send(Ok(stored.contains(id)));
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, rows = rows.len(), "a batch of messages is stored row by row");
            let outcome = store.append_each(rows).await;
            answer(replies, outcome);
        }
    }
}

fn answer(
    replies: Vec<oneshot::Sender<DomainResult<bool>>>,
    outcome: DomainResult<Vec<DomainResult<bool>>>,
) {
    match outcome {
        Ok(each) => {
            for (reply, result) in replies.into_iter().zip(each) {
                let _ = reply.send(result);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(same(&e)));
            }
        }
    }
}

/// [`AppendMessage`] for many rows in one statement: the rows travel as one array per column,
/// so that the statement's text is the same for any number of rows and stays prepared. Each
/// conversation is bumped once, to its newest message, and only the rows of conversations
/// that are their users' are inserted; the statement returns the ids it stored.
struct AppendMessages<'a> {
    ids: Vec<Uuid>,
    conversations: Vec<Uuid>,
    users: Vec<&'a str>,
    roles: Vec<&'a str>,
    contents: Vec<&'a str>,
    tool_calls: Vec<&'a StoredToolCalls>,
    client_ids: Vec<Option<&'a str>>,
    created: Vec<chrono::DateTime<chrono::Utc>>,
    reply_to: Vec<Option<Uuid>>,
}

impl<'a> AppendMessages<'a> {
    fn of(rows: &'a [MessageRow]) -> Self {
        Self {
            ids: rows.iter().map(|r| r.id).collect(),
            conversations: rows.iter().map(|r| r.conversation_id).collect(),
            users: rows.iter().map(|r| r.user_id.as_str()).collect(),
            roles: rows.iter().map(|r| r.role.as_str()).collect(),
            contents: rows.iter().map(|r| r.content.as_str()).collect(),
            tool_calls: rows.iter().map(|r| &r.tool_calls).collect(),
            client_ids: rows
                .iter()
                .map(|r| r.client_message_id.as_deref())
                .collect(),
            created: rows.iter().map(|r| r.created_at).collect(),
            reply_to: rows.iter().map(|r| r.reply_to).collect(),
        }
    }
}

impl diesel::query_builder::QueryId for AppendMessages<'_> {
    type QueryId = AppendMessages<'static>;
    const HAS_STATIC_QUERY_ID: bool = true;
}

impl diesel::query_builder::Query for AppendMessages<'_> {
    type SqlType = sql_types::Uuid;
}

impl QueryFragment<Pg> for AppendMessages<'_> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        use sql_types::{Array, Jsonb, Nullable, Text, Timestamptz};
        out.push_sql("WITH input AS (SELECT * FROM unnest(");
        out.push_bind_param::<Array<sql_types::Uuid>, _>(&self.ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<sql_types::Uuid>, _>(&self.conversations)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.users)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.roles)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Text>, _>(&self.contents)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Jsonb>, _>(&self.tool_calls)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<Text>>, _>(&self.client_ids)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Timestamptz>, _>(&self.created)?;
        out.push_sql(", ");
        out.push_bind_param::<Array<Nullable<sql_types::Uuid>>, _>(&self.reply_to)?;
        out.push_sql(
            ") AS input (id, conversation_id, user_id, role, content, tool_calls, \
             client_message_id, created_at, reply_to)), \
             bumped AS (UPDATE conversations \
             SET updated_at = GREATEST(conversations.updated_at, latest.at), \
             last_message_at = GREATEST(conversations.last_message_at, latest.at) \
             FROM (SELECT conversation_id, user_id, max(created_at) AS at FROM input \
             GROUP BY conversation_id, user_id) AS latest \
             WHERE conversations.id = latest.conversation_id \
             AND conversations.user_id = latest.user_id \
             RETURNING conversations.id, conversations.user_id) \
             INSERT INTO messages (id, conversation_id, user_id, role, content, tool_calls, \
             client_message_id, created_at, reply_to) \
             SELECT input.id, input.conversation_id, input.user_id, input.role, input.content, \
             input.tool_calls, input.client_message_id, input.created_at, input.reply_to \
             FROM input JOIN bumped ON bumped.id = input.conversation_id \
             AND bumped.user_id = input.user_id \
             ORDER BY input.created_at, input.id \
             RETURNING messages.id",
        );
        Ok(())
    }
}

impl RunQueryDsl<PgConnection> for AppendMessages<'_> {}

/// The same failure again, for each caller of a batch that failed as a whole.
fn same(e: &DomainError) -> DomainError {
    match e {
        DomainError::NotFound => DomainError::NotFound,
        DomainError::Validation(f) => DomainError::Validation(f.clone()),
        DomainError::Conflict(m) => DomainError::Conflict(m.clone()),
        DomainError::Erased => DomainError::Erased,
        DomainError::Unavailable(m) => DomainError::Unavailable(m.clone()),
        DomainError::RateLimited { retry_after_secs } => DomainError::RateLimited {
            retry_after_secs: *retry_after_secs,
        },
        DomainError::BadGateway(m) => DomainError::BadGateway(m.clone()),
        DomainError::Internal(e) => DomainError::Internal(anyhow::anyhow!("{e:#}")),
    }
}
