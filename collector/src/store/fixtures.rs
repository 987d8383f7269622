//! What the store's unit tests (and the newsroom's) start from: a store with one active site,
//! plausible reports and batches of them.

use super::{BatchOutcome, SiteRecord, SiteStatus, Store};
use pasopati_common::frame::{Batch, Limits};
use pasopati_common::pii::PiiGuard;
use pasopati_common::{Epoch, Priority, Report, ReportId, SiteId, SiteType, Timestamp};

/// A plausible time for test reports (2026-01-01T00:00:00Z): the collector refuses reports
/// from before 2020 or far in its future.
pub(crate) const T0: i64 = 1_767_225_600_000;

/// The site every test store has registered, active.
pub(crate) fn site() -> SiteId {
    SiteId::new("lapas-contoh").unwrap()
}

/// A store in a fresh directory, with [`site`] registered and active.
pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let record = SiteRecord::new(
        site(),
        "Lapas Contoh".into(),
        SiteType::Lapas,
        "Contoh".into(),
        SiteStatus::Active,
        Timestamp(0),
    );
    store.add_site(&record, "test").unwrap();
    (dir, store)
}

/// Report number `n`: its id ends in `n`, its title names it.
pub(crate) fn report(n: u64) -> Report {
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
pub(crate) fn batch(first: u64, n: u64) -> Batch {
    Batch {
        first_seq: first,
        reports: (first..first + n).map(report).collect(),
    }
}

/// Applies `batch` of `site` under `epoch` at `now`, with the default limits and PII guard.
pub(crate) fn apply(
    store: &Store,
    site: &SiteId,
    epoch: Epoch,
    batch: &Batch,
    now: Timestamp,
) -> BatchOutcome {
    store
        .apply_batch(
            site,
            epoch,
            batch,
            &Limits::default(),
            &PiiGuard::default(),
            now,
        )
        .unwrap()
}
