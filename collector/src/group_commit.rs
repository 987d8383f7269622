//! The group commit: every sync session's batches, of every site, go to one committer thread,
//! which takes whatever has queued up while its last commit ran, applies it all in one redb
//! write transaction ([`Store::apply_batches`]), fsyncs once, and only then answers each
//! session. When batches arrive one at a time nothing waits for company (a lone batch is
//! committed at once); when many sites drain together their batches share fsyncs, so the
//! collector's disk, not the number of sessions, sets the pace.
//!
//! The shape carries over to another store: a backend needs only an `apply_batches` that
//! judges the batches in order inside one transaction and commits once.
//!
//! A failed commit fails every batch in its group. A session may already have queued its next
//! batch behind the failed one; that batch is answered with the failure too, never stored
//! after the hole ([`FailedSessions`]).

use crate::store::{BatchJob, BatchOutcome, Store, StoreError};
use pasopati_common::frame::Limits;
use pasopati_common::pii::PiiGuard;
use pasopati_common::profile;
use pasopati_common::{Epoch, Seq, SiteId};
use std::collections::HashMap;
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
    let mut failed = FailedSessions::default();
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
        let (group, behind): (Vec<Job>, Vec<Job>) = group
            .into_iter()
            .partition(|job| !failed.behind_a_failure(&job.batch));
        for job in behind {
            let first_seq = job.batch.batch.first_seq;
            let _ = job
                .answer
                .send(Err(StoreError::BehindAFailedBatch(first_seq)));
        }
        if group.is_empty() {
            continue;
        }
        let (batches, answers): (Vec<BatchJob>, Vec<_>) =
            group.into_iter().map(|j| (j.batch, j.answer)).unzip();
        let sessions: Vec<_> = batches
            .iter()
            .map(|b| (b.site.clone(), b.epoch, b.batch.first_seq))
            .collect();
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
                for (site, epoch, first_seq) in sessions {
                    failed.failed(site, epoch, first_seq);
                }
                for answer in answers {
                    let _ = answer.send(Err(e.for_another()));
                }
            }
        }
    }
}

/// The sessions whose batch a commit failed: (site, epoch) → the first seq of the earliest
/// batch that failed. A session may have queued its next batch before it heard; stored after
/// the hole, the rules would take that batch for seqs the agent skipped and record a gap that
/// is none (the agent resends both). PostgreSQL's failures are often passing (a failover, a
/// dropped connection), so the next group would store it. Such a batch is answered with the
/// failure instead; the session's resend (from at most the failed seq) clears the mark.
#[derive(Default)]
struct FailedSessions(HashMap<(SiteId, Epoch), Seq>);

impl FailedSessions {
    fn failed(&mut self, site: SiteId, epoch: Epoch, first_seq: Seq) {
        let from = self.0.entry((site, epoch)).or_insert(first_seq);
        *from = (*from).min(first_seq);
    }

    /// Whether `job` must not be stored: it follows a failed batch of its session.
    fn behind_a_failure(&mut self, job: &BatchJob) -> bool {
        let key = (job.site.clone(), job.epoch);
        let Some(&from) = self.0.get(&key) else {
            return false;
        };
        if job.batch.first_seq <= from {
            self.0.remove(&key);
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_common::frame::Batch;

    fn job(site: &str, epoch: u64, first_seq: Seq) -> BatchJob {
        BatchJob {
            site: SiteId::new(site).unwrap(),
            epoch: Epoch(epoch),
            batch: Batch {
                first_seq,
                reports: Vec::new(),
            },
            now: pasopati_common::Timestamp(0),
            examined: None,
        }
    }

    #[test]
    fn a_batch_queued_behind_a_failed_one_is_not_stored_until_the_resend() {
        let mut failed = FailedSessions::default();
        assert!(!failed.behind_a_failure(&job("lapas-a", 1, 1)));
        failed.failed(SiteId::new("lapas-a").unwrap(), Epoch(1), 101);
        // The session's next batch, queued before it heard, is turned away.
        assert!(failed.behind_a_failure(&job("lapas-a", 1, 201)));
        assert!(failed.behind_a_failure(&job("lapas-a", 1, 301)));
        // Other sites, and the same site's other epoch, are not held up.
        assert!(!failed.behind_a_failure(&job("lapas-b", 1, 201)));
        assert!(!failed.behind_a_failure(&job("lapas-a", 2, 201)));
        // The resend from the failed seq goes through and clears the mark.
        assert!(!failed.behind_a_failure(&job("lapas-a", 1, 101)));
        assert!(!failed.behind_a_failure(&job("lapas-a", 1, 201)));
        // Two failures in a row keep the earlier seq.
        failed.failed(SiteId::new("lapas-a").unwrap(), Epoch(1), 201);
        failed.failed(SiteId::new("lapas-a").unwrap(), Epoch(1), 101);
        assert!(failed.behind_a_failure(&job("lapas-a", 1, 201)));
        assert!(!failed.behind_a_failure(&job("lapas-a", 1, 1)));
    }

    #[test]
    fn every_batch_of_a_failed_group_hears_the_failure_in_its_own_words() {
        let lost = StoreError::Database("connection closed".into());
        let told = lost.for_another().to_string();
        assert_eq!(told, lost.to_string());
        assert!(!told.contains("disk"), "{told}");
        assert!(matches!(
            StoreError::NeedsReopen.for_another(),
            StoreError::NeedsReopen
        ));
    }
}
