//! A consistent copy of the whole store, taken while the collector keeps writing: the base of
//! `pasopati-collector backup` (`crate::backup`).
//!
//! redb gives a read transaction a fixed view of the database, and writers go on beside it; the
//! copy reads every table in one read transaction and writes it into a new redb file. Every
//! table of the store is named here, and a table the file holds that is not named makes the
//! copy fail: a table added later without a line here would otherwise be left out of every
//! backup without a word.

use super::{
    audit, ingest, media, notifications, publications, responses, risk, sites, sources,
    story_edits, users,
};
use super::{
    report_log, RedbStore, StoreError, BY_ID, HWM, INDEX_LATE, META, QUARANTINE, REPORTS, SITES,
};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use std::path::Path;

/// Entries copied between commits of the copy (the copy's memory stays bounded; only its last
/// commit is durable, and the file is not used before it).
const ENTRIES_PER_COMMIT: u64 = 50_000;

/// What a copy holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub tables: usize,
    pub entries: u64,
    /// Stored report revisions (quarantined ones not counted).
    pub reports: u64,
}

/// The copy under way: the destination and its open write transaction. (The transaction is
/// declared first so that it is dropped first: dropping the database while one of its write
/// transactions is alive would wait for it forever.)
struct Copy {
    txn: Option<redb::WriteTransaction>,
    db: Database,
    uncommitted: u64,
    summary: SnapshotSummary,
    names: Vec<String>,
}

impl Copy {
    /// Copies a table as it is.
    fn table<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        source: &redb::ReadTransaction,
        definition: TableDefinition<K, V>,
    ) -> Result<(), StoreError> {
        self.table_with(source, definition, |k, v, to| {
            to.insert(k.value(), v.value())?;
            Ok(())
        })
    }

    /// Copies a table, each row by `row` (which may write it changed, or leave it out).
    fn table_with<K: redb::Key + 'static, V: redb::Value + 'static>(
        &mut self,
        source: &redb::ReadTransaction,
        definition: TableDefinition<K, V>,
        mut row: impl FnMut(
            redb::AccessGuard<'_, K>,
            redb::AccessGuard<'_, V>,
            &mut redb::Table<'_, K, V>,
        ) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.names.push(definition.name().to_owned());
        let from = match source.open_table(definition) {
            Ok(t) => t,
            // Made on first use (the sessions' table): nothing to copy.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.summary.tables += 1;
        let mut rows = from.iter()?;
        loop {
            let txn = match self.txn.as_ref() {
                Some(t) => t,
                None => {
                    let mut t = self.db.begin_write()?;
                    t.set_durability(redb::Durability::None)
                        .map_err(|e| StoreError::Storage(e.to_string()))?;
                    self.txn.insert(t)
                }
            };
            let mut to = txn.open_table(definition)?;
            let mut more = false;
            for entry in rows.by_ref() {
                let (k, v) = entry?;
                row(k, v, &mut to)?;
                self.summary.entries += 1;
                self.uncommitted += 1;
                if self.uncommitted >= ENTRIES_PER_COMMIT {
                    more = true;
                    break;
                }
            }
            drop(to);
            if !more {
                return Ok(());
            }
            if let Some(t) = self.txn.take() {
                t.commit()?;
            }
            self.uncommitted = 0;
        }
    }
}

impl RedbStore {
    /// Writes a consistent copy of the store to a new redb file at `path` (which must not
    /// exist), while other transactions go on.
    pub fn snapshot_to(&self, path: &Path) -> Result<SnapshotSummary, StoreError> {
        let open_err = |e: &dyn std::fmt::Display| StoreError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        };
        if path.exists() {
            return Err(open_err(&"the file exists already"));
        }
        let db = Database::create(path).map_err(|e| open_err(&e))?;
        let source = self.db.begin_read()?;
        let mut copy = Copy {
            txn: None,
            db,
            uncommitted: 0,
            summary: SnapshotSummary::default(),
            names: Vec::new(),
        };
        // The copy holds every report inline, so it needs no report log: the log's marks in
        // `meta` stay behind, and the store opened from the copy begins a log of its own.
        copy.table_with(&source, META, |k, v, to| {
            if !report_log::is_log_mark(k.value()) {
                to.insert(k.value(), v.value())?;
            }
            Ok(())
        })?;
        copy.table(&source, SITES)?;
        copy.table(&source, sites::TOKENS)?;
        copy.table(&source, HWM)?;
        let log = self.log.reader();
        copy.table_with(&source, REPORTS, |k, v, to| {
            to.insert(k.value(), &*log.record(v.value())?)?;
            Ok(())
        })?;
        copy.table(&source, QUARANTINE)?;
        copy.table(&source, BY_ID)?;
        copy.table(&source, INDEX_LATE)?;
        copy.table(&source, ingest::POSITION_RUNS)?;
        copy.table(&source, ingest::GAPS)?;
        copy.table(&source, ingest::VERDICTS)?;
        copy.table(&source, ingest::REJECTIONS)?;
        copy.table(&source, ingest::HEARTBEATS)?;
        copy.table(&source, audit::AUDIT)?;
        copy.table(&source, media::ATTACHMENTS_EXPECTED)?;
        copy.table(&source, media::ATTACHMENTS)?;
        copy.table(&source, media::MEDIA)?;
        copy.table(&source, media::MEDIA_IDS)?;
        copy.table(&source, publications::CLAIMS)?;
        copy.table(&source, publications::PUBLICATIONS)?;
        copy.table(&source, responses::RESPONSES)?;
        copy.table(&source, notifications::NOTIFICATIONS)?;
        copy.table(&source, notifications::NOTIFY_ACTIVE)?;
        copy.table(&source, users::USERS)?;
        copy.table(&source, users::API_TOKENS)?;
        copy.table(&source, users::API_TOKEN_INFO)?;
        copy.table(&source, users::SESSIONS)?;
        copy.table(&source, sources::MEDIA_ENGAGEMENT)?;
        copy.table(&source, sources::SOURCE_HEALTH)?;
        copy.table(&source, story_edits::STORY_EDITS)?;
        copy.table(&source, risk::RISK)?;
        copy.table(&source, risk::RISK_DAYS)?;
        copy.table(&source, super::alerts::ALERTS)?;
        copy.table(&source, super::alerts::ALERT_KEYS)?;
        copy.table(&source, super::fleet::FLEET)?;
        for table in source.list_tables()? {
            if !copy.names.iter().any(|n| n == table.name()) {
                let _ = std::fs::remove_file(path);
                return Err(StoreError::Storage(format!(
                    "the store holds a table `{}` the backup does not know; this is a bug of this version: report it, and until then stop the collector and copy collector.redb and collector.reports.log together",
                    table.name()
                )));
            }
        }
        let mut last = match copy.txn.take() {
            Some(t) => t,
            None => copy.db.begin_write()?,
        };
        last.set_durability(redb::Durability::Immediate)
            .map_err(|e| StoreError::Storage(e.to_string()))?;
        last.commit()?;
        copy.summary.reports = source.open_table(REPORTS)?.len()?;
        Ok(copy.summary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{apply, batch, redb_store as store, site, T0};
    use pasopati_common::{Epoch, Timestamp};

    #[test]
    fn a_copy_holds_every_table_as_it_was_when_the_copy_began() {
        let (dir, s) = store();
        apply(&s, &site(), Epoch(1), &batch(1, 30), Timestamp(T0 + 10));
        let out = dir.path().join("copy.redb");
        let summary = s.snapshot_to(&out).unwrap();
        assert_eq!(summary.reports, 30);
        // Written after the copy: not in it.
        apply(&s, &site(), Epoch(1), &batch(31, 5), Timestamp(T0 + 20));
        assert!(
            s.snapshot_to(&out).is_err(),
            "an existing file is never overwritten"
        );
        let copy = Database::open(&out).unwrap();
        let read = copy.begin_read().unwrap();
        assert_eq!(read.open_table(REPORTS).unwrap().len().unwrap(), 30);
        let names = |db: &redb::ReadTransaction| {
            let mut n: Vec<String> = db
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            n.sort();
            n
        };
        let live = s.as_redb().unwrap().db.begin_read().unwrap();
        assert_eq!(names(&read), names(&live));
        assert_eq!(
            read.open_table(audit::AUDIT).unwrap().len().unwrap(),
            live.open_table(audit::AUDIT).unwrap().len().unwrap()
        );
        // The copy opens as a store and reads the same reports.
        drop((read, copy));
        let restored_dir = tempfile::tempdir().unwrap();
        std::fs::copy(&out, restored_dir.path().join(crate::store::STORE_FILE)).unwrap();
        let restored = crate::store::Store::open(restored_dir.path()).unwrap();
        assert_eq!(restored.report_count().unwrap(), 30);
        assert!(restored.verify_audit().unwrap().is_ok());
    }

    #[test]
    fn a_table_the_copy_does_not_know_fails_the_copy() {
        let (dir, s) = store();
        let txn = s.as_redb().unwrap().db.begin_write().unwrap();
        txn.open_table(TableDefinition::<u64, u64>::new("unknown_later_table"))
            .unwrap()
            .insert(1, 1)
            .unwrap();
        txn.commit().unwrap();
        let out = dir.path().join("copy.redb");
        let err = s.snapshot_to(&out).unwrap_err().to_string();
        assert!(err.contains("unknown_later_table"), "{err}");
        assert!(!out.exists());
    }
}
