//! What the store's unit tests (and the newsroom's) start from: a store with one active site,
//! plausible reports and batches of them (the protocol's shared fixtures).

use super::pg::PgOptions;
use super::{BatchOutcome, SiteRecord, SiteStatus, Store, StoreLocation};
pub(crate) use pasopati_common::fixtures::{batch, report, T0};
use pasopati_common::frame::{Batch, Limits};
use pasopati_common::pii::PiiGuard;
use pasopati_common::{Epoch, SiteId, SiteType, Timestamp};
use std::path::Path;

/// The site every test store has registered, active.
pub(crate) fn site() -> SiteId {
    SiteId::new("lapas-contoh").unwrap()
}

/// The store of the test directory `dir`, on the backend `PASOPATI_TEST_STORE` names:
/// `postgres` (a new database on the test process's shared PostgreSQL server, remembered in
/// `dir` so that opening it again finds the same one) or, by default, redb.
pub(crate) fn open(dir: &Path) -> Store {
    if std::env::var("PASOPATI_TEST_STORE").as_deref() != Ok("postgres") {
        return Store::open(dir).unwrap();
    }
    let remembered = dir.join("test-store-url");
    let url = match std::fs::read_to_string(&remembered) {
        Ok(url) => url,
        Err(_) => {
            let url = pasopati_common::pgtest::fresh_database().unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(&remembered, &url).unwrap();
            url
        }
    };
    let options = PgOptions {
        url,
        ..PgOptions::default()
    };
    Store::open_at(&StoreLocation::Postgres(options), dir).unwrap_or_else(|e| panic!("{e}"))
}

/// A store in a fresh directory, with [`site`] registered and active.
pub(crate) fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    with_site(dir, store)
}

/// Like [`store`], always on redb (for what only the embedded store does: its file copy).
pub(crate) fn redb_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    with_site(dir, store)
}

/// `store` in `dir` with [`site`] registered and active.
pub(crate) fn with_site(dir: tempfile::TempDir, store: Store) -> (tempfile::TempDir, Store) {
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
