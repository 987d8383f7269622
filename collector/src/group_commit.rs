//! The group commit: every sync session's batches, of every site, go to one committer thread,
//! which takes whatever has queued up while its last commit ran, applies it all in one redb
//! write transaction ([`Store::apply_batches`]), fsyncs once, and only then answers each
//! session. When batches arrive one at a time nothing waits for company (a lone batch is
//! committed at once); when many sites drain together their batches share fsyncs, so the
//! collector's disk, not the number of sessions, sets the pace.
//!
//! The shape carries over to another store: a backend needs only an `apply_batches` that
//! judges the batches in order inside one transaction and commits once.

use crate::store::{BatchJob, BatchOutcome, Store, StoreError};
use pasopati_common::frame::Limits;
use pasopati_common::pii::PiiGuard;
use pasopati_common::profile;
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot};

/// The most batches one commit takes, and about the most report bytes: a group stays a few
/// megabytes, so one slow commit never holds a session's answer for long, and the buffers the
/// store writes a group from (kept from group to group) stay that size too. A commit here
/// costs its bytes more than its fsync (TESTING.md, "Bigger groups, measured and not needed"),
/// so larger groups would gain nothing.
const MAX_GROUP_BATCHES: usize = 64;
const MAX_GROUP_BYTES: usize = 8 * 1024 * 1024;

struct Job {
    batch: BatchJob,
    bytes: usize,
    answer: oneshot::Sender<Result<BatchOutcome, StoreError>>,
}

/// The sessions' way to the committer.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    jobs: mpsc::UnboundedSender<Job>,
}

impl GroupCommit {
    /// Starts the committer thread for `store`. It holds the store only while it commits, so
    /// the store closes when its owners drop it; the thread ends when every `GroupCommit` is
    /// dropped.
    pub(crate) fn start(
        store: &Arc<Store>,
        limits: Limits,
        guard: PiiGuard,
    ) -> std::io::Result<GroupCommit> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let store = Arc::downgrade(store);
        std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || commit_loop(store, limits, guard, queue))?;
        Ok(GroupCommit { jobs })
    }

    /// Queues `batch` for the next group commit at once and returns its outcome to come, once
    /// it is durable. Batches are applied in the order they are queued, so a session that
    /// queues its next batch before the last one's outcome keeps its batches in order.
    pub(crate) fn enqueue(
        &self,
        batch: BatchJob,
    ) -> Result<
        impl std::future::Future<Output = Result<BatchOutcome, StoreError>> + Send,
        StoreError,
    > {
        let bytes = batch
            .batch
            .reports
            .iter()
            .map(|r| r.title.len() + r.body.len())
            .sum();
        let (answer, outcome) = oneshot::channel();
        let waiting = profile::COLLECTOR_QUEUE.start();
        self.jobs
            .send(Job {
                batch,
                bytes,
                answer,
            })
            .map_err(|_| StoreError::Storage("the group commit has stopped".into()))?;
        Ok(async move {
            let outcome = outcome
                .await
                .map_err(|_| StoreError::Storage("the group commit stopped mid-batch".into()))?;
            drop(waiting);
            outcome
        })
    }
}

fn commit_loop(
    store: Weak<Store>,
    limits: Limits,
    guard: PiiGuard,
    mut queue: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = queue.blocking_recv() {
        let mut bytes = first.bytes;
        let mut group = vec![first];
        while group.len() < MAX_GROUP_BATCHES && bytes < MAX_GROUP_BYTES {
            match queue.try_recv() {
                Ok(job) => {
                    bytes += job.bytes;
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let (batches, answers): (Vec<BatchJob>, Vec<_>) =
            group.into_iter().map(|j| (j.batch, j.answer)).unzip();
        let outcomes = match store.upgrade() {
            Some(store) => store.apply_batches(batches, &limits, &guard),
            None => Err(StoreError::Storage("the store is closed".into())),
        };
        if outcomes.is_ok() {
            pasopati_common::faults::failpoint("collector.after_commit");
        }
        match outcomes {
            Ok(outcomes) => {
                for (answer, outcome) in answers.into_iter().zip(outcomes) {
                    // A session that ended meanwhile has nobody to tell; its agent resends.
                    let _ = answer.send(Ok(outcome));
                }
            }
            Err(e) => {
                for answer in answers {
                    let _ = answer.send(Err(e.for_another()));
                }
            }
        }
    }
}
