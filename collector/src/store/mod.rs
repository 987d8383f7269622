//! The collector's store: everything the collector keeps, in one redb database
//! (`collector.redb`) and, beside it, the report log that holds the stored reports' bytes
//! (`collector.reports.log`, `report_log.rs`); one source file per domain:
//!
//! - `ingest.rs`: how reports come in: [`Store::apply_batch`], the exactly-once transaction (the
//!   redb `Ledger` of `pasopati_common::ingest`'s rules), high-water marks, `Hello` and heartbeat
//!   records, gaps and rejections.
//! - `reports.rs`: the reports as kept: stored revisions, the quarantine (release, purge) and
//!   the queries the CLI and the dashboard list them with.
//! - `sites.rs`: sites, their certificates and enrollment tokens.
//! - `media.rs`: media items and attachments.
//! - `users.rs`: dashboard users, their sessions and API tokens.
//! - `publications.rs`: the claims register and press releases.
//! - `responses.rs`: the units' official responses to stories.
//! - `notifications.rs`: the notification outbox and the notifier's cursor.
//! - `story_edits.rs`: analysts' merges and splits of stories.
//! - `risk.rs`: the daily risk scores of UPTs and Kanwil.
//! - `alerts.rs`: the alerts the media desk raised, each once, in the order raised.
//! - `sources.rs`: the engagement of social media items and the health of polled sources.
//! - `audit.rs`: the hash-chained audit log, appended in the same transaction as the change it
//!   records.
//! - `snapshot.rs`: a consistent copy of every table while writers go on (for backups).
//!
//! Every batch is applied in a single write transaction that stores the new reports and advances
//! the high-water mark together, committed with `Durability::Immediate` before the ack is sent.
//! That is the whole of the collector's exactly-once argument: a crash before the commit loses
//! the batch and the hwm together (the agent resends), a crash after it loses only the ack (the
//! resend is recognised as a replay). The reports' bytes go to the report log first, synced
//! before that commit, so the commit never names bytes a crash could take (`report_log.rs`).
//!
//! # The seam for another backend
//!
//! [`Store`] is the only way into the collector's data. Its methods take and return the plain
//! record types of this module ([`SiteRecord`], [`StoredReport`], [`User`], …) and
//! [`StoreError`]; each is one transaction, and none takes or returns a redb table, transaction
//! or error. Tables, keys, value encodings and the redb ledger are private to this module. A
//! second backend (PostgreSQL, a later issue) is meant to come in behind these same methods:
//! the callers (server, admin, control, web, newsroom) stay as they are, the per-report rules
//! stay in `pasopati_common::ingest` (the backend gives them its own `Ledger`, moving the hwm in
//! the same transaction as the data), and the audit entry of a change stays in the change's
//! transaction. The unit tests of each file are written against the methods, so they are the
//! behaviour the other backend must show. (redb's error types convert into [`StoreError`]
//! through `From`, which `?` needs inside this module; nothing outside uses them.)

mod alerts;
mod audit;
#[cfg(test)]
pub(crate) mod fixtures;
pub mod fleet;
mod ingest;
mod media;
mod notifications;
pub mod pg;
mod publications;
mod report_log;
mod reports;
mod responses;
mod risk;
mod seam;
mod sites;
mod snapshot;
mod sources;
mod story_edits;
mod users;

pub use alerts::{AlertRecord, NewAlert};
pub use audit::{verify_chain, AuditBreak, AuditEntry, StoredAuditEntry};
pub use ingest::{BatchJob, BatchOutcome, Gap, GapKind, Rejection};
pub use media::{StoredAttachment, StoredMedia};
pub use notifications::{Notification, OutboxChange};
pub use publications::{Claim, OfficialFigure, Publication, PublicationState, Verdict};
pub use report_log::LOG_FILE;
pub use reports::{Quarantined, ReportQuery, StoredReport};
pub use responses::{OfficialResponse, ResponseState};
pub use seam::{Store, StoreLocation};
pub use sites::{Health, SiteRecord, SiteStatus, TokenRefusal};
pub use snapshot::SnapshotSummary;
pub use sources::{MediaView, SourceHealth, Validators};
pub use story_edits::RecordedEdit;
pub use users::{
    api_token_id, ApiTokenInfo, ApiTokenView, Capability, Role, Scope, StoredSession, User,
};

use bincode::{Decode, Encode};
use pasopati_common::frame::{decode_value, encode_value};
use pasopati_common::storage::OpenError;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

/// Counters and other single numbers, by name.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Site id → its [`SiteRecord`] (sites.rs; ingest.rs notes contact and health).
const SITES: TableDefinition<&str, &[u8]> = TableDefinition::new("sites");
/// (site, epoch) → high-water mark (ingest.rs; sites.rs looks whether a site ever sent).
const HWM: TableDefinition<(&str, u64), u64> = TableDefinition::new("hwm");
/// Arrival number → stored report: its record inline, or where it is in the report log
/// (`report_log.rs`). Arrival numbers are dense and give the order of storing.
const REPORTS: TableDefinition<u64, &[u8]> = TableDefinition::new("reports");
/// Arrival number → a report held back because it carries inmate identity data.
const QUARANTINE: TableDefinition<u64, &[u8]> = TableDefinition::new("quarantine");
/// Report id and revision (16 + 4 bytes) → arrival number of that revision.
const BY_ID: TableDefinition<&[u8], u64> = TableDefinition::new("by_id");
/// Arrival numbers of reports released from quarantine that the report index has not taken
/// yet (`crate::report_index`): it follows arrivals, and a released report keeps its old one.
const INDEX_LATE: TableDefinition<u64, ()> = TableDefinition::new("index_late");

/// The store's file name inside the data directory.
pub const STORE_FILE: &str = "collector.redb";

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store {path} is in use by another process (is the collector running for this data directory?)")]
    Locked { path: String },
    #[error(
        "the store {path} cannot be opened: {message}. Check the permissions of the data directory"
    )]
    Open { path: String, message: String },
    #[error("the store {path} is damaged ({reason}). Start the daemon to move it aside, then restore the latest backup of collector.redb")]
    Damaged { path: String, reason: String },
    /// Written by a newer collector than this one; never moved aside (see `storage::Layout`).
    #[error("the store {0}")]
    Newer(String),
    /// The report log does not fit the redb file beside it (missing, cut short, or another
    /// store's): nothing is moved aside, since the likeliest cause is a file copied or moved
    /// without the other.
    #[error("the store's report log {path} {problem}. collector.redb and collector.reports.log are one store: put back the collector.reports.log that was beside this collector.redb, or restore the latest backup (`pasopati-collector restore`) into an empty data directory")]
    ReportLog { path: String, problem: String },
    #[error("the store was damaged ({reason}) and is kept aside at {moved}. Restore the latest backup of collector.redb into the data directory and start again (agents resend what they still hold); or start again as is to begin with an empty store (agents are then refused until their sites are registered again)")]
    MovedAside { moved: String, reason: String },
    #[error("store error: {0}. Check free disk space and permissions of the data directory")]
    Storage(String),
    /// A batch its session had queued behind a batch whose commit failed: it is not stored
    /// after the hole (`group_commit::FailedSessions`).
    #[error("the batch from seq {0} follows a batch of this site that could not be stored, so it was not stored either; the agent sends both again")]
    BehindAFailedBatch(u64),
    #[error("a stored record cannot be decoded ({0}); the store may be damaged")]
    Corrupt(String),
    #[error("an earlier write to the store failed (disk full? I/O error?), and the store must be reopened: free space if needed; the collector stops so that its service manager restarts it")]
    NeedsReopen,
    #[error("site `{0}` is already registered")]
    SiteExists(String),
    // Admin answers travel as text over the control socket, so the command that registers a
    // site stays in the message: the command line cannot add it after the fact.
    #[error("site `{0}` is not registered; register it with `pasopati-collector site add`")]
    UnknownSite(String),
    /// The PostgreSQL store (`pg`): a refused configuration, a lost connection or a failed
    /// statement, said in full.
    #[error("the PostgreSQL store: {0}")]
    Database(String),
    /// Moving a redb store into PostgreSQL (`store migrate`) cannot go on, said in full.
    #[error("moving the store into PostgreSQL: {0}")]
    Migration(String),
    /// The collector broke one of its own rules; nothing of the transaction was kept, and the
    /// same input fails the same way, so the operator's move is to report it.
    #[error("internal error in the collector ({0}); nothing of it was stored. Please report it with this log line")]
    Internal(String),
}

impl StoreError {
    /// The same failure, for another of the batches it failed in one group commit (the error
    /// types inside are not `Clone`; the text and the need to reopen are what callers act on).
    pub fn for_another(&self) -> StoreError {
        match self {
            StoreError::NeedsReopen => StoreError::NeedsReopen,
            StoreError::Storage(message) => StoreError::Storage(message.clone()),
            // A database's failure is not the data directory's: no advice about its disk.
            StoreError::Database(message) => StoreError::Database(message.clone()),
            StoreError::Internal(message) => StoreError::Internal(message.clone()),
            other => StoreError::Storage(other.to_string()),
        }
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                match redb::Error::from(e) {
                    redb::Error::PreviousIo => StoreError::NeedsReopen,
                    other => StoreError::Storage(other.to_string()),
                }
            }
        }
    )*};
}
storage_from!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Record counts, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreCounts {
    /// Report revisions stored (quarantined ones not counted).
    pub reports: u64,
    pub rejections: u64,
    pub quarantined: u64,
    pub gaps: u64,
    pub media: u64,
}

/// The embedded store: one redb file and its report log in the data directory (the default
/// backend).
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    /// The stored reports' bytes (`report_log.rs`).
    log: report_log::ReportLog,
    /// Whether a site record was committed without a sync of its own since the store opened
    /// (`RedbStore::telemetry`): closing then makes one durable commit.
    unsynced: std::sync::atomic::AtomicBool,
}

impl Drop for RedbStore {
    /// Heartbeats, plain `Hello`s and told statuses are committed without a sync to disk of their own
    /// (`RedbStore::telemetry`); one durable commit on the way out keeps the last of them across
    /// a clean stop. A failure here loses only those, and is logged.
    fn drop(&mut self) {
        if !self.unsynced.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let flushed = self
            .db
            .begin_write()
            .map_err(|e| e.to_string())
            .and_then(|txn| txn.commit().map_err(|e| e.to_string()));
        if let Err(e) = flushed {
            tracing::warn!(path = %self.path.display(), "the store's last site records could not be synced on closing: {e}");
        }
    }
}

/// A record as stored: bincode, as on the wire.
fn encode<T: Encode>(v: &T) -> Vec<u8> {
    encode_value(v)
}

/// [`encode`] into `buf` (emptied first), so a writer storing many records reuses one buffer.
fn encode_into<T: Encode>(v: &T, buf: &mut Vec<u8>) -> Result<(), StoreError> {
    buf.clear();
    bincode::encode_into_std_write(v, buf, bincode::config::standard())
        .map(|_| ())
        .map_err(|e| StoreError::Storage(format!("a record cannot be encoded: {e}")))
}

/// A stored record read back; one that does not decode is named corrupt.
fn decode<T: Decode<()>>(raw: &[u8]) -> Result<T, StoreError> {
    decode_value(raw).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Changes the record under `key` within `txn`: reads it, lets `change` alter it and writes it
/// back. Returns the changed record, or `None` (nothing written) if there is none under `key`.
fn change_record<'k, K: redb::Key + 'static, T: Encode + Decode<()>>(
    txn: &redb::WriteTransaction,
    definition: TableDefinition<K, &'static [u8]>,
    key: K::SelfType<'k>,
    change: impl FnOnce(&mut T),
) -> Result<Option<T>, StoreError> {
    let mut table = txn.open_table(definition)?;
    let existing = table.get(&key)?.map(|v| decode::<T>(v.value()));
    let Some(mut record) = existing.transpose()? else {
        return Ok(None);
    };
    change(&mut record);
    table.insert(&key, encode(&record).as_slice())?;
    Ok(Some(record))
}

/// Takes the next number of the counter `key` (starting at `first`) and moves the counter on.
fn next_number(
    meta: &mut redb::Table<&'static str, u64>,
    key: &str,
    first: u64,
) -> Result<u64, StoreError> {
    let n = meta.get(key)?.map(|v| v.value()).unwrap_or(first);
    meta.insert(key, n + 1)?;
    Ok(n)
}

/// A register of numbered records (claims, publications, story edits): their table, the
/// counter of their numbers, and their name in audit entries (`claim:7`).
struct Register {
    table: TableDefinition<'static, u64, &'static [u8]>,
    counter: &'static str,
    kind: &'static str,
}

impl RedbStore {
    /// Files the record `make` makes of the next number of `register`, with the audit entry
    /// `action` by `actor` at `at` saying what `make` gives with it (cut to 200 characters);
    /// returns the number.
    fn add_numbered<T: Encode>(
        &self,
        register: &Register,
        actor: &str,
        action: &str,
        at: pasopati_common::Timestamp,
        make: impl FnOnce(u64) -> (T, String),
    ) -> Result<u64, StoreError> {
        let txn = self.db.begin_write()?;
        let number = next_number(&mut txn.open_table(META)?, register.counter, 1)?;
        let (record, details) = make(number);
        txn.open_table(register.table)?
            .insert(number, encode(&record).as_slice())?;
        let subject = format!("{}:{number}", register.kind);
        let details = details.chars().take(200).collect();
        audit::audit(&txn, actor, action, &subject, details, at)?;
        txn.commit()?;
        Ok(number)
    }

    /// Changes record `number` of `register` with `change`, which gives what the audit entry
    /// `action` by `actor` at `at` says; `None` (nothing changed, nothing audited) if there is
    /// no such record.
    fn change_numbered<T: Encode + Decode<()>>(
        &self,
        register: &Register,
        number: u64,
        actor: &str,
        action: &str,
        at: pasopati_common::Timestamp,
        change: impl FnOnce(&mut T) -> String,
    ) -> Result<Option<T>, StoreError> {
        let txn = self.db.begin_write()?;
        let mut details = String::new();
        let changed = change_record(&txn, register.table, number, |r| details = change(r))?;
        let Some(record) = changed else {
            return Ok(None);
        };
        let subject = format!("{}:{number}", register.kind);
        audit::audit(&txn, actor, action, &subject, details, at)?;
        txn.commit()?;
        Ok(Some(record))
    }
}

/// The redb store file's layout (`storage::Layout`): layout 1 is the first stamped one, and an
/// unstamped file from before is layout 1 too. A release that changes the layout raises
/// `current`, adds its migration here and checks in a new golden store (`tests/golden/`).
/// (PostgreSQL keeps its own numbered migrations, `pg/migrations`.)
///
/// 2. Adds the `fleet` table (`fleet.rs`); a release of layout 1 ignores it.
/// 3. Adds the regional roles (`Role` variants appended, so older users still decode), the
///    `official_responses`, `notifications` and `notify_active` tables; a release of an
///    earlier layout ignores the tables (and cannot sign in a regional user).
/// 4. Keeps a site's positions as runs (`position_runs`, ingest.rs) instead of one
///    `by_position` entry per report, which the migration converts and deletes; and reads a
///    report's owner and its revision shown from its revisions, so the migration deletes
///    `owners` and `latest` too (counting the latter into `shown_count`). A release of an
///    earlier layout would miss the positions, owners and reports shown (and so a changed
///    report resent at a seq it holds, or another site's edit), so it refuses the file:
///    `oldest_reader` is 4.
/// 5. Keeps the stored reports' bytes in the report log beside the file
///    (`collector.reports.log`, `report_log.rs`); the `reports` table names where each is.
///    Nothing is converted: records stored inline before stay readable where they are. A
///    release of an earlier layout would take a value naming the log for a damaged record, so
///    it refuses the file: `oldest_reader` is 5.
pub const LAYOUT: pasopati_common::storage::Layout = pasopati_common::storage::Layout {
    kind: "store",
    current: 5,
    oldest_reader: 5,
};

/// Opens every table but the sessions' (made at the first login; users.rs), so readers never
/// meet a missing one.
fn open_tables(txn: &redb::WriteTransaction) -> Result<(), StoreError> {
    txn.open_table(META)?;
    txn.open_table(SITES)?;
    txn.open_table(sites::TOKENS)?;
    txn.open_table(HWM)?;
    txn.open_table(REPORTS)?;
    txn.open_table(ingest::POSITION_RUNS)?;
    txn.open_table(BY_ID)?;
    txn.open_table(INDEX_LATE)?;
    txn.open_table(ingest::GAPS)?;
    txn.open_table(ingest::REJECTIONS)?;
    txn.open_table(ingest::VERDICTS)?;
    txn.open_table(audit::AUDIT)?;
    txn.open_table(QUARANTINE)?;
    txn.open_table(ingest::HEARTBEATS)?;
    txn.open_table(media::ATTACHMENTS_EXPECTED)?;
    txn.open_table(media::ATTACHMENTS)?;
    txn.open_table(media::MEDIA)?;
    txn.open_table(media::MEDIA_IDS)?;
    txn.open_table(publications::CLAIMS)?;
    txn.open_table(users::USERS)?;
    txn.open_table(users::API_TOKENS)?;
    txn.open_table(users::API_TOKEN_INFO)?;
    txn.open_table(publications::PUBLICATIONS)?;
    txn.open_table(responses::RESPONSES)?;
    txn.open_table(notifications::NOTIFICATIONS)?;
    txn.open_table(notifications::NOTIFY_ACTIVE)?;
    txn.open_table(sources::MEDIA_ENGAGEMENT)?;
    txn.open_table(sources::SOURCE_HEALTH)?;
    txn.open_table(story_edits::STORY_EDITS)?;
    txn.open_table(risk::RISK)?;
    txn.open_table(risk::RISK_DAYS)?;
    txn.open_table(alerts::ALERTS)?;
    txn.open_table(alerts::ALERT_KEYS)?;
    txn.open_table(fleet::FLEET)?;
    Ok(())
}

impl From<OpenError> for StoreError {
    fn from(e: OpenError) -> StoreError {
        match e {
            OpenError::Locked { path } => StoreError::Locked { path },
            OpenError::Damaged { path, reason } => StoreError::Damaged { path, reason },
            newer @ OpenError::Newer { .. } => StoreError::Newer(newer.to_string()),
            OpenError::Other { path, reason } => StoreError::Open {
                path,
                message: reason,
            },
        }
    }
}

impl RedbStore {
    /// Opens (creating if absent) the store in `data_dir`.
    pub fn open(data_dir: &Path) -> Result<RedbStore, StoreError> {
        let path = data_dir.join(STORE_FILE);
        let (db, log) = pasopati_common::storage::open_prepared(&path, |txn, fresh| {
            open_tables(txn)?;
            LAYOUT.prepare(txn, &path, META, fresh, |from| {
                if from == 3 {
                    let runs = ingest::positions_into_runs(txn)?;
                    ingest::forget_owners(txn)?;
                    reports::forget_latest(txn)?;
                    tracing::info!(runs, "store layout 4: report positions kept as runs");
                }
                Ok::<_, StoreError>(())
            })?;
            report_log::ReportLog::open(txn, &path)
        })?;
        Ok(RedbStore {
            db,
            path,
            log,
            unsynced: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The store's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many records some tables hold, read in one transaction without decoding them.
    pub fn counts(&self) -> Result<StoreCounts, StoreError> {
        let txn = self.db.begin_read()?;
        Ok(StoreCounts {
            reports: txn.open_table(REPORTS)?.len()?,
            rejections: txn.open_table(ingest::REJECTIONS)?.len()?,
            quarantined: txn.open_table(QUARANTINE)?.len()?,
            gaps: txn.open_table(ingest::GAPS)?.len()?,
            media: txn.open_table(media::MEDIA)?.len()?,
        })
    }

    /// Every record of a table of encoded records, in key order, read in one transaction.
    fn read_all<K: redb::Key + 'static, T: Decode<()>>(
        &self,
        definition: TableDefinition<K, &'static [u8]>,
    ) -> Result<Vec<T>, StoreError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(definition)?;
        let mut out = Vec::new();
        for entry in table.iter()? {
            out.push(decode(entry?.1.value())?);
        }
        Ok(out)
    }
}
