//! Test material the crates share: a plausible time, numbered reports and batches of them, a
//! sample frame, and a small seeded generator.
//!
//! Compiled for this crate's own tests and, through the `fixtures` feature, for the tests of
//! the crates above (the collector's store, the stream codec, the end-to-end harness). Release
//! builds and the packages leave it out.

use crate::frame::{AgentFrame, Batch, Hello};
use crate::{Epoch, Priority, Report, ReportId, Timestamp};

/// A plausible time for test reports (2026-01-01T00:00:00Z): the collector refuses reports
/// from before 2020 or far in its future.
pub const T0: i64 = 1_767_225_600_000;

/// A heartbeat of an agent of `version` whose clock read `agent_time`, with nothing in its
/// backlog and a machine at rest.
pub fn heartbeat(agent_time: Timestamp, version: &str) -> crate::frame::Heartbeat {
    crate::frame::Heartbeat {
        agent_time,
        agent_version: version.into(),
        backlog: 0,
        oldest_unsent_at: None,
        last_sync_at: None,
        cpu_percent: 1.0,
        mem_used_bytes: 1,
        disk_free_bytes: 1,
        uptime_secs: 1,
        quota_full: false,
    }
}

/// Report number `n`, filed at [`T0`]: its id ends in `n`, its title names it.
pub fn report(n: u64) -> Report {
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    Report {
        id: ReportId(id),
        category: "humas".into(),
        priority: Priority::Normal,
        title: format!("Laporan {n}"),
        body: "Isi".into(),
        occurred_at: Timestamp(T0),
        filed_at: Timestamp(T0),
        revision: 0,
        retraction: None,
        attachments: Vec::new(),
    }
}

/// A batch of `n` reports from seq `first`, report `k` at seq `k`.
pub fn batch(first: u64, n: u64) -> Batch {
    Batch {
        first_seq: first,
        reports: (first..first + n).map(report).collect(),
    }
}

/// An agent's `Hello` of epoch 42 with nothing sent yet, for the codec's tests.
pub fn hello() -> AgentFrame {
    AgentFrame::Hello(Hello {
        proto: 1,
        epoch: Epoch(42),
        oldest_unacked: 1,
        oldest_retained: 1,
        next_seq: 1,
        agent_version: "0.1.0".into(),
        agent_time: Timestamp(7),
    })
}

/// A small seeded generator (SplitMix64): deterministic, no crate needed. The protocol's
/// simulation draws its faults from it, and the network proxy of the end-to-end tests its
/// datagrams' fates, so a failing seed replays the same run.
#[derive(Debug, Clone)]
pub struct SimRng(u64);

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}
