//! What the store's unit tests (and the newsroom's) start from: a store with one active site,
//! plausible reports and batches of them (the protocol's shared fixtures).

use super::{BatchOutcome, SiteRecord, SiteStatus, Store};
pub(crate) use pasopati_common::fixtures::{batch, report, T0};
use pasopati_common::frame::{Batch, Limits};
use pasopati_common::pii::PiiGuard;
use pasopati_common::{Epoch, SiteId, SiteType, Timestamp};

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

/// The actions of the store's audit log, oldest first.
pub(crate) fn audit_actions(store: &Store) -> Vec<String> {
    store
        .audit_log()
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.unwrap().action)
        .collect()
}
