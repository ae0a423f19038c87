//! The indexer drains the vector outbox into the semantic index.
//!
//! A job names an entity, not a change: the indexer reads the entity as it is now and
//! upserts its vector, or deletes the vector when the entity is gone. Replaying a job is
//! therefore harmless, and jobs can be retried, reordered or run twice (by two instances)
//! without the index drifting from PostgreSQL. A batch that fails is retried as a whole with
//! exponential backoff; the rows stay in the outbox until the index has them.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::assistant::{DocKind, Document, SemanticIndex};
use super::error::{DomainError, DomainResult};
use super::ports::{Outbox, OutboxJob, OutboxTarget};
use super::values::UserId;

#[derive(Debug, Clone)]
pub struct IndexerSettings {
    /// Jobs claimed at once.
    pub batch_size: i64,
    /// How often the outbox is polled when nothing wakes the indexer (writes of this process
    /// wake it at once; this catches other instances' writes and retries that come due).
    pub poll_interval: Duration,
    /// A claimed batch is hidden from other workers this long.
    pub lease: Duration,
    /// Longest wait between retries of a failing job.
    pub max_retry_delay: Duration,
    /// After a wake-up, how long to let more writes gather before draining: one vector-store
    /// write (and flush) for many documents instead of one each, at the cost of this much
    /// indexing delay.
    pub gather: Duration,
}

impl Default for IndexerSettings {
    fn default() -> Self {
        Self {
            batch_size: 512,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_retry_delay: Duration::from_secs(300),
            gather: Duration::from_millis(50),
        }
    }
}

pub struct Indexer {
    pub outbox: Arc<dyn Outbox>,
    pub index: Arc<dyn SemanticIndex>,
    pub wake: Arc<Notify>,
    pub settings: IndexerSettings,
}

impl Indexer {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        tracing::debug!("indexer started");
        let mut failing = false;
        loop {
            let outcome = tokio::select! {
                () = stop.cancelled() => break,
                outcome = self.drain_once() => outcome,
            };
            let more = match outcome {
                Ok(done) => {
                    if failing {
                        tracing::info!("indexer recovered");
                        failing = false;
                    }
                    done as i64 == self.settings.batch_size
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "indexing failed; the jobs will be retried");
                    }
                    failing = true;
                    false
                }
            };
            if more {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => break,
                () = self.wake.notified() => {
                    tokio::select! {
                        () = stop.cancelled() => break,
                        () = tokio::time::sleep(self.settings.gather) => {}
                    }
                }
                () = tokio::time::sleep(self.settings.poll_interval) => {}
            }
        }
        tracing::debug!("indexer stopped");
    }

    /// Claims one batch and applies it; returns how many jobs it claimed.
    pub async fn drain_once(&self) -> DomainResult<usize> {
        let jobs = self
            .outbox
            .claim(self.settings.batch_size, self.settings.lease)
            .await?;
        if jobs.is_empty() {
            return Ok(0);
        }
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        match self.apply(&jobs).await {
            Ok(()) => {
                self.outbox.complete(&ids).await?;
                tracing::debug!(jobs = ids.len(), "indexed");
                Ok(ids.len())
            }
            Err(e) => {
                self.outbox
                    .retry_later(&ids, &e.to_string(), self.settings.max_retry_delay)
                    .await?;
                Err(e)
            }
        }
    }

    async fn apply(&self, jobs: &[OutboxJob]) -> DomainResult<()> {
        // Erased users first: an erasure queued before a re-created user's new data must not
        // wipe that data.
        let erased: HashSet<&UserId> = jobs
            .iter()
            .filter(|j| j.target == OutboxTarget::User)
            .map(|j| &j.user)
            .collect();
        for user in erased {
            self.index.forget_user(user).await?;
        }
        let mut targets: Vec<(UserId, DocKind, Uuid)> = jobs
            .iter()
            .filter_map(|j| match j.target {
                OutboxTarget::Document(kind, id) => Some((j.user.clone(), kind, id)),
                OutboxTarget::User => None,
            })
            .collect();
        targets.sort_by_key(|(_, _, id)| *id);
        targets.dedup();
        if targets.is_empty() {
            return Ok(());
        }
        let documents: Vec<Document> = self.outbox.documents(&targets).await?;
        let present: Vec<Document> = documents
            .into_iter()
            .filter(|d| !d.text.is_empty())
            .collect();
        let indexed: HashSet<Uuid> = present.iter().map(|d| d.id).collect();
        let mut gone: HashMap<&UserId, Vec<Uuid>> = HashMap::new();
        for (user, _, id) in &targets {
            if !indexed.contains(id) {
                gone.entry(user).or_default().push(*id);
            }
        }
        if !present.is_empty() {
            self.index.index(&present).await?;
        }
        for (user, ids) in gone {
            self.index.forget(user, &ids).await?;
        }
        Ok(())
    }

    /// Rebuilds the index from every stored document, kind by kind in id order, starting
    /// after `from` (where an interrupted rebuild got to; the start when `None`). After each
    /// batch, `checkpoint` is told the kind and last id done and how many documents this run
    /// did, so that an interrupted rebuild can resume there.
    pub async fn reindex_all(
        outbox: &dyn Outbox,
        index: &dyn SemanticIndex,
        batch: i64,
        from: Option<(DocKind, Option<Uuid>)>,
        mut checkpoint: impl AsyncFnMut(DocKind, Uuid, u64) -> DomainResult<()>,
    ) -> DomainResult<u64> {
        let mut done = 0u64;
        let start = from.map_or(0, |(kind, _)| {
            DocKind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
        });
        for (i, kind) in DocKind::ALL.into_iter().enumerate().skip(start) {
            let mut after = if i == start {
                from.and_then(|(_, id)| id)
            } else {
                None
            };
            loop {
                let documents = outbox.scan(kind, after, batch).await?;
                let Some(last) = documents.last().map(|d| d.id) else {
                    break;
                };
                after = Some(last);
                let count = documents.len() as u64;
                let present: Vec<Document> = documents
                    .into_iter()
                    .filter(|d| !d.text.is_empty())
                    .collect();
                index.index(&present).await.map_err(DomainError::from)?;
                done += count;
                checkpoint(kind, last, done).await?;
            }
        }
        Ok(done)
    }
}
