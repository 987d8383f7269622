//! The outbox: every report filed at the site, durable in redb until the collector holds it.
//!
//! A filed report is written once, keyed by (priority lane, filing number), and never moves.
//! Urgent reports come out first and each lane is first-in first-out: just before they are
//! sent, the next reports are given the next seqs of the epoch, and a cursor per lane (the
//! first filing number not yet given a seq) moves past them in the same transaction. The sent
//! log records them as runs: the reports of one lane between two filing numbers, with
//! consecutive seqs from the run's first. From then on a report is resent with that same seq
//! until the collector acknowledges it, and only then deleted. Giving seqs at sending time, not
//! filing time, is what lets an urgent report overtake a routine backlog while seqs stay dense,
//! which the collector's exactly-once rule depends on.
//!
//! Why runs, cursors and segments: redb rewrites pages to delete one entry, so a queue entry
//! deleted and a sent-log entry written and deleted per report cost more than the report's own
//! write (the first layout moved each report from a queue table to a sent log and deleted it
//! there; a drain spent two thirds of the agent's time on that). Now a report costs its write
//! when filed and a read when sent; a batch costs one run; and reports leave the file a segment
//! (4,096 filing numbers, [`segments`]) at a time, when none of the segment is held any more.
//!
//! Every method that changes state commits with redb's default `Durability::Immediate`, so when
//! it returns the change is on disk, but one: a plain acknowledgement ([`Outbox::ack`]) commits
//! without an fsync of its own and becomes durable with the next durable commit (losing it
//! costs a resend the collector absorbs, never a report).

use pasopati_common::attachment::AttachmentRef;
use pasopati_common::frame::{decode_value, encode_value, EncodedReports, RefusedReport};
use pasopati_common::profile;
use pasopati_common::storage::OpenError;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Priority, Report, ReportDraft, ReportId, Seq, Timestamp};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableHandle,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

mod segments;
use segments::Segments;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
// The reports themselves are in segments ([`segments`]): (lane, filing number) → encoded
// report. Lane 0 is urgent, lane 1 routine. In each lane, the reports from the lane's cursor on
// are queued; the ones before it were given seqs.
/// First seq of a run → the run (lane, first filing number, last filing number, count): the
/// reports of that lane filed between the two numbers, given consecutive seqs. Runs follow one
/// another without a gap, from the oldest retained seq to the last seq given.
const SENT_LOG: TableDefinition<u64, (u8, u64, u64, u32)> = TableDefinition::new("sent_runs");
/// The first release's queue and sent log, which held the reports themselves. An outbox that
/// has them is converted when it is opened.
const OLD_QUEUE: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("queue");
const OLD_SENT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("sent_log");
/// Report id → the latest revision filed here, so staff can edit or retract a report.
const LATEST: TableDefinition<&[u8], &[u8]> = TableDefinition::new("latest");
/// SHA-256 of an inbox file → when its reports were filed, so a file filed just before a crash
/// is not filed again when the agent restarts and finds it still in the inbox.
const INBOX_SEEN: TableDefinition<&[u8], u64> = TableDefinition::new("inbox_seen");
/// Filing number → an attachment waiting to be sent (its bytes are in `attachments/`). Filed in
/// the same transaction as its report; removed once the collector holds it.
const PENDING_ATTACHMENTS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("pending_attachments");
/// (report id, revision) → the collector's verdict on a revision it would not store (refused
/// or quarantined), recorded in the same transaction as the acknowledgement that named it. Added
/// after the first release: an older outbox simply gains the table when opened.
const VERDICTS: TableDefinition<(&[u8], u32), &[u8]> = TableDefinition::new("center_verdicts");

const EPOCH: &str = "epoch";
const NEXT_SEQ: &str = "next_seq";
const ACKED_SEQ: &str = "acked_seq";
const NEXT_FILING: &str = "next_filing";
const LAST_SYNC_AT: &str = "last_sync_at";
/// Per lane, the first filing number not yet given a seq.
const CURSOR: [&str; 2] = ["cursor_urgent", "cursor_routine"];
const UNSENT_BYTES: &str = "unsent_bytes";
/// The default limit on unsent reports, in bytes of their encoding.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The outbox file's name inside the data directory.
pub const OUTBOX_FILE: &str = "outbox.redb";

/// The outbox file's layout (`storage::Layout`). Layout 1 is the first stamped one; an unstamped
/// file from before is layout 1 too (a first release's queue is converted by
/// `convert_first_release`, which is a no-op on anything newer). A release that changes the
/// layout raises `current`, adds its migration below and checks in a new golden outbox
/// (`tests/golden/`).
pub const LAYOUT: pasopati_common::storage::Layout = pasopati_common::storage::Layout {
    kind: "outbox",
    current: 1,
    oldest_reader: 1,
};

/// An outbox failure, with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox {path} is in use by another process")]
    Locked { path: String },
    #[error("the outbox {path} cannot be opened: {message}. Check the permissions of the data directory")]
    Open { path: String, message: String },
    #[error("the outbox {path} is damaged ({reason})")]
    Damaged { path: String, reason: String },
    /// Written by a newer agent than this one; never moved aside (see `storage::Layout`).
    #[error("the outbox {0}")]
    Newer(String),
    #[error(
        "outbox storage error: {0}. Check free disk space and permissions of the data directory"
    )]
    Storage(#[source] redb::Error),
    #[error("outbox storage error: {0}. Check free disk space and permissions of the data directory; the agent daemon restarts to reopen its outbox")]
    NeedsReopen(#[source] redb::Error),
    #[error("a stored report cannot be decoded ({0}); the outbox may be damaged")]
    Corrupt(#[source] pasopati_common::frame::FrameError),
    #[error("the outbox is inconsistent: {0}. Keep a copy of the data directory for support")]
    Inconsistent(String),
    #[error(transparent)]
    Invalid(#[from] pasopati_common::report::ReportError),
    #[error("the outbox is full: {used} bytes of unsent reports reach its limit of {limit} bytes (`[outbox] max_bytes` in agent.toml). Nothing saved is dropped; new reports are refused until the link to the collector returns and the backlog drains")]
    Full { used: u64, limit: u64 },
}

impl From<OpenError> for OutboxError {
    fn from(e: OpenError) -> Self {
        match e {
            OpenError::Locked { path } => OutboxError::Locked { path },
            OpenError::Damaged { path, reason } => OutboxError::Damaged { path, reason },
            newer @ OpenError::Newer { .. } => OutboxError::Newer(newer.to_string()),
            OpenError::Other { path, reason } => OutboxError::Open {
                path,
                message: reason,
            },
        }
    }
}

macro_rules! storage_from {
    ($($t:ty),*) => {$(
        impl From<$t> for OutboxError {
            fn from(e: $t) -> Self {
                // After an I/O error redb refuses every later write until it is reopened.
                match redb::Error::from(e) {
                    e @ (redb::Error::Io(_) | redb::Error::PreviousIo) => {
                        OutboxError::NeedsReopen(e)
                    }
                    other => OutboxError::Storage(other),
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

/// Counters of the outbox, for `status`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, bincode::Encode, bincode::Decode)]
pub struct OutboxStats {
    pub epoch: Epoch,
    /// Reports not yet acknowledged by the collector (queued plus sent).
    pub backlog: u64,
    pub queued_urgent: u64,
    pub oldest_unsent_at: Option<Timestamp>,
    pub acked_seq: Seq,
    pub next_seq: Seq,
    pub last_sync_at: Option<Timestamp>,
    /// Bytes of unsent reports, counted against the quota.
    pub unsent_bytes: u64,
    pub max_bytes: u64,
    /// A report was refused for the quota since space was last freed.
    pub quota_full: bool,
    /// Attachments not yet held by the collector.
    pub attachments_pending: u64,
}

/// Where the outbox stands, for `Hello`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Positions {
    /// Everything up to here was acknowledged by the collector.
    pub acked: Seq,
    /// The lowest seq still held (acknowledged reports are retained for a while).
    pub oldest_retained: Seq,
    /// The seq the next sequenced report gets.
    pub next_seq: Seq,
}

/// A run of reports with consecutive seqs, ready to send: encoded as the outbox keeps them,
/// which is how they go on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub first_seq: Seq,
    pub reports: EncodedReports,
}

/// Whether the collector refused a report revision for good or quarantined it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, bincode::Encode, bincode::Decode)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    /// The collector will never store it (for example it breaks a rule of the report's shape).
    Refused,
    /// The collector holds it aside, unseen at the center, because it found identity data.
    Quarantined,
}

/// What the collector said about one report revision it did not store. The reason names the
/// field, the kind and the position, never the value.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, bincode::Encode, bincode::Decode)]
pub struct CenterVerdict {
    pub id: ReportId,
    pub revision: u32,
    pub seq: Seq,
    pub kind: VerdictKind,
    pub reason: String,
    /// The report's title as filed here, so the operator knows which report it is.
    pub title: String,
    /// When the agent learned of it.
    pub at: Timestamp,
}

/// Where a report filed here stands, judged by its latest revision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReportState {
    /// Saved here, waiting to be sent (or for the collector's acknowledgement).
    Saved,
    /// Acknowledged and stored by the collector.
    Delivered,
    /// Acknowledged but refused by the collector: it will never be stored.
    Refused(String),
    /// Acknowledged but quarantined by the collector: held aside, not shown at the center.
    Quarantined(String),
}

/// One report filed here, as its latest revision held in the outbox, and its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRow {
    pub report: Report,
    pub state: ReportState,
}

/// The durable outbox of one agent.
pub struct Outbox {
    db: Database,
    path: PathBuf,
    epoch: AtomicU64,
    max_bytes: AtomicU64,
    /// Set when a report was refused for the quota; cleared when an ack frees space.
    full: std::sync::atomic::AtomicBool,
}

impl Outbox {
    /// Opens the outbox in `data_dir`, creating it (with a fresh random epoch) if absent.
    pub fn open(data_dir: &Path) -> Result<Outbox, OutboxError> {
        let path = data_dir.join(OUTBOX_FILE);
        let (db, epoch) = pasopati_common::storage::open_prepared(&path, |txn, fresh| {
            LAYOUT.prepare(txn, &path, META, fresh, |_from| Ok::<_, OutboxError>(()))?;
            let meta = txn.open_table(META)?;
            segments::prepare(txn)?;
            txn.open_table(SENT_LOG)?;
            txn.open_table(LATEST)?;
            txn.open_table(INBOX_SEEN)?;
            txn.open_table(PENDING_ATTACHMENTS)?;
            txn.open_table(VERDICTS)?;
            let existing = meta.get(EPOCH)?.map(|v| v.value());
            drop(meta);
            convert_first_release(txn)?;
            let mut meta = txn.open_table(META)?;
            Ok::<_, OutboxError>(match existing {
                Some(e) => Epoch(e),
                None => {
                    let e = Epoch::random();
                    meta.insert(EPOCH, e.0)?;
                    meta.insert(NEXT_SEQ, 1)?;
                    meta.insert(ACKED_SEQ, 0)?;
                    meta.insert(NEXT_FILING, 0)?;
                    e
                }
            })
        })?;
        Ok(Outbox {
            db,
            path,
            epoch: AtomicU64::new(epoch.0),
            max_bytes: AtomicU64::new(DEFAULT_MAX_BYTES),
            full: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Opens the outbox for the daemon. A damaged outbox is moved aside (kept for support, never
    /// deleted) and a fresh one with a new epoch is started, so a broken file cannot keep the
    /// site from filing reports or crash-loop the service. Returns where the damaged file went.
    pub fn open_or_recover(data_dir: &Path) -> Result<(Outbox, Option<PathBuf>), OutboxError> {
        match Outbox::open(data_dir) {
            Err(OutboxError::Damaged { path, reason }) => {
                let moved = pasopati_common::storage::move_damaged_aside(&path, &reason)
                    .map_err(|message| OutboxError::Open { path, message })?;
                Ok((Outbox::open(data_dir)?, Some(moved)))
            }
            other => other.map(|o| (o, None)),
        }
    }

    /// Sets the limit on unsent reports, in bytes.
    pub fn set_max_bytes(&self, max_bytes: u64) {
        self.max_bytes.store(max_bytes.max(1), Ordering::SeqCst);
    }

    /// Whether a report was refused for the quota since an acknowledgement last freed space.
    pub fn quota_refused(&self) -> bool {
        self.full.load(Ordering::SeqCst)
    }

    /// The limit on unsent reports, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::SeqCst)
    }

    /// The outbox file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This outbox's epoch.
    pub fn epoch(&self) -> Epoch {
        Epoch(self.epoch.load(Ordering::SeqCst))
    }

    /// Validates a draft and stores it durably. When this returns `Ok`, the report survives a
    /// crash or power cut.
    pub fn file(&self, draft: ReportDraft) -> Result<Report, OutboxError> {
        let report = draft.validate(Taxonomy::builtin(), Timestamp::now())?;
        self.file_reports(std::slice::from_ref(&report))?;
        Ok(report)
    }

    /// Stores already validated reports durably, in one transaction.
    pub fn file_reports(&self, reports: &[Report]) -> Result<(), OutboxError> {
        self.file_reports_once(reports, &[], None).map(|_| ())
    }

    /// Stores already validated reports and the attachments they bring (whose blobs are already
    /// on disk) durably, in one transaction; remembers `source` (an inbox file's hash) in the
    /// same transaction. Returns false, filing nothing, if that source was filed before.
    /// Attachments count against the quota like reports until the collector holds them.
    pub fn file_reports_once(
        &self,
        reports: &[Report],
        attachments: &[AttachmentRef],
        source: Option<&[u8; 32]>,
    ) -> Result<bool, OutboxError> {
        let _filing = profile::AGENT_FILE.start();
        // Encoded before the write lock is taken, so the lock is held only to write them.
        let encoded: Vec<Vec<u8>> = reports.iter().map(encode_value).collect();
        let txn = profile::AGENT_FILE_WAIT.time(|| self.db.begin_write())?;
        if let Some(hash) = source {
            let mut seen = txn.open_table(INBOX_SEEN)?;
            if seen.get(&hash[..])?.is_some() {
                return Ok(false);
            }
            seen.insert(&hash[..], Timestamp::now().0.max(0) as u64)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            let adding: u64 = encoded.iter().map(|e| e.len() as u64).sum::<u64>()
                + attachments.iter().map(|a| a.size).sum::<u64>();
            let used = get(&meta, UNSENT_BYTES)?;
            let limit = self.max_bytes();
            if used + adding > limit {
                self.full.store(true, Ordering::SeqCst);
                return Err(OutboxError::Full { used, limit });
            }
            let first_filing = get(&meta, NEXT_FILING)?;
            let mut filing = first_filing;
            let mut latest = txn.open_table(LATEST)?;
            for (report, bytes) in reports.iter().zip(&encoded) {
                segments::insert(&txn, lane(report.priority), filing, bytes)?;
                filing += 1;
                latest.insert(&report.id.0[..], bytes.as_slice())?;
            }
            let mut pending = txn.open_table(PENDING_ATTACHMENTS)?;
            for attachment in attachments {
                pending.insert(filing, encode_value(attachment).as_slice())?;
                filing += 1;
            }
            meta.insert(NEXT_FILING, filing)?;
            meta.insert(UNSENT_BYTES, used + adding)?;
            if segments::segment_of(filing) != segments::segment_of(first_filing) {
                // Filing moved on: a segment left with nothing held can go now.
                segments::drop_empty(&txn, filing)?;
            }
        }
        profile::AGENT_FILE_COMMIT.time(|| txn.commit())?;
        Ok(true)
    }

    /// The attachment to send next (the oldest filed), if any.
    pub fn next_attachment(&self) -> Result<Option<AttachmentRef>, OutboxError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING_ATTACHMENTS)?;
        let first = table.first()?;
        first
            .map(|(_, v)| decode_value(v.value()).map_err(OutboxError::Corrupt))
            .transpose()
    }

    /// The hashes of every attachment waiting to be sent.
    pub fn pending_attachments(&self) -> Result<std::collections::HashSet<[u8; 32]>, OutboxError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(PENDING_ATTACHMENTS)?;
        let mut out = std::collections::HashSet::new();
        for entry in table.iter()? {
            let a: AttachmentRef = decode_value(entry?.1.value()).map_err(OutboxError::Corrupt)?;
            out.insert(a.hash);
        }
        Ok(out)
    }

    /// The collector holds attachment `hash` (or refused it for good): forget every pending
    /// entry for it and free its share of the quota. The caller deletes the blob afterwards.
    pub fn attachment_done(&self, hash: &[u8; 32]) -> Result<(), OutboxError> {
        let txn = self.db.begin_write()?;
        {
            let mut table = txn.open_table(PENDING_ATTACHMENTS)?;
            let mut freed = 0u64;
            table.retain(|_, v| match decode_value::<AttachmentRef>(v) {
                Ok(a) if &a.hash == hash => {
                    freed += a.size;
                    false
                }
                _ => true,
            })?;
            let mut meta = txn.open_table(META)?;
            let used = get(&meta, UNSENT_BYTES)?;
            meta.insert(UNSENT_BYTES, used.saturating_sub(freed))?;
            if freed > 0 {
                self.full.store(false, Ordering::SeqCst);
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The latest revision of a report filed here.
    pub fn latest(&self, id: &ReportId) -> Result<Option<Report>, OutboxError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LATEST)?;
        let value = table.get(&id.0[..])?;
        value.map(|v| decode_report(v.value())).transpose()
    }

    /// The numbers `Hello` needs.
    pub fn positions(&self) -> Result<Positions, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let acked = get(&meta, ACKED_SEQ)?;
        let log = txn.open_table(SENT_LOG)?;
        let first = log.first()?.map(|(k, _)| k.value());
        Ok(Positions {
            acked,
            oldest_retained: first.map_or(acked + 1, |f| f.min(acked + 1)),
            next_seq: get(&meta, NEXT_SEQ)?,
        })
    }

    /// Returns up to `max_reports` (and about `max_bytes`) reports starting at seq `from`: first
    /// those already in the sent log, then, if the log is exhausted, newly sequenced ones taken
    /// from the queue (urgent lane first). `None` when there is nothing to send.
    ///
    /// When seqs must be given, up to `batches` batches' worth are given in the one durable
    /// transaction (the window's free places: they are sent at once, so an urgent report filed
    /// meanwhile waits no longer than it would behind batches in flight); the later ones come
    /// back from the sent log on the next calls, without another fsync.
    pub fn batch_from(
        &self,
        from: Seq,
        max_reports: usize,
        max_bytes: usize,
        batches: usize,
    ) -> Result<Option<Staged>, OutboxError> {
        let resend =
            profile::AGENT_READ_SENT.time(|| self.read_sent(from, max_reports, max_bytes))?;
        if !resend.is_empty() {
            return Ok(Some(Staged {
                first_seq: from,
                reports: resend,
            }));
        }
        profile::AGENT_STAGE.time(|| self.stage(from, max_reports, max_bytes, batches.max(1)))
    }

    fn read_sent(
        &self,
        from: Seq,
        max_reports: usize,
        max_bytes: usize,
    ) -> Result<EncodedReports, OutboxError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(SENT_LOG)?;
        let mut out = EncodedReports::default();
        each_sent(&log, &txn, from, |_, _, raw| {
            if out.len() >= max_reports || (out.encoded_bytes() >= max_bytes && !out.is_empty()) {
                return Ok(false);
            }
            if out.is_empty() {
                out.reserve(batch_room(max_reports, max_bytes, raw.len()));
            }
            out.push(raw);
            Ok(true)
        })?;
        Ok(out)
    }

    fn stage(
        &self,
        from: Seq,
        max_reports: usize,
        max_bytes: usize,
        batches: usize,
    ) -> Result<Option<Staged>, OutboxError> {
        let shape = BatchShape {
            max_reports,
            max_bytes,
            batches,
        };
        // The reports to give seqs are found, and the first batch's decoded, in a read
        // transaction: a report being filed waits for the write lock, which is then held only to
        // write the runs and commit. With nothing queued it is not taken at all: a report
        // filed just after wakes the sync again.
        match self.plan_seqs(from, shape)? {
            Some(plan) if !plan.first_batch.is_empty() => self.give_seqs(from, shape, plan),
            _ => Ok(None),
        }
    }

    /// The next reports to give seqs from `from` on, read without the write lock; none if seq
    /// `from` is not the next to give.
    fn plan_seqs(&self, from: Seq, shape: BatchShape) -> Result<Option<SeqPlan>, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let marks = SyncMarks::read(&meta)?;
        if marks.next_seq != from {
            return Ok(None);
        }
        Ok(Some(plan_seqs(&txn, marks, shape)?))
    }

    /// Gives seqs from `from` on to the reports of `plan`, durably, and returns the first batch.
    /// Filing only appends to the lanes, so a plan still holds if the [`SyncMarks`] it was made
    /// from are unchanged when the write lock is taken; otherwise it is made again.
    fn give_seqs(
        &self,
        from: Seq,
        shape: BatchShape,
        plan: SeqPlan,
    ) -> Result<Option<Staged>, OutboxError> {
        let locked = profile::AGENT_STAGE_LOCKED.start();
        let txn = self.db.begin_write()?;
        let plan = {
            let mut meta = txn.open_table(META)?;
            let marks = SyncMarks::read(&meta)?;
            if marks.next_seq != from {
                return Ok(None);
            }
            let plan = if marks == plan.marks {
                plan
            } else {
                // Something else moved the marks meanwhile (a new epoch): plan again.
                plan_seqs(&txn, marks, shape)?
            };
            if plan.first_batch.is_empty() {
                return Ok(None);
            }
            let mut log = txn.open_table(SENT_LOG)?;
            let mut seq = from;
            for (lane, runs) in plan.runs.iter().enumerate() {
                for &(first, last, n) in runs {
                    log.insert(seq, (lane as u8, first, last, n))?;
                    seq += u64::from(n);
                }
                if let Some(&(_, last, _)) = runs.last() {
                    meta.insert(CURSOR[lane], last + 1)?;
                }
            }
            meta.insert(NEXT_SEQ, seq)?;
            plan
        };
        txn.commit()?;
        drop(locked);
        Ok(Some(Staged {
            first_seq: from,
            reports: plan.first_batch,
        }))
    }

    /// The collector holds everything up to `hwm`: remember it and the sync time, and delete
    /// acknowledged reports beyond the last `retain` of them. The retained ones can be sent again
    /// if the collector is restored from an older copy and asks for them.
    pub fn ack(&self, hwm: Seq, retain: u64) -> Result<(), OutboxError> {
        self.ack_with_verdicts(hwm, retain, &[], &[])
    }

    /// Like [`Outbox::ack`], for a batch the collector answered with some of its reports refused
    /// or quarantined: their verdicts are recorded in the same transaction as the ack, so the
    /// operator learns of them even if the agent stops right after.
    pub fn ack_with_verdicts(
        &self,
        hwm: Seq,
        retain: u64,
        refused: &[RefusedReport],
        quarantined: &[RefusedReport],
    ) -> Result<(), OutboxError> {
        // The bytes the acknowledged reports free are counted in a read transaction, so a
        // report being filed does not wait behind reading them.
        let counted = self.count_acknowledged(hwm)?;
        self.acknowledge(hwm, retain, refused, quarantined, counted)
    }

    /// Where the sync stands and the bytes of the reports after it up to `hwm`; none if
    /// `hwm` acknowledges nothing new.
    fn count_acknowledged(&self, hwm: Seq) -> Result<Option<(SyncMarks, u64)>, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let log = txn.open_table(SENT_LOG)?;
        let marks = SyncMarks::read(&meta)?;
        if hwm <= marks.acked {
            return Ok(None);
        }
        Ok(Some((marks, bytes_between(&log, &txn, marks.acked, hwm)?)))
    }

    /// Records the acknowledgement up to `hwm` and its verdicts. `counted` is
    /// [`Outbox::count_acknowledged`]'s answer: the reports given seqs after the last
    /// acknowledged one never change until that moves, so its count still holds if the
    /// [`SyncMarks`] it was made at are unchanged; otherwise it is counted again.
    fn acknowledge(
        &self,
        hwm: Seq,
        retain: u64,
        refused: &[RefusedReport],
        quarantined: &[RefusedReport],
        counted: Option<(SyncMarks, u64)>,
    ) -> Result<(), OutboxError> {
        let _locked = profile::AGENT_ACK_LOCKED.start();
        let mut txn = self.db.begin_write()?;
        if refused.is_empty() && quarantined.is_empty() {
            // A plain acknowledgement need not reach the disk on its own: it becomes durable
            // with the next durable commit (the next seqs given, the next filing). Lost in a
            // crash, it only means the reports after the last durable one are sent again, and
            // the collector recognises them as replays. Verdicts are for people and are kept
            // durably at once.
            txn.set_durability(redb::Durability::None)
                .map_err(|e| OutboxError::Storage(e.into()))?;
        }
        {
            let mut meta = txn.open_table(META)?;
            let mut log = txn.open_table(SENT_LOG)?;
            let mut verdicts = txn.open_table(VERDICTS)?;
            let latest = txn.open_table(LATEST)?;
            let now = Timestamp::now();
            let tagged = refused
                .iter()
                .map(|r| (r, VerdictKind::Refused))
                .chain(quarantined.iter().map(|r| (r, VerdictKind::Quarantined)));
            for (r, kind) in tagged {
                // The title from the sent log (before retention may drop the seq), else from the
                // latest revision filed here.
                let from_log = report_at(&log, &txn, r.seq)?;
                let title = match from_log.filter(|rep| rep.id == r.id) {
                    Some(rep) => rep.title,
                    None => match latest.get(&r.id.0[..])? {
                        Some(v) => decode_report(v.value())?.title,
                        None => String::new(),
                    },
                };
                let verdict = CenterVerdict {
                    id: r.id,
                    revision: r.revision,
                    seq: r.seq,
                    kind,
                    reason: r.reason.clone(),
                    title,
                    at: now,
                };
                verdicts.insert((&r.id.0[..], r.revision), encode_value(&verdict).as_slice())?;
            }
            let marks = SyncMarks::read(&meta)?;
            if hwm > marks.acked {
                let freed = match counted {
                    Some((then, freed)) if then == marks => freed,
                    _ => bytes_between(&log, &txn, marks.acked, hwm)?,
                };
                let used = get(&meta, UNSENT_BYTES)?;
                meta.insert(UNSENT_BYTES, used.saturating_sub(freed))?;
                if freed > 0 {
                    self.full.store(false, Ordering::SeqCst);
                }
                let keep_from = hwm.saturating_sub(retain) + 1;
                forget_before(&txn, &mut log, keep_from)?;
                segments::drop_empty(&txn, get(&meta, NEXT_FILING)?)?;
                meta.insert(ACKED_SEQ, hwm)?;
            }
            meta.insert(LAST_SYNC_AT, now.0.max(0) as u64)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// How many report revisions the collector refused or quarantined, and the latest `limit`
    /// of those verdicts, newest first.
    pub fn verdicts(&self, limit: usize) -> Result<(u64, Vec<CenterVerdict>), OutboxError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERDICTS)?;
        let mut all = Vec::new();
        for entry in table.iter()? {
            all.push(decode_verdict(entry?.1.value())?);
        }
        let count = all.len() as u64;
        all.sort_by(|a, b| b.at.cmp(&a.at).then(b.seq.cmp(&a.seq)));
        all.truncate(limit);
        Ok((count, all))
    }

    /// The collector's verdict on one revision, if it refused or quarantined it.
    pub fn verdict(
        &self,
        id: &ReportId,
        revision: u32,
    ) -> Result<Option<CenterVerdict>, OutboxError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(VERDICTS)?;
        let value = table.get((&id.0[..], revision))?;
        value.map(|v| decode_verdict(v.value())).transpose()
    }

    /// Starts a new epoch because the collector already holds seqs this outbox has not given
    /// out (the outbox was restored from an older copy). Reports in the sent log go back to the
    /// front of their lanes, keeping their ids, and will be sent again with new seqs; the
    /// collector recognises any it already has by id.
    pub fn start_new_epoch(&self) -> Result<Epoch, OutboxError> {
        let epoch = Epoch::random();
        let txn = self.db.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            let mut log = txn.open_table(SENT_LOG)?;
            // Acknowledged reports belong to the old epoch and are forgotten. Each lane's
            // cursor goes back to its first unacknowledged report, so those are queued again in
            // front of everything filed after them (a lane's acknowledged reports come before
            // its unacknowledged ones), and the runs go.
            let acked = get(&meta, ACKED_SEQ)?;
            let mut first_unacked: [Option<u64>; 2] = [None, None];
            each_sent(&log, &txn, acked + 1, |_, (lane, filing), _| {
                let first = &mut first_unacked[usize::from(lane.min(1))];
                first.get_or_insert(filing);
                Ok(true)
            })?;
            forget_before(&txn, &mut log, acked + 1)?;
            // The unacknowledged ones stay held, as queued.
            log.retain(|_, _| false)?;
            for (lane, first) in first_unacked.into_iter().enumerate() {
                if let Some(filing) = first {
                    meta.insert(CURSOR[lane], filing)?;
                }
            }
            segments::drop_empty(&txn, get(&meta, NEXT_FILING)?)?;
            meta.insert(EPOCH, epoch.0)?;
            meta.insert(NEXT_SEQ, 1)?;
            meta.insert(ACKED_SEQ, 0)?;
        }
        txn.commit()?;
        self.epoch.store(epoch.0, Ordering::SeqCst);
        Ok(epoch)
    }

    /// Counters for `status`.
    pub fn stats(&self) -> Result<OutboxStats, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let log = txn.open_table(SENT_LOG)?;
        let mut oldest: Option<Timestamp> = None;
        let mut consider = |raw: &[u8]| -> Result<(), OutboxError> {
            let r = decode_report(raw)?;
            oldest = Some(oldest.map_or(r.filed_at, |o| o.min(r.filed_at)));
            Ok(())
        };
        let acked = get(&meta, ACKED_SEQ)?;
        let next_seq = get(&meta, NEXT_SEQ)?;
        each_sent(&log, &txn, acked + 1, |_, _, raw| {
            consider(raw)?;
            Ok(false)
        })?;
        // The first queued report of each lane, and the urgent ones counted (they are few; the
        // routine lane is counted from the totals below).
        let mut queued_urgent = 0u64;
        for lane in [0u8, 1u8] {
            let cursor = get(&meta, CURSOR[lane as usize])?;
            let mut first = true;
            segments::each_in_lane(&txn, lane, cursor, false, |_, raw| {
                if first {
                    consider(raw)?;
                    first = false;
                }
                queued_urgent += u64::from(lane == 0);
                Ok(lane == 0)
            })?;
        }
        // Every report held is queued, sent, or acknowledged and retained; the runs hold the
        // last two, one seq each, from the oldest retained to the last given.
        let sequenced = match log.first()? {
            Some((first, _)) => next_seq.saturating_sub(first.value()),
            None => 0,
        };
        let queued_all = segments::held(&txn)?.saturating_sub(sequenced);
        let last_sync = meta.get(LAST_SYNC_AT)?.map(|v| Timestamp(v.value() as i64));
        let attachments_pending = txn.open_table(PENDING_ATTACHMENTS)?.len()?;
        Ok(OutboxStats {
            epoch: self.epoch(),
            backlog: queued_all + next_seq.saturating_sub(acked + 1),
            queued_urgent,
            oldest_unsent_at: oldest,
            acked_seq: acked,
            next_seq,
            last_sync_at: last_sync,
            unsent_bytes: get(&meta, UNSENT_BYTES)?,
            max_bytes: self.max_bytes(),
            quota_full: self.full.load(Ordering::SeqCst),
            attachments_pending,
        })
    }

    /// The most recently filed reports still held (queued, sent, or acknowledged and retained),
    /// newest first, each with whether the collector has acknowledged it.
    pub fn recent(&self, limit: usize) -> Result<Vec<(Report, bool)>, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let acked = get(&meta, ACKED_SEQ)?;
        let log = txn.open_table(SENT_LOG)?;
        // Which of the reports held were acknowledged (a retained few thousand at most), and
        // where each lane's held reports begin.
        let mut acknowledged = std::collections::HashSet::new();
        let mut held_from = [get(&meta, CURSOR[0])?, get(&meta, CURSOR[1])?];
        each_sent(&log, &txn, 0, |seq, (lane, filing), _| {
            let from = &mut held_from[usize::from(lane.min(1))];
            *from = (*from).min(filing);
            if seq <= acked {
                acknowledged.insert((lane, filing));
            }
            Ok(true)
        })?;
        let mut out = Vec::new();
        for lane in [0u8, 1u8] {
            let mut left = limit;
            let from = held_from[usize::from(lane)];
            segments::each_in_lane(&txn, lane, from, true, |filing, raw| {
                if left == 0 {
                    return Ok(false);
                }
                left -= 1;
                let report = decode_report(raw)?;
                out.push((report, acknowledged.contains(&(lane, filing))));
                Ok(true)
            })?;
        }
        out.sort_by(|a, b| b.0.filed_at.cmp(&a.0.filed_at).then(b.0.id.cmp(&a.0.id)));
        out.truncate(limit);
        Ok(out)
    }

    /// The most recently filed reports, one row per report: its latest revision held here and
    /// where that revision stands (saved, delivered, refused or quarantined by the collector).
    /// Newest first.
    pub fn recent_reports(&self, limit: usize) -> Result<Vec<ReportRow>, OutboxError> {
        // Each report may hold several revisions among the newest entries; read enough of them
        // to still fill `limit` rows when many are edits.
        let entries = self.recent(limit.saturating_mul(4).max(limit))?;
        let txn = self.db.begin_read()?;
        let verdicts = txn.open_table(VERDICTS)?;
        let mut rows: Vec<ReportRow> = Vec::new();
        let mut newest: std::collections::HashMap<ReportId, (usize, u32)> =
            std::collections::HashMap::new();
        for (report, acknowledged) in entries {
            let verdict = match verdicts.get((&report.id.0[..], report.revision))? {
                Some(v) => Some(decode_verdict(v.value())?),
                None => None,
            };
            let state = match (verdict, acknowledged) {
                (Some(v), _) if v.kind == VerdictKind::Refused => ReportState::Refused(v.reason),
                (Some(v), _) => ReportState::Quarantined(v.reason),
                (None, true) => ReportState::Delivered,
                (None, false) => ReportState::Saved,
            };
            let row = ReportRow { report, state };
            match newest.get(&row.report.id) {
                Some(&(_, revision)) if revision >= row.report.revision => {}
                Some(&(at, _)) => {
                    newest.insert(row.report.id, (at, row.report.revision));
                    rows[at] = row;
                }
                None => {
                    newest.insert(row.report.id, (rows.len(), row.report.revision));
                    rows.push(row);
                }
            }
        }
        // Ordered by when each report's latest revision was filed, newest first.
        rows.sort_by(|a, b| {
            b.report
                .filed_at
                .cmp(&a.report.filed_at)
                .then(b.report.id.cmp(&a.report.id))
        });
        rows.truncate(limit);
        Ok(rows)
    }

    /// Every report not yet acknowledged, in sending order (sent log, then urgent, then
    /// routine). For tests and diagnostics.
    pub fn unacknowledged(&self) -> Result<Vec<ReportId>, OutboxError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let acked = get(&meta, ACKED_SEQ)?;
        let mut out = Vec::new();
        each_sent(&txn.open_table(SENT_LOG)?, &txn, acked + 1, |_, _, raw| {
            out.push(decode_report(raw)?.id);
            Ok(true)
        })?;
        for lane in [0u8, 1u8] {
            let cursor = get(&meta, CURSOR[lane as usize])?;
            segments::each_in_lane(&txn, lane, cursor, false, |_, raw| {
                out.push(decode_report(raw)?.id);
                Ok(true)
            })?;
        }
        Ok(out)
    }
}

fn lane(priority: Priority) -> u8 {
    match priority {
        Priority::Urgent => 0,
        Priority::Normal => 1,
    }
}

fn get(meta: &impl ReadableTable<&'static str, u64>, key: &str) -> Result<u64, OutboxError> {
    Ok(meta.get(key)?.map(|v| v.value()).unwrap_or(0))
}

fn decode_report(raw: &[u8]) -> Result<Report, OutboxError> {
    decode_value(raw).map_err(OutboxError::Corrupt)
}

fn decode_verdict(raw: &[u8]) -> Result<CenterVerdict, OutboxError> {
    decode_value(raw).map_err(OutboxError::Corrupt)
}

/// Calls `each` with (seq, (lane, filing number), encoded report) for every report given a
/// seq from `from` on, in seq order, while it returns true.
fn each_sent(
    log: &impl ReadableTable<u64, (u8, u64, u64, u32)>,
    txn: &impl Segments,
    from: Seq,
    mut each: impl FnMut(Seq, (u8, u64), &[u8]) -> Result<bool, OutboxError>,
) -> Result<(), OutboxError> {
    // The run holding `from` starts at or before it; when none does, every run is later.
    let start = match log.range(..=from)?.next_back() {
        Some(entry) => entry?.0.value(),
        None => match log.first()? {
            Some((first, _)) => first.value(),
            None => return Ok(()),
        },
    };
    let mut expected = start;
    for run in log.range(start..)? {
        let (first_seq, run) = run?;
        let (first_seq, (lane, first, last, count)) = (first_seq.value(), run.value());
        if first_seq != expected {
            return Err(OutboxError::Inconsistent(format!(
                "the sent log skips from seq {expected} to seq {first_seq}"
            )));
        }
        let end = first_seq + u64::from(count);
        if end <= from {
            expected = end;
            continue;
        }
        let table = txn
            .segment(segments::segment_of(first))?
            .ok_or_else(|| missing(first_seq))?;
        let mut seq = first_seq;
        for entry in table.range((lane, first)..=(lane, last))? {
            let (key, value) = entry?;
            if seq >= from && !each(seq, key.value(), value.value())? {
                return Ok(());
            }
            seq += 1;
        }
        if seq != end {
            return Err(missing(first_seq));
        }
        expected = end;
    }
    Ok(())
}

/// The report given `seq`, if it is still held.
fn report_at(
    log: &impl ReadableTable<u64, (u8, u64, u64, u32)>,
    txn: &impl Segments,
    seq: Seq,
) -> Result<Option<Report>, OutboxError> {
    let mut found = None;
    each_sent(log, txn, seq, |at, _, raw| {
        if at == seq {
            found = Some(decode_report(raw)?);
        }
        Ok(false)
    })?;
    Ok(found)
}

/// Forgets the reports given seqs before `keep_from`, and their runs. Their segments go when
/// nothing in them is held any more ([`segments::drop_empty`]).
fn forget_before(
    txn: &redb::WriteTransaction,
    log: &mut redb::Table<u64, (u8, u64, u64, u32)>,
    keep_from: Seq,
) -> Result<(), OutboxError> {
    let old: Vec<(u64, (u8, u64, u64, u32))> = log
        .range(..keep_from)?
        .map(|entry| entry.map(|(k, v)| (k.value(), v.value())))
        .collect::<Result<_, _>>()?;
    for (first_seq, (lane, first, last, count)) in old {
        log.remove(first_seq)?;
        let end = first_seq + u64::from(count);
        let segment = segments::segment_of(first);
        if end <= keep_from {
            segments::forget(txn, segment, u64::from(count))?;
            continue;
        }
        // The run straddles `keep_from`: its head is forgotten, its tail stays as a shorter run.
        let dropping = keep_from - first_seq;
        segments::forget(txn, segment, dropping)?;
        let tail_first = {
            let table = txn.segment(segment)?.ok_or_else(|| missing(first_seq))?;
            let mut keys = table.range((lane, first)..=(lane, last))?;
            let tail = keys.nth(dropping as usize).transpose()?;
            match tail {
                Some((key, _)) => key.value().1,
                None => return Err(missing(first_seq)),
            }
        };
        log.insert(
            keep_from,
            (lane, tail_first, last, (end - keep_from) as u32),
        )?;
    }
    Ok(())
}

/// The encoded bytes of the reports given seqs after `acked` up to `hwm`.
fn bytes_between(
    log: &impl ReadableTable<u64, (u8, u64, u64, u32)>,
    txn: &impl Segments,
    acked: Seq,
    hwm: Seq,
) -> Result<u64, OutboxError> {
    let mut bytes = 0u64;
    each_sent(log, txn, acked + 1, |seq, _, raw| {
        if seq > hwm {
            return Ok(false);
        }
        bytes += raw.len() as u64;
        Ok(true)
    })?;
    Ok(bytes)
}

/// How many reports [`Outbox::stage`] gives seqs at once: up to `batches` batches of at most
/// `max_reports` reports and about `max_bytes` bytes each.
#[derive(Clone, Copy)]
struct BatchShape {
    max_reports: usize,
    max_bytes: usize,
    batches: usize,
}

/// The bytes reserved for a batch of at most `max_reports` reports and `max_bytes` (which the
/// last report may pass), from the size of its first: reports like it fill it without a
/// reallocation, so a drain's megabyte batches are not copied as they grow.
fn batch_room(max_reports: usize, max_bytes: usize, first: usize) -> usize {
    // The last report may take a batch past its byte limit by up to its own size: room for
    // one twice the first's (an encoded report, its body under 64 KiB, stays under the cap).
    const LAST_REPORT: usize = 128 * 1024;
    max_reports
        .saturating_mul(first)
        .min(max_bytes)
        .saturating_add(LAST_REPORT.min(first.saturating_mul(2)))
}

/// Where the sync stands in the outbox: the epoch, the next seq to give, the last seq
/// acknowledged and each lane's cursor. Only giving seqs, acknowledging and starting an epoch
/// move them (filing does not), so what was read from the reports while they stood still
/// holds, under the write lock, as long as they stand where they stood.
#[derive(Clone, Copy, PartialEq, Eq)]
struct SyncMarks {
    epoch: u64,
    next_seq: Seq,
    acked: Seq,
    cursors: [u64; 2],
}

impl SyncMarks {
    fn read(meta: &impl ReadableTable<&'static str, u64>) -> Result<SyncMarks, OutboxError> {
        Ok(SyncMarks {
            epoch: get(meta, EPOCH)?,
            next_seq: get(meta, NEXT_SEQ)?,
            acked: get(meta, ACKED_SEQ)?,
            cursors: [get(meta, CURSOR[0])?, get(meta, CURSOR[1])?],
        })
    }
}

/// The next reports to give seqs, from `marks`: per lane, urgent first, the runs (first
/// filing number, last, count) that take them, each within one segment; and the first batch's
/// reports, copied as they are read.
struct SeqPlan {
    marks: SyncMarks,
    runs: [Vec<(u64, u64, u32)>; 2],
    first_batch: EncodedReports,
}

fn plan_seqs(
    txn: &impl Segments,
    marks: SyncMarks,
    shape: BatchShape,
) -> Result<SeqPlan, OutboxError> {
    let mut plan = SeqPlan {
        marks,
        runs: [Vec::new(), Vec::new()],
        first_batch: EncodedReports::default(),
    };
    let batches = shape.batches.max(1);
    let (mut batch, mut count, mut bytes) = (0usize, 0usize, 0usize);
    for lane in [0u8, 1u8] {
        let mut run: Option<(u64, u64, u32)> = None;
        let runs = &mut plan.runs[usize::from(lane)];
        let first_batch = &mut plan.first_batch;
        segments::each_in_lane(
            txn,
            lane,
            marks.cursors[usize::from(lane)],
            false,
            |filing, raw| {
                if count >= shape.max_reports || (bytes >= shape.max_bytes && count > 0) {
                    batch += 1;
                    (count, bytes) = (0, 0);
                }
                if batch == batches {
                    return Ok(false);
                }
                if batch == 0 {
                    if first_batch.is_empty() {
                        first_batch.reserve(batch_room(
                            shape.max_reports,
                            shape.max_bytes,
                            raw.len(),
                        ));
                    }
                    first_batch.push(raw);
                }
                count += 1;
                bytes += raw.len();
                run = Some(match run {
                    Some((first, _, n))
                        if segments::segment_of(first) == segments::segment_of(filing) =>
                    {
                        (first, filing, n + 1)
                    }
                    other => {
                        runs.extend(other);
                        (filing, filing, 1)
                    }
                });
                Ok(true)
            },
        )?;
        runs.extend(run);
        if batch == batches {
            break;
        }
    }
    Ok(plan)
}

fn missing(seq: Seq) -> OutboxError {
    OutboxError::Inconsistent(format!(
        "the reports of the run from seq {seq} are not all held"
    ))
}

/// Converts an outbox of the first release, whose queue and sent log held the reports
/// themselves, in the transaction that opens it. The reports of the sent log are written under
/// new filing numbers in seq order, one run each, and the queue's after them; the cursors start
/// at the first queued, so each lane keeps its order and every seq stays. A no-op for an
/// outbox without the old tables.
fn convert_first_release(txn: &redb::WriteTransaction) -> Result<(), OutboxError> {
    let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let has = |name: &str| names.iter().any(|n| n == name);
    if !has(OLD_QUEUE.name()) && !has(OLD_SENT_LOG.name()) {
        return Ok(());
    }
    let mut meta = txn.open_table(META)?;
    let mut log = txn.open_table(SENT_LOG)?;
    let mut filing = get(&meta, NEXT_FILING)?;
    if has(OLD_SENT_LOG.name()) {
        let mut old = txn.open_table(OLD_SENT_LOG)?;
        while let Some((seq, value)) = old.pop_first()? {
            let lane = lane(decode_report(value.value())?.priority);
            segments::insert(txn, lane, filing, value.value())?;
            log.insert(seq.value(), (lane, filing, filing, 1))?;
            filing += 1;
        }
    }
    for cursor in CURSOR {
        meta.insert(cursor, filing)?;
    }
    if has(OLD_QUEUE.name()) {
        let mut old = txn.open_table(OLD_QUEUE)?;
        while let Some((key, value)) = old.pop_first()? {
            segments::insert(txn, key.value().0, filing, value.value())?;
            filing += 1;
        }
    }
    meta.insert(NEXT_FILING, filing)?;
    drop((meta, log));
    if has(OLD_SENT_LOG.name()) {
        txn.delete_table(OLD_SENT_LOG)?;
    }
    if has(OLD_QUEUE.name()) {
        txn.delete_table(OLD_QUEUE)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Staged {
        /// The staged reports, decoded.
        fn reports(&self) -> Vec<Report> {
            self.reports.decode().unwrap()
        }
    }

    #[test]
    fn a_batch_of_reports_like_its_first_fits_the_room_it_is_given() {
        // Each shape: the most reports, the byte limit, the size of every report in the batch.
        for (max_reports, max_bytes, size) in [
            (1024, 1 << 20, 1100),
            (1024, 1 << 20, 300),
            (10, 1 << 20, 70_000),
            (1024, 1000, 999),
            (1, 1, 5),
        ] {
            let room = batch_room(max_reports, max_bytes, size);
            // The batch grows by the rule `read_sent` and `plan_seqs` apply.
            let (mut count, mut bytes) = (0usize, 0usize);
            while count < max_reports && (bytes < max_bytes || count == 0) {
                count += 1;
                bytes += size;
            }
            assert!(
                bytes <= room,
                "{count} reports of {size} bytes ({bytes}) in a room of {room}"
            );
            assert!(
                room <= max_bytes + 2 * size,
                "no more than it needs: {room}"
            );
        }
    }

    fn draft(title: &str, priority: Priority) -> ReportDraft {
        ReportDraft {
            category: "kegiatan_kedinasan".into(),
            title: title.into(),
            body: "Isi laporan contoh.".into(),
            priority: Some(priority),
            occurred_at: None,
        }
    }

    /// A fresh outbox holding `n` routine reports titled `{prefix}0`, `{prefix}1`, ….
    fn outbox_with(n: usize, prefix: &str) -> (tempfile::TempDir, Outbox) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        for i in 0..n {
            outbox
                .file(draft(&format!("{prefix}{i}"), Priority::Normal))
                .unwrap();
        }
        (dir, outbox)
    }

    fn held_reports(outbox: &Outbox) -> u64 {
        let txn = outbox.db.begin_read().unwrap();
        segments::held(&txn).unwrap()
    }

    #[test]
    fn a_report_leaves_the_file_once_acknowledged_and_out_of_retention() {
        let (_dir, outbox) = outbox_with(6, "r");
        outbox.batch_from(1, 6, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(held_reports(&outbox), 6);
        outbox.ack(4, 1).unwrap();
        // Seqs 1-3 are gone, 4 is retained, 5 and 6 wait for their acknowledgement.
        assert_eq!(held_reports(&outbox), 3);
        assert_eq!(outbox.positions().unwrap().oldest_retained, 4);
        // A new epoch drops the retained one and queues the others again, in order.
        outbox.start_new_epoch().unwrap();
        assert_eq!(held_reports(&outbox), 2);
        let again = outbox.batch_from(1, 10, usize::MAX, 1).unwrap().unwrap();
        let titles: Vec<String> = again.reports().into_iter().map(|r| r.title).collect();
        assert_eq!(titles, ["r4", "r5"]);
        outbox.ack(2, 0).unwrap();
        assert_eq!(held_reports(&outbox), 0);
        assert_eq!(outbox.stats().unwrap().unsent_bytes, 0);
    }

    /// Random filings, sends, resends, acknowledgements, reopenings and new epochs against a
    /// model of what the outbox promises: lanes in filing order, dense seqs, resends the same,
    /// retention, and nothing held that should not be.
    #[test]
    fn the_outbox_keeps_its_promises_under_random_operations() {
        use std::collections::BTreeMap;
        let dir = tempfile::tempdir().unwrap();
        let mut outbox = Outbox::open(dir.path()).unwrap();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n.max(1)
        };
        // (lane, filing) → title of queued reports; seq → (lane, filing, title) of sequenced ones.
        let mut queued: BTreeMap<(u8, u64), String> = BTreeMap::new();
        let mut sent: BTreeMap<u64, (u8, u64, String)> = BTreeMap::new();
        let (mut filing, mut next_seq, mut acked) = (0u64, 1u64, 0u64);
        for step in 0..3000 {
            match next(100) {
                0..=39 => {
                    let urgent = next(5) == 0;
                    let title = format!("laporan {step}");
                    let priority = if urgent {
                        Priority::Urgent
                    } else {
                        Priority::Normal
                    };
                    outbox.file(draft(&title, priority)).unwrap();
                    queued.insert((u8::from(!urgent), filing), title);
                    filing += 1;
                }
                40..=64 => {
                    let (k, batches) = (1 + next(6) as usize, 1 + next(3) as usize);
                    let staged = outbox.batch_from(next_seq, k, usize::MAX, batches).unwrap();
                    let mut first = Vec::new();
                    for i in 0..k * batches {
                        let Some(((lane, f), title)) = queued.pop_first() else {
                            break;
                        };
                        if i < k {
                            first.push(title.clone());
                        }
                        sent.insert(next_seq, (lane, f, title));
                        next_seq += 1;
                    }
                    let got: Vec<String> = staged
                        .map(|s| s.reports().into_iter().map(|r| r.title).collect())
                        .unwrap_or_default();
                    assert_eq!(got, first, "step {step}: staged");
                }
                65..=74 if sent.range(acked + 1..).next().is_some() => {
                    // A resend of seqs given (from the next seq on, it would be staging).
                    let low = *sent.keys().next().unwrap_or(&next_seq);
                    let from = low + next(next_seq - low);
                    let k = 1 + next(8) as usize;
                    let got: Vec<String> = outbox
                        .batch_from(from, k, usize::MAX, 1)
                        .unwrap()
                        .map(|s| s.reports().into_iter().map(|r| r.title).collect())
                        .unwrap_or_default();
                    let want: Vec<String> = sent
                        .range(from..)
                        .take(k)
                        .map(|(_, v)| v.2.clone())
                        .collect();
                    assert_eq!(got, want, "step {step}: resend from {from}");
                }
                75..=89 if next_seq - 1 > acked => {
                    let hwm = acked + 1 + next(next_seq - 1 - acked);
                    let retain = next(4);
                    outbox.ack(hwm, retain).unwrap();
                    acked = hwm;
                    let keep_from = hwm.saturating_sub(retain) + 1;
                    sent.retain(|&seq, _| seq >= keep_from);
                }
                90..=94 => {
                    drop(outbox);
                    outbox = Outbox::open(dir.path()).unwrap();
                }
                95..=96 => {
                    outbox.start_new_epoch().unwrap();
                    for (seq, (lane, f, title)) in std::mem::take(&mut sent) {
                        if seq > acked {
                            queued.insert((lane, f), title);
                        }
                    }
                    (next_seq, acked) = (1, 0);
                }
                _ => {}
            }
            let unacknowledged: Vec<ReportId> = outbox.unacknowledged().unwrap();
            let titles: Vec<String> = unacknowledged
                .iter()
                .map(|id| outbox.latest(id).unwrap().unwrap().title)
                .collect();
            let want: Vec<String> = sent
                .range(acked + 1..)
                .map(|(_, v)| v.2.clone())
                .chain(queued.values().cloned())
                .collect();
            assert_eq!(titles, want, "step {step}: unacknowledged");
            let stats = outbox.stats().unwrap();
            assert_eq!(stats.backlog, want.len() as u64, "step {step}: backlog");
            let urgent = queued.keys().filter(|(lane, _)| *lane == 0).count() as u64;
            assert_eq!(stats.queued_urgent, urgent, "step {step}: urgent");
            assert_eq!(
                held_reports(&outbox),
                (queued.len() + sent.len()) as u64,
                "step {step}: held"
            );
            let p = outbox.positions().unwrap();
            assert_eq!((p.acked, p.next_seq), (acked, next_seq), "step {step}");
            // A segment's table goes once nothing in it is held and filing has moved on.
            let mut wanted: Vec<u64> = queued
                .keys()
                .map(|k| k.1)
                .chain(sent.values().map(|v| v.1))
                // The segment still being filed into stays, even empty.
                .chain(
                    filing
                        .checked_sub(1)
                        .filter(|&f| segments::segment_of(f) == segments::segment_of(filing)),
                )
                .map(segments::segment_of)
                .collect();
            wanted.sort_unstable();
            wanted.dedup();
            let txn = outbox.db.begin_read().unwrap();
            assert_eq!(
                segments::tables(&txn),
                wanted,
                "step {step}: segment tables"
            );
        }
    }

    #[test]
    fn segments_go_as_a_whole_once_nothing_in_them_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let reports: Vec<Report> = (0..40)
            .map(|i| {
                draft(&format!("r{i}"), Priority::Normal)
                    .validate(Taxonomy::builtin(), Timestamp::now())
                    .unwrap()
            })
            .collect();
        outbox.file_reports(&reports).unwrap();
        let tables = |o: &Outbox| segments::tables(&o.db.begin_read().unwrap());
        assert_eq!(tables(&outbox), [0, 1, 2]);
        outbox.batch_from(1, 40, usize::MAX, 1).unwrap().unwrap();
        // Seqs 1-20 forgotten: segment 0 (filings 0-15) goes, segment 1 stays for 16-19 ...
        outbox.ack(30, 10).unwrap();
        assert_eq!(tables(&outbox), [1, 2]);
        assert_eq!(held_reports(&outbox), 20);
        // ... and everything forgotten leaves only the segment filing goes on in.
        outbox.ack(40, 0).unwrap();
        assert_eq!(tables(&outbox), [2]);
        assert_eq!(held_reports(&outbox), 0);
        let resend = outbox.batch_from(41, 10, usize::MAX, 1).unwrap();
        assert!(resend.is_none());
    }

    #[test]
    fn a_first_release_outbox_is_converted_keeping_seqs_and_order() {
        let dir = tempfile::tempdir().unwrap();
        let report = |title: &str, priority| {
            draft(title, priority)
                .validate(Taxonomy::builtin(), Timestamp::now())
                .unwrap()
        };
        let epoch = 0x5eed;
        {
            // The first release's layout: the queue and the sent log hold the reports.
            let db = redb::Database::create(dir.path().join(OUTBOX_FILE)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut meta = txn.open_table(META).unwrap();
                for (key, value) in [
                    (EPOCH, epoch),
                    (NEXT_SEQ, 3),
                    (ACKED_SEQ, 1),
                    (NEXT_FILING, 5),
                ] {
                    meta.insert(key, value).unwrap();
                }
                let mut log = txn.open_table(OLD_SENT_LOG).unwrap();
                for (seq, title) in [(1u64, "terkirim 1"), (2, "terkirim 2")] {
                    let bytes = encode_value(&report(title, Priority::Normal));
                    log.insert(seq, bytes.as_slice()).unwrap();
                }
                let mut queue = txn.open_table(OLD_QUEUE).unwrap();
                let routine = encode_value(&report("antre rutin", Priority::Normal));
                let urgent = encode_value(&report("antre darurat", Priority::Urgent));
                queue.insert((1u8, 3u64), routine.as_slice()).unwrap();
                queue.insert((0u8, 4u64), urgent.as_slice()).unwrap();
            }
            txn.commit().unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.epoch(), Epoch(epoch));
        let p = outbox.positions().unwrap();
        assert_eq!((p.acked, p.oldest_retained, p.next_seq), (1, 1, 3));
        let titles = |reports: &[Report]| -> Vec<String> {
            reports.iter().map(|r| r.title.clone()).collect()
        };
        // Seq 2 is resent as it was; the queue gives the urgent report the next seq.
        let resend = outbox.batch_from(2, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(titles(&resend.reports()), ["terkirim 2"]);
        let next = outbox.batch_from(3, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(titles(&next.reports()), ["antre darurat", "antre rutin"]);
        drop(outbox);
        // Converted once: the old tables are gone and a reopen changes nothing.
        let outbox = Outbox::open(dir.path()).unwrap();
        let txn = outbox.db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(
            !names.iter().any(|n| n == "queue" || n == "sent_log"),
            "{names:?}"
        );
        drop(txn);
        assert_eq!(held_reports(&outbox), 4);
        assert_eq!(outbox.positions().unwrap().next_seq, 5);
    }

    #[test]
    fn urgent_reports_are_sequenced_first_and_seqs_stay_dense() {
        let (_dir, outbox) = outbox_with(5, "rutin ");
        let first = outbox.batch_from(1, 2, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(first.first_seq, 1);
        assert_eq!(first.reports()[0].title, "rutin 0");
        outbox.file(draft("darurat", Priority::Urgent)).unwrap();
        let second = outbox.batch_from(3, 2, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(second.reports()[0].title, "darurat");
        assert_eq!(second.reports()[1].title, "rutin 2");
        // A resend of seq 1.. gives exactly the same reports.
        let again = outbox.batch_from(1, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(again.reports.len(), 4);
        assert_eq!(again.reports()[..2], first.reports()[..]);
    }

    #[test]
    fn acks_delete_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let epoch;
        {
            let outbox = Outbox::open(dir.path()).unwrap();
            epoch = outbox.epoch();
            for i in 0..4 {
                outbox
                    .file(draft(&format!("r{i}"), Priority::Normal))
                    .unwrap();
            }
            outbox.batch_from(1, 3, usize::MAX, 1).unwrap().unwrap();
            outbox.ack(2, 0).unwrap();
        }
        let outbox = Outbox::open(dir.path()).unwrap();
        assert_eq!(outbox.epoch(), epoch);
        let stats = outbox.stats().unwrap();
        assert_eq!((stats.acked_seq, stats.next_seq, stats.backlog), (2, 4, 2));
        assert!(stats.last_sync_at.is_some());
        let rest = outbox.batch_from(3, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(rest.reports.len(), 1);
        let next = outbox.batch_from(4, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(next.reports()[0].title, "r3");
    }

    #[test]
    fn acknowledged_reports_are_retained_for_a_resend() {
        let (_dir, outbox) = outbox_with(6, "r");
        outbox.batch_from(1, 6, usize::MAX, 1).unwrap().unwrap();
        outbox.ack(5, 3).unwrap();
        let p = outbox.positions().unwrap();
        assert_eq!((p.acked, p.oldest_retained, p.next_seq), (5, 3, 7));
        assert_eq!(outbox.stats().unwrap().backlog, 1);
        assert_eq!(outbox.unacknowledged().unwrap().len(), 1);
        // A collector restored to hwm 2 asks again from 3: the retained reports are there.
        let again = outbox.batch_from(3, 10, usize::MAX, 1).unwrap().unwrap();
        let titles: Vec<String> = again.reports().into_iter().map(|r| r.title).collect();
        assert_eq!(titles, ["r2", "r3", "r4", "r5"]);
    }

    #[test]
    fn seqs_for_several_batches_are_given_at_once_and_sent_from_the_log() {
        let (_dir, outbox) = outbox_with(7, "r");
        // Three batches of two: the first comes back, the others are in the log already.
        let first = outbox.batch_from(1, 2, usize::MAX, 3).unwrap().unwrap();
        assert_eq!((first.first_seq, first.reports.len()), (1, 2));
        assert_eq!(outbox.positions().unwrap().next_seq, 7);
        assert_eq!(outbox.stats().unwrap().backlog, 7);
        let second = outbox.batch_from(3, 2, usize::MAX, 3).unwrap().unwrap();
        let third = outbox.batch_from(5, 2, usize::MAX, 3).unwrap().unwrap();
        assert_eq!(
            (
                second.reports()[0].title.as_str(),
                third.reports()[1].title.as_str()
            ),
            ("r2", "r5")
        );
        // The seventh is given its seq only when asked for.
        let last = outbox.batch_from(7, 2, usize::MAX, 3).unwrap().unwrap();
        assert_eq!((last.first_seq, last.reports.len()), (7, 1));
        assert!(outbox.batch_from(8, 2, usize::MAX, 3).unwrap().is_none());
    }

    /// One batch of up to ten reports, of any size.
    const ONE_BATCH_OF_TEN: BatchShape = BatchShape {
        max_reports: 10,
        max_bytes: usize::MAX,
        batches: 1,
    };

    #[test]
    fn seqs_are_planned_without_the_lock_and_reports_filed_meanwhile_wait_their_turn() {
        let (_dir, outbox) = outbox_with(2, "r");
        let shape = ONE_BATCH_OF_TEN;
        let plan = outbox.plan_seqs(1, shape).unwrap().unwrap();
        // Filed between the plan and the write: an urgent report and a routine one.
        outbox.file(draft("darurat", Priority::Urgent)).unwrap();
        outbox.file(draft("r2", Priority::Normal)).unwrap();
        let first = outbox.give_seqs(1, shape, plan).unwrap().unwrap();
        let titles = |s: &Staged| {
            s.reports()
                .iter()
                .map(|r| r.title.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            (first.first_seq, titles(&first)),
            (1, vec!["r0".into(), "r1".into()])
        );
        // The urgent one comes first of the rest; seqs stay dense.
        let next = outbox.batch_from(3, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(
            (next.first_seq, titles(&next)),
            (3, vec!["darurat".into(), "r2".into()])
        );
        // A plan for a seq already given is no plan.
        assert!(outbox.plan_seqs(1, shape).unwrap().is_none());
    }

    #[test]
    fn a_plan_from_moved_marks_is_made_again_under_the_lock() {
        let (_dir, outbox) = outbox_with(1, "r");
        let shape = ONE_BATCH_OF_TEN;
        let mut stale = outbox.plan_seqs(1, shape).unwrap().unwrap();
        outbox.file(draft("r1", Priority::Normal)).unwrap();
        // Taken as it is, the plan would give seqs to r0 only; its marks no longer match
        // (as after a new epoch), so it is made again and takes r1 too.
        stale.marks.epoch ^= 1;
        let staged = outbox.give_seqs(1, shape, stale).unwrap().unwrap();
        assert_eq!(staged.reports.len(), 2);
        assert_eq!(outbox.positions().unwrap().next_seq, 3);
        // A new epoch in between with nothing sent leaves the next seq and the cursors where
        // they were: the seqs go out in the new epoch, and its acknowledgement frees them.
        let (_dir, outbox) = outbox_with(1, "r");
        let plan = outbox.plan_seqs(1, shape).unwrap().unwrap();
        let epoch = outbox.start_new_epoch().unwrap();
        let staged = outbox.give_seqs(1, shape, plan).unwrap().unwrap();
        assert_eq!((staged.first_seq, staged.reports.len()), (1, 1));
        assert_eq!(outbox.epoch(), epoch);
        outbox.ack(1, 0).unwrap();
        assert_eq!(held_reports(&outbox), 0);
    }

    /// An outbox whose `n` reports were all given seqs (1..=n) and sent: it, its unsent bytes,
    /// and each report's encoded size.
    fn all_sent(n: usize) -> (tempfile::TempDir, Outbox, u64, Vec<u64>) {
        let (dir, outbox) = outbox_with(n, "r");
        let full = outbox.stats().unwrap().unsent_bytes;
        let staged = outbox.batch_from(1, n, usize::MAX, 1).unwrap().unwrap();
        let sizes = staged
            .reports()
            .iter()
            .map(|r| encode_value(r).len() as u64)
            .collect();
        (dir, outbox, full, sizes)
    }

    #[test]
    fn an_ack_frees_exactly_the_bytes_of_the_reports_it_acknowledges() {
        let (_dir, outbox, full, sizes) = all_sent(5);
        let size = |i: usize| sizes[i];
        outbox.ack(2, 0).unwrap();
        assert_eq!(
            outbox.stats().unwrap().unsent_bytes,
            full - size(0) - size(1)
        );
        // An ack at or below the last changes nothing; the next frees the rest.
        outbox.ack(1, 0).unwrap();
        assert_eq!(
            outbox.stats().unwrap().unsent_bytes,
            full - size(0) - size(1)
        );
        outbox.ack(5, 0).unwrap();
        assert_eq!(outbox.stats().unwrap().unsent_bytes, 0);
    }

    #[test]
    fn a_count_made_before_another_ack_is_made_again() {
        let (_dir, outbox, full, sizes) = all_sent(4);
        let size = |i: usize| sizes[i];
        let stale = outbox.count_acknowledged(3).unwrap();
        assert_eq!(stale.map(|(_, b)| b), Some(size(0) + size(1) + size(2)));
        outbox.ack(1, 0).unwrap();
        // Taken as it is, the count would free the first report's bytes twice.
        outbox.acknowledge(3, 0, &[], &[], stale).unwrap();
        assert_eq!(
            outbox.stats().unwrap().unsent_bytes,
            full - size(0) - size(1) - size(2)
        );
        assert!(outbox.count_acknowledged(3).unwrap().is_none());
    }

    #[test]
    fn the_quota_refuses_new_reports_and_frees_on_ack() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.set_max_bytes(1000);
        let mut saved = 0;
        let err = loop {
            match outbox.file(draft(&format!("r{saved}"), Priority::Normal)) {
                Ok(_) => saved += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(err, OutboxError::Full { limit: 1000, .. }),
            "{err}"
        );
        assert!(saved > 3);
        assert_eq!(outbox.stats().unwrap().backlog, saved);
        assert!(outbox.quota_refused());
        let staged = outbox.batch_from(1, 100, usize::MAX, 1).unwrap().unwrap();
        outbox.ack(staged.reports.len() as u64, 0).unwrap();
        assert_eq!(outbox.stats().unwrap().unsent_bytes, 0);
        assert!(!outbox.quota_refused());
        outbox.file(draft("again", Priority::Normal)).unwrap();
    }

    #[test]
    fn attachments_wait_in_filing_order_and_count_against_the_quota() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        outbox.set_max_bytes(10_000);
        let a = |n: u8, size: u64| AttachmentRef {
            hash: [n; 32],
            name: format!("{n}.jpg"),
            media_type: pasopati_common::attachment::MediaType::Jpeg,
            size,
        };
        let report = draft("foto", Priority::Normal)
            .validate(Taxonomy::builtin(), Timestamp::now())
            .unwrap();
        outbox
            .file_reports_once(
                std::slice::from_ref(&report),
                &[a(1, 4000), a(2, 3000)],
                None,
            )
            .unwrap();
        assert!(matches!(
            outbox.file_reports_once(&[report], &[a(3, 4000)], None),
            Err(OutboxError::Full { .. })
        ));
        let stats = outbox.stats().unwrap();
        assert_eq!(stats.attachments_pending, 2);
        assert!(stats.unsent_bytes > 7000);
        assert_eq!(outbox.next_attachment().unwrap().unwrap().hash, [1; 32]);
        outbox.attachment_done(&[1; 32]).unwrap();
        assert_eq!(outbox.next_attachment().unwrap().unwrap().hash, [2; 32]);
        assert_eq!(outbox.pending_attachments().unwrap().len(), 1);
        assert!(outbox.stats().unwrap().unsent_bytes < 4000);
    }

    #[test]
    fn a_second_process_is_told_the_outbox_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _held = Outbox::open(dir.path()).unwrap();
        assert!(matches!(
            Outbox::open(dir.path()),
            Err(OutboxError::Locked { .. })
        ));
    }

    #[test]
    fn a_new_epoch_requeues_sent_reports_in_front() {
        let (_dir, outbox) = outbox_with(4, "r");
        outbox.batch_from(1, 2, usize::MAX, 1).unwrap();
        let old = outbox.epoch();
        let new = outbox.start_new_epoch().unwrap();
        assert_ne!(old, new);
        let all = outbox.batch_from(1, 10, usize::MAX, 1).unwrap().unwrap();
        let titles: Vec<String> = all.reports().into_iter().map(|r| r.title).collect();
        assert_eq!(titles, ["r0", "r1", "r2", "r3"]);
    }

    #[test]
    fn a_report_shows_once_with_its_latest_revision_and_the_centers_verdict() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let first = outbox.file(draft("asli", Priority::Normal)).unwrap();
        let now = Timestamp::now();
        // Files a revision of `report` as the site would, returning it.
        let revise = |report: &Report, changes: pasopati_common::Revision| {
            let revised = report.revise(changes, Taxonomy::builtin(), now).unwrap();
            outbox.file_reports(std::slice::from_ref(&revised)).unwrap();
            revised
        };
        let edit = revise(
            &first,
            pasopati_common::Revision {
                title: Some("ralat".into()),
                ..Default::default()
            },
        );
        revise(
            &edit,
            pasopati_common::Revision {
                retract: Some("salah kirim".into()),
                ..Default::default()
            },
        );
        let other = outbox.file(draft("lain", Priority::Normal)).unwrap();
        let rows = outbox.recent_reports(10).unwrap();
        assert_eq!(rows.len(), 2, "one row per report: {rows:?}");
        let row = rows.iter().find(|r| r.report.id == first.id).unwrap();
        assert_eq!(row.report.revision, 2);
        assert!(row.report.retraction.is_some());
        assert_eq!(row.state, ReportState::Saved);

        // All four go out; the collector quarantines `lain` and stores the rest.
        let staged = outbox.batch_from(1, 10, usize::MAX, 1).unwrap().unwrap();
        let seq_of =
            |id: ReportId| 1 + staged.reports().iter().position(|r| r.id == id).unwrap() as u64;
        let quarantined = RefusedReport {
            seq: seq_of(other.id),
            id: other.id,
            revision: 0,
            reason: "body: mobile number at character 8".into(),
        };
        outbox
            .ack_with_verdicts(4, 10, &[], std::slice::from_ref(&quarantined))
            .unwrap();
        drop(outbox);
        // The verdict is durable.
        let outbox = Outbox::open(dir.path()).unwrap();
        let rows = outbox.recent_reports(10).unwrap();
        let state = |id| {
            rows.iter()
                .find(|r| r.report.id == id)
                .unwrap()
                .state
                .clone()
        };
        assert_eq!(state(first.id), ReportState::Delivered);
        assert_eq!(
            state(other.id),
            ReportState::Quarantined("body: mobile number at character 8".into())
        );
        let (count, latest) = outbox.verdicts(5).unwrap();
        assert_eq!(count, 1);
        assert_eq!(latest[0].title, "lain");
        assert_eq!(latest[0].kind, VerdictKind::Quarantined);
        assert!(outbox.verdict(&other.id, 0).unwrap().is_some());
        assert!(outbox.verdict(&first.id, 2).unwrap().is_none());
    }

    #[test]
    fn invalid_drafts_store_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(dir.path()).unwrap();
        let mut d = draft("x", Priority::Normal);
        d.category = "lain".into();
        assert!(matches!(outbox.file(d), Err(OutboxError::Invalid(_))));
        assert_eq!(outbox.stats().unwrap().backlog, 0);
    }
}
