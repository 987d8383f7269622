//! The outbox: every report filed at the site, durable in redb until the collector holds it.
//!
//! A filed report first waits in the queue, keyed by (priority lane, filing number), so urgent
//! reports come out first and each lane is first-in first-out. Just before it is sent, a report
//! is given the next seq of the epoch and moved to the sent log in one transaction; from then on
//! it is resent with that same seq until the collector acknowledges it, and only then deleted.
//! Giving seqs at sending time, not filing time, is what lets an urgent report overtake a routine
//! backlog while seqs stay dense, which the collector's exactly-once rule depends on.
//!
//! Every method that changes state commits with redb's default `Durability::Immediate`, so when
//! it returns the change is on disk, but one: a plain acknowledgement ([`Outbox::ack`]) commits
//! without an fsync of its own and becomes durable with the next durable commit (losing it
//! costs a resend the collector absorbs, never a report).

use pasopati_common::attachment::AttachmentRef;
use pasopati_common::frame::{decode_value, encode_value, RefusedReport};
use pasopati_common::profile;
use pasopati_common::storage::OpenError;
use pasopati_common::taxonomy::Taxonomy;
use pasopati_common::{Epoch, Priority, Report, ReportDraft, ReportId, Seq, Timestamp};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// (lane, filing number) → encoded report. Lane 0 is urgent, lane 1 routine.
const QUEUE: TableDefinition<(u8, u64), &[u8]> = TableDefinition::new("queue");
/// seq → encoded report, for reports given a seq and not yet acknowledged.
const SENT_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("sent_log");
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
const UNSENT_BYTES: &str = "unsent_bytes";
/// The default limit on unsent reports, in bytes of their encoding.
pub const DEFAULT_MAX_BYTES: u64 = 1 << 30;

/// The outbox file's name inside the data directory.
pub const OUTBOX_FILE: &str = "outbox.redb";

/// An outbox failure, with what the operator can do about it.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("the outbox {path} is in use by another process")]
    Locked { path: String },
    #[error("the outbox {path} cannot be opened: {message}. Check the permissions of the data directory")]
    Open { path: String, message: String },
    #[error("the outbox {path} is damaged ({reason})")]
    Damaged { path: String, reason: String },
    #[error(
        "outbox storage error: {0}. Check free disk space and permissions of the data directory"
    )]
    Storage(#[source] redb::Error),
    #[error("outbox storage error: {0}. Check free disk space and permissions of the data directory; the agent daemon restarts to reopen its outbox")]
    NeedsReopen(#[source] redb::Error),
    #[error("a stored report cannot be decoded ({0}); the outbox may be damaged")]
    Corrupt(#[source] pasopati_common::frame::FrameError),
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

/// A run of reports with consecutive seqs, ready to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub first_seq: Seq,
    pub reports: Vec<Report>,
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
        let (db, epoch) = pasopati_common::storage::open_prepared(&path, |txn| {
            let mut meta = txn.open_table(META)?;
            txn.open_table(QUEUE)?;
            txn.open_table(SENT_LOG)?;
            txn.open_table(LATEST)?;
            txn.open_table(INBOX_SEEN)?;
            txn.open_table(PENDING_ATTACHMENTS)?;
            txn.open_table(VERDICTS)?;
            let existing = meta.get(EPOCH)?.map(|v| v.value());
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
        let txn = self.db.begin_write()?;
        if let Some(hash) = source {
            let mut seen = txn.open_table(INBOX_SEEN)?;
            if seen.get(&hash[..])?.is_some() {
                return Ok(false);
            }
            seen.insert(&hash[..], Timestamp::now().0.max(0) as u64)?;
        }
        {
            let mut meta = txn.open_table(META)?;
            let mut queue = txn.open_table(QUEUE)?;
            let encoded: Vec<Vec<u8>> = reports.iter().map(encode_value).collect();
            let adding: u64 = encoded.iter().map(|e| e.len() as u64).sum::<u64>()
                + attachments.iter().map(|a| a.size).sum::<u64>();
            let used = get(&meta, UNSENT_BYTES)?;
            let limit = self.max_bytes();
            if used + adding > limit {
                self.full.store(true, Ordering::SeqCst);
                return Err(OutboxError::Full { used, limit });
            }
            let mut filing = get(&meta, NEXT_FILING)?;
            let mut latest = txn.open_table(LATEST)?;
            for (report, bytes) in reports.iter().zip(&encoded) {
                queue.insert((lane(report.priority), filing), bytes.as_slice())?;
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
        }
        txn.commit()?;
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
    ) -> Result<Vec<Report>, OutboxError> {
        let txn = self.db.begin_read()?;
        let log = txn.open_table(SENT_LOG)?;
        let mut out = Vec::new();
        let mut bytes = 0;
        for (expected, entry) in (from..).zip(log.range(from..)?) {
            let (seq, value) = entry?;
            if seq.value() != expected
                || out.len() >= max_reports
                || (bytes >= max_bytes && !out.is_empty())
            {
                break;
            }
            bytes += value.value().len();
            out.push(decode_report(value.value())?);
        }
        Ok(out)
    }

    /// Gives the next reports in the queue their seqs, starting at `from`, which must be the
    /// outbox's next seq (anything else means the log still holds unsent entries), for up to
    /// `batches` batches; returns the first.
    fn stage(
        &self,
        from: Seq,
        max_reports: usize,
        max_bytes: usize,
        batches: usize,
    ) -> Result<Option<Staged>, OutboxError> {
        let txn = self.db.begin_write()?;
        let mut reports = Vec::new();
        {
            let mut meta = txn.open_table(META)?;
            let next_seq = get(&meta, NEXT_SEQ)?;
            if next_seq != from {
                return Ok(None);
            }
            let mut queue = txn.open_table(QUEUE)?;
            let mut log = txn.open_table(SENT_LOG)?;
            let mut seq = next_seq;
            // The first batch is decoded and returned; the others only move to the log.
            for batch in 0..batches {
                let (mut count, mut bytes) = (0usize, 0usize);
                while count < max_reports && (bytes < max_bytes || count == 0) {
                    let Some((_, value)) = queue.pop_first()? else {
                        break;
                    };
                    let raw = value.value().to_vec();
                    drop(value);
                    bytes += raw.len();
                    count += 1;
                    if batch == 0 {
                        reports.push(decode_report(&raw)?);
                    }
                    log.insert(seq, raw.as_slice())?;
                    seq += 1;
                }
                if count < max_reports && bytes < max_bytes {
                    break;
                }
            }
            if reports.is_empty() {
                return Ok(None);
            }
            meta.insert(NEXT_SEQ, seq)?;
        }
        txn.commit()?;
        Ok(Some(Staged {
            first_seq: from,
            reports,
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
                let from_log = match log.get(r.seq)? {
                    Some(v) => Some(decode_report(v.value())?),
                    None => None,
                };
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
            let acked = get(&meta, ACKED_SEQ)?;
            if hwm > acked {
                let mut freed = 0u64;
                for entry in log.range(acked + 1..=hwm)? {
                    freed += entry?.1.value().len() as u64;
                }
                let used = get(&meta, UNSENT_BYTES)?;
                meta.insert(UNSENT_BYTES, used.saturating_sub(freed))?;
                if freed > 0 {
                    self.full.store(false, Ordering::SeqCst);
                }
                let keep_from = hwm.saturating_sub(retain) + 1;
                log.retain_in(..keep_from, |_, _| false)?;
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
            let mut queue = txn.open_table(QUEUE)?;
            let mut log = txn.open_table(SENT_LOG)?;
            // Renumber the lanes: the unacknowledged reports from the sent log first, in seq
            // order, then the queue as it was. Acknowledged ones belong to the old epoch and are
            // dropped. This is rare (an outbox restored from a copy), so O(n) is fine.
            let acked = get(&meta, ACKED_SEQ)?;
            let mut reordered = Vec::new();
            while let Some((seq, value)) = log.pop_first()? {
                if seq.value() > acked {
                    reordered.push(value.value().to_vec());
                }
            }
            while let Some((_, value)) = queue.pop_first()? {
                reordered.push(value.value().to_vec());
            }
            for (filing, raw) in reordered.iter().enumerate() {
                let report = decode_report(raw)?;
                queue.insert((lane(report.priority), filing as u64), raw.as_slice())?;
            }
            meta.insert(NEXT_FILING, reordered.len() as u64)?;
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
        let queue = txn.open_table(QUEUE)?;
        let log = txn.open_table(SENT_LOG)?;
        let mut oldest: Option<Timestamp> = None;
        let mut consider = |raw: &[u8]| -> Result<(), OutboxError> {
            let r = decode_report(raw)?;
            oldest = Some(oldest.map_or(r.filed_at, |o| o.min(r.filed_at)));
            Ok(())
        };
        let acked = get(&meta, ACKED_SEQ)?;
        let next_seq = get(&meta, NEXT_SEQ)?;
        if let Some(entry) = log.range(acked + 1..)?.next() {
            consider(entry?.1.value())?;
        }
        for lane in [0u8, 1u8] {
            if let Some(entry) = queue.range((lane, 0)..=(lane, u64::MAX))?.next() {
                let (_, v) = entry?;
                consider(v.value())?;
            }
        }
        let queued_urgent = queue.range((0u8, 0)..=(0u8, u64::MAX))?.count() as u64;
        let last_sync = meta.get(LAST_SYNC_AT)?.map(|v| Timestamp(v.value() as i64));
        let attachments_pending = txn.open_table(PENDING_ATTACHMENTS)?.len()?;
        Ok(OutboxStats {
            epoch: self.epoch(),
            backlog: queue.len()? + next_seq.saturating_sub(acked + 1),
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
        let acked = get(&txn.open_table(META)?, ACKED_SEQ)?;
        let mut out = Vec::new();
        let queue = txn.open_table(QUEUE)?;
        for lane in [0u8, 1u8] {
            for entry in queue.range((lane, 0)..=(lane, u64::MAX))?.rev().take(limit) {
                out.push((decode_report(entry?.1.value())?, false));
            }
        }
        for entry in txn.open_table(SENT_LOG)?.iter()?.rev().take(limit) {
            let (seq, value) = entry?;
            out.push((decode_report(value.value())?, seq.value() <= acked));
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
        let acked = get(&txn.open_table(META)?, ACKED_SEQ)?;
        let mut out = Vec::new();
        for entry in txn.open_table(SENT_LOG)?.range(acked + 1..)? {
            out.push(decode_report(entry?.1.value())?.id);
        }
        for entry in txn.open_table(QUEUE)?.iter()? {
            out.push(decode_report(entry?.1.value())?.id);
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn urgent_reports_are_sequenced_first_and_seqs_stay_dense() {
        let (_dir, outbox) = outbox_with(5, "rutin ");
        let first = outbox.batch_from(1, 2, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(first.first_seq, 1);
        assert_eq!(first.reports[0].title, "rutin 0");
        outbox.file(draft("darurat", Priority::Urgent)).unwrap();
        let second = outbox.batch_from(3, 2, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(second.reports[0].title, "darurat");
        assert_eq!(second.reports[1].title, "rutin 2");
        // A resend of seq 1.. gives exactly the same reports.
        let again = outbox.batch_from(1, 10, usize::MAX, 1).unwrap().unwrap();
        assert_eq!(again.reports.len(), 4);
        assert_eq!(again.reports[..2], first.reports[..]);
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
        assert_eq!(next.reports[0].title, "r3");
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
        let titles: Vec<_> = again.reports.iter().map(|r| r.title.as_str()).collect();
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
                second.reports[0].title.as_str(),
                third.reports[1].title.as_str()
            ),
            ("r2", "r5")
        );
        // The seventh is given its seq only when asked for.
        let last = outbox.batch_from(7, 2, usize::MAX, 3).unwrap().unwrap();
        assert_eq!((last.first_seq, last.reports.len()), (7, 1));
        assert!(outbox.batch_from(8, 2, usize::MAX, 3).unwrap().is_none());
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
        let staged = outbox.batch_from(1, 100, usize::MAX, 1).unwrap().unwrap();
        outbox.ack(staged.reports.len() as u64, 0).unwrap();
        assert_eq!(outbox.stats().unwrap().unsent_bytes, 0);
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
        let titles: Vec<_> = all.reports.iter().map(|r| r.title.as_str()).collect();
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
            |id: ReportId| 1 + staged.reports.iter().position(|r| r.id == id).unwrap() as u64;
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
