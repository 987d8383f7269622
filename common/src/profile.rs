//! Where the sync's time goes: a fixed set of named stages, each with a call count, a total
//! time and its slowest call, kept in process-wide atomic counters so that timing costs two
//! clock reads and three atomic operations per stage and needs no subscriber. `bench-sync`
//! prints the table, and the collector's `/metrics` exports it, so a regression shows which
//! stage grew and a stall which stage held it.
//!
//! A stage is timed around a closure ([`Stage::time`]) or from a [`Stage::start`] until its
//! guard drops. Stages may nest (the collector's commit is inside its batch transaction); the
//! table says which contain which.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// One named stage and what it cost so far.
#[derive(Debug)]
pub struct Stage {
    name: &'static str,
    calls: AtomicU64,
    nanos: AtomicU64,
    max_nanos: AtomicU64,
    items: AtomicU64,
}

impl Stage {
    const fn new(name: &'static str) -> Stage {
        Stage {
            name,
            calls: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            items: AtomicU64::new(0),
        }
    }

    /// Runs `f`, counting its time against this stage.
    pub fn time<T>(&self, f: impl FnOnce() -> T) -> T {
        let _timer = self.start();
        f()
    }

    /// Starts timing; the time runs until the returned guard drops.
    pub fn start(&self) -> StageTimer<'_> {
        StageTimer {
            stage: self,
            started: Instant::now(),
        }
    }

    /// Counts `n` items (reports, bytes) handled by this stage, for per-item figures.
    pub fn add_items(&self, n: u64) {
        self.items.fetch_add(n, Ordering::Relaxed);
    }

    /// The stage's figures so far.
    pub fn snapshot(&self) -> StageFigures {
        StageFigures {
            name: self.name,
            calls: self.calls.load(Ordering::Relaxed),
            nanos: self.nanos.load(Ordering::Relaxed),
            max_nanos: self.max_nanos.load(Ordering::Relaxed),
            items: self.items.load(Ordering::Relaxed),
        }
    }

    fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        self.nanos.store(0, Ordering::Relaxed);
        self.max_nanos.store(0, Ordering::Relaxed);
        self.items.store(0, Ordering::Relaxed);
    }
}

/// Times a stage until dropped.
#[derive(Debug)]
pub struct StageTimer<'s> {
    stage: &'s Stage,
    started: Instant,
}

impl Drop for StageTimer<'_> {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.stage.nanos.fetch_add(nanos, Ordering::Relaxed);
        self.stage.max_nanos.fetch_max(nanos, Ordering::Relaxed);
        self.stage.calls.fetch_add(1, Ordering::Relaxed);
    }
}

/// A stage's count, total time and items at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageFigures {
    pub name: &'static str,
    pub calls: u64,
    pub nanos: u64,
    /// The slowest single call.
    pub max_nanos: u64,
    pub items: u64,
}

/// A report being filed at the site: encoding it, then its outbox write transaction, from
/// asking for the write lock until the commit's fsync returns (what `pasopati-agent report`
/// waits for).
pub static AGENT_FILE: Stage = Stage::new("agent.file");
/// Within it, the wait for the outbox's write lock, which the sync's transactions hold in turn.
pub static AGENT_FILE_WAIT: Stage = Stage::new("agent.file_wait_lock");
/// Within it, the commit: the pages written and the fsync.
pub static AGENT_FILE_COMMIT: Stage = Stage::new("agent.file_commit");
/// The agent giving seqs to queued reports: reading them, then its outbox write transaction,
/// fsync included.
pub static AGENT_STAGE: Stage = Stage::new("agent.stage_seqs");
/// Within it, the write transaction alone, from asking for the lock (which a filing may hold)
/// to the commit: what a report being filed meanwhile may wait for.
pub static AGENT_STAGE_LOCKED: Stage = Stage::new("agent.stage_seqs_locked");
/// The agent reading already sequenced reports back from its sent log (resends, staged ahead).
pub static AGENT_READ_SENT: Stage = Stage::new("agent.read_sent");
/// The agent encoding a batch and handing it to QUIC.
pub static AGENT_SEND: Stage = Stage::new("agent.encode_send");
/// The agent recording its batches' plain acknowledgements in its outbox during a session (a
/// few batches at a time, `agent/src/sync/acks.rs`).
pub static AGENT_ACK: Stage = Stage::new("agent.record_ack");
/// The write transaction of every acknowledgement, plain or with verdicts, from asking for the
/// lock (which a filing may hold) to the commit: what a report being filed meanwhile may wait
/// for. (`agent.record_ack` times plain acknowledgements only.)
pub static AGENT_ACK_LOCKED: Stage = Stage::new("agent.record_ack_locked");
/// Decoding a frame read from a stream (bincode, with its size limit), on either side.
pub static FRAME_DECODE: Stage = Stage::new("frame.decode");
/// The collector examining a batch before the store: `Report::check`, hashing and the PII
/// guard, in the session, outside the store's one writer.
pub static COLLECTOR_EXAMINE: Stage = Stage::new("collector.examine");
/// The collector waiting for the store to take a batch (the group commit's queue).
pub static COLLECTOR_QUEUE: Stage = Stage::new("collector.queue_wait");
/// The batch rules against the store: positions, ownership, revisions and the ledger's writes.
pub static COLLECTOR_RULES: Stage = Stage::new("collector.rules");
/// The PII guard alone (inside the examination).
pub static COLLECTOR_PII: Stage = Stage::new("collector.pii_scan");
/// The store's commit of a group of batches, fsync included.
pub static COLLECTOR_COMMIT: Stage = Stage::new("collector.commit");
/// Within it, on redb, writing the group's reports to the report log and syncing them, which
/// comes before the redb commit that names them.
pub static COLLECTOR_LOG_WRITE: Stage = Stage::new("collector.log_write");
/// The collector encoding and sending an answer.
pub static COLLECTOR_REPLY: Stage = Stage::new("collector.reply");

/// Every stage, in the order a batch meets them.
pub fn stages() -> [&'static Stage; 17] {
    [
        &AGENT_FILE,
        &AGENT_FILE_WAIT,
        &AGENT_FILE_COMMIT,
        &AGENT_STAGE,
        &AGENT_STAGE_LOCKED,
        &AGENT_READ_SENT,
        &AGENT_SEND,
        &FRAME_DECODE,
        &COLLECTOR_EXAMINE,
        &COLLECTOR_PII,
        &COLLECTOR_QUEUE,
        &COLLECTOR_RULES,
        &COLLECTOR_COMMIT,
        &COLLECTOR_LOG_WRITE,
        &COLLECTOR_REPLY,
        &AGENT_ACK,
        &AGENT_ACK_LOCKED,
    ]
}

/// Every stage's figures.
pub fn snapshot() -> Vec<StageFigures> {
    stages().iter().map(|s| s.snapshot()).collect()
}

/// Zeroes every stage (a benchmark's fresh start).
pub fn reset() {
    for stage in stages() {
        stage.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_counts_calls_time_and_items() {
        static S: Stage = Stage::new("test");
        S.time(|| std::thread::sleep(std::time::Duration::from_millis(2)));
        {
            let _t = S.start();
            S.add_items(3);
        }
        let f = S.snapshot();
        assert_eq!((f.name, f.calls, f.items), ("test", 2, 3));
        assert!(f.nanos >= 2_000_000, "{f:?}");
        assert!(f.max_nanos >= 2_000_000 && f.max_nanos <= f.nanos, "{f:?}");
        S.reset();
        assert_eq!((S.snapshot().calls, S.snapshot().max_nanos), (0, 0));
    }
}
