//! The report log: the stored reports' bytes, appended to a file of their own beside the redb
//! file (`collector.reports.log`), while the `reports` table keeps, for each arrival, where its
//! record is in the log.
//!
//! A report is about a kilobyte. Kept inside redb, each one is copied into the B-tree's leaves,
//! which appends leave half full, so a commit wrote about twice the reports' bytes and the
//! store's one writer spent most of its time in B-tree inserts (TESTING.md, "The report log").
//! In the log, a group commit's reports are one sequential write and one `fdatasync`, and the
//! table holds 13 bytes a report.
//!
//! # The rules that keep it exact
//!
//! - A group commit writes its records to the log and syncs them *before* its redb transaction
//!   commits, and that transaction moves the log's end ([`LOG_END`] in `meta`) past them. So a
//!   committed entry of the table never names bytes that are not on disk, and an ack (sent
//!   after the commit) still means durable.
//! - Bytes past the committed end are a group that failed or whose commit a crash cut off:
//!   nothing names them, and the next group writes over them.
//! - The log only grows: a record, once named, never changes, so a reader resolves what its
//!   read transaction names without a lock.
//! - Each record carries its length and a CRC-32, checked on every read: a damaged record is a
//!   [`StoreError::Corrupt`], never a wrong report.
//! - The log belongs to one store: its header holds an identity the store keeps in `meta`. A
//!   log that is not the store's (a store restored from a backup, or a new one after the old
//!   was moved aside as damaged) is moved aside, never read or written.
//!
//! Records kept inline (stores older than layout 5, and reports released from quarantine) stay
//! where they are; a `reports` value names the log only when it begins with [`IN_LOG`], a byte
//! no bincode record of a [`super::StoredReport`] begins with (its first field is a varint, and
//! bincode's varints never begin with 255).

use super::{StoreError, META};
use redb::ReadableTable;
use std::borrow::Cow;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// The log's file name beside the store's.
pub const LOG_FILE: &str = "collector.reports.log";

/// `meta`: the log's committed end, in bytes from the start of the file.
const LOG_END: &str = "report_log_end";
/// `meta`: the log's identity, two halves.
const LOG_ID_HIGH: &str = "report_log_id_high";
const LOG_ID_LOW: &str = "report_log_id_low";

/// Whether `key` of `meta` is one of the log's own marks (its end, its identity).
pub(super) fn is_log_mark(key: &str) -> bool {
    [LOG_END, LOG_ID_HIGH, LOG_ID_LOW].contains(&key)
}

/// What a log file begins with: this, then its identity (16 bytes).
const MAGIC: &[u8; 16] = b"PASOPATI-RLOG-v1";
const HEADER_LEN: u64 = 32;
/// A record's frame before its bytes: its length and its CRC-32, little-endian.
const FRAME_LEN: usize = 8;
/// The largest record the log takes: far above any report the limits let in.
const MAX_RECORD: u32 = 64 << 20;

/// The first byte of a `reports` value that names a record in the log.
pub(super) const IN_LOG: u8 = 255;
/// A `reports` value naming a record in the log: [`IN_LOG`], its offset, its length.
pub(super) type LogValue = [u8; 13];

/// The report log of one store.
#[derive(Debug)]
pub struct ReportLog {
    /// The log, read through the page cache.
    file: File,
    path: PathBuf,
    /// How groups are written; only the store's one writer writes.
    disk: std::sync::Mutex<DiskWriter>,
    /// The buffer of the last group's appends, kept for the next: a group is a megabyte or
    /// more, and memory the allocator hands back fresh costs a page fault per page (most of
    /// the writer's time, measured with a hundred sites syncing at once).
    spare: std::sync::Mutex<Vec<u8>>,
    /// Set when a write or sync failed. What a failed `fdatasync` left on disk is unknown, so,
    /// as redb does after an I/O error, nothing more is written until the store is reopened
    /// (whatever the failed group left is then written over).
    failed: std::sync::atomic::AtomicBool,
}

/// The records a group commit appends, from the log's committed end, until it writes them.
#[derive(Debug)]
pub(super) struct Appends {
    base: u64,
    bytes: Vec<u8>,
}

impl Appends {
    /// Appends `record`, returning the `reports` value that names it.
    pub(super) fn push(&mut self, record: &[u8]) -> Result<LogValue, StoreError> {
        let len = u32::try_from(record.len())
            .ok()
            .filter(|len| *len <= MAX_RECORD)
            .ok_or_else(|| {
                StoreError::Internal(format!(
                    "a stored report of {} bytes is larger than the report log takes",
                    record.len()
                ))
            })?;
        let offset = self.base + self.bytes.len() as u64;
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes
            .extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        self.bytes.extend_from_slice(record);
        let mut value = [0u8; 13];
        value[0] = IN_LOG;
        value[1..9].copy_from_slice(&offset.to_le_bytes());
        value[9..].copy_from_slice(&len.to_le_bytes());
        Ok(value)
    }

    /// Whether nothing was appended.
    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The record at `offset` if this group appended it.
    fn get(&self, offset: u64, len: u32) -> Option<Result<&[u8], StoreError>> {
        let at = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        let frame = self
            .bytes
            .get(at..at.checked_add(FRAME_LEN + len as usize)?);
        Some(match frame {
            Some(frame) => check_frame(frame, offset, len),
            None => Err(StoreError::Internal(format!(
                "a report named at {offset} of the report log is past what this commit appended"
            ))),
        })
    }
}

impl ReportLog {
    /// Opens the log of the store whose write transaction `txn` prepares the store's file at
    /// `store`, making a new one if the store has none. Refuses a log that is missing, cut
    /// short, or another store's ([`StoreError::ReportLog`]: nothing is moved aside).
    pub(super) fn open(
        txn: &redb::WriteTransaction,
        store: &Path,
    ) -> Result<ReportLog, StoreError> {
        let path = store.with_file_name(LOG_FILE);
        let mut meta = txn.open_table(META)?;
        let high = meta.get(LOG_ID_HIGH)?.map(|v| v.value());
        let low = meta.get(LOG_ID_LOW)?.map(|v| v.value());
        let end = meta.get(LOG_END)?.map(|v| v.value()).unwrap_or(HEADER_LEN);
        let unfit = |problem: String| StoreError::ReportLog {
            path: path.display().to_string(),
            problem,
        };
        let io = |what: &str, e: std::io::Error| {
            StoreError::Storage(format!("the report log {}: {what}: {e}", path.display()))
        };
        let (Some(high), Some(low)) = (high, low) else {
            // The store has no log yet (a new store, one of an older layout, or one restored
            // from a backup, which holds its reports inline): any file there is not its log.
            if path.exists() {
                let moved = pasopati_common::storage::move_aside(&path)
                    .map_err(|e| io("moving aside a log that is not this store's", e))?;
                tracing::warn!(moved = %moved.display(),
                    "a report log that belongs to no store here was moved aside (the store beside it is new or restored)");
            }
            let high = u64::from_be_bytes(pasopati_common::random_bytes());
            let low = u64::from_be_bytes(pasopati_common::random_bytes());
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io("creating it", e))?;
            file.write_all_at(&header(high, low), 0)
                .and_then(|()| file.sync_all())
                .map_err(|e| io("writing its header", e))?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io("syncing its directory", e))?;
            }
            meta.insert(LOG_ID_HIGH, high)?;
            meta.insert(LOG_ID_LOW, low)?;
            meta.insert(LOG_END, HEADER_LEN)?;
            return Ok(ReportLog::new(file, path));
        };
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(unfit("is missing".into()))
            }
            Err(e) => return Err(io("opening it", e)),
        };
        let len = file
            .metadata()
            .map_err(|e| io("reading its length", e))?
            .len();
        if len < end {
            return Err(unfit(format!(
                "is cut short: it holds {len} bytes where the store has {end}"
            )));
        }
        let mut found = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut found, 0)
            .map_err(|e| io("reading its header", e))?;
        if found != header(high, low) {
            return Err(unfit("belongs to another store".into()));
        }
        // Bytes past the committed end are a group whose commit never happened; nothing names
        // them and the next group writes over them. They are left, not cut off: if an older
        // copy of collector.redb was put back beside this log, the newer one still fits it.
        Ok(ReportLog::new(file, path))
    }

    fn new(file: File, path: PathBuf) -> ReportLog {
        let disk = DiskWriter::open(&path);
        ReportLog {
            file,
            path,
            disk: std::sync::Mutex::new(disk),
            spare: std::sync::Mutex::new(Vec::new()),
            failed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Begins a group commit's appends at the log's committed end as `txn` reads it.
    pub(super) fn appends(&self, txn: &redb::WriteTransaction) -> Result<Appends, StoreError> {
        let base = txn
            .open_table(META)?
            .get(LOG_END)?
            .map(|v| v.value())
            .unwrap_or(HEADER_LEN);
        let mut bytes = self
            .spare
            .lock()
            .map(|mut spare| std::mem::take(&mut *spare))
            .unwrap_or_default();
        bytes.clear();
        Ok(Appends { base, bytes })
    }

    /// Keeps the buffer of a group's appends for the next group.
    pub(super) fn recycle(&self, appends: Appends) {
        if let Ok(mut spare) = self.spare.lock() {
            *spare = appends.bytes;
        }
    }

    /// Writes a group's appends and syncs them, then moves the committed end past them in
    /// `txn`: the caller commits `txn` next, and only if this returned `Ok`.
    pub(super) fn write(
        &self,
        appends: &Appends,
        txn: &redb::WriteTransaction,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        // Checked first: a group that stores no report (only a refusal, say a gap behind the
        // batch that failed) must not commit either, or it would record what the failed batch
        // left unstored as missing.
        if self.failed.load(Ordering::Acquire) {
            return Err(StoreError::NeedsReopen);
        }
        if appends.is_empty() {
            return Ok(());
        }
        let written = match self.disk.lock() {
            Ok(mut disk) => disk.write(&self.file, &self.path, appends),
            Err(_) => Err(std::io::Error::other("an earlier write panicked")),
        };
        if let Err(e) = written {
            self.failed.store(true, Ordering::Release);
            tracing::error!(log = %self.path.display(), error = %e,
                "writing to the report log failed; nothing of the group was stored");
            return Err(StoreError::NeedsReopen);
        }
        let end = appends.base + appends.bytes.len() as u64;
        txn.open_table(META)?.insert(LOG_END, end)?;
        Ok(())
    }

    /// The bytes of the stored report whose `reports` value is `value`: the value itself when
    /// the record is inline, else the record it names in the log, or in `appends` (a group
    /// commit reading what it appended itself).
    pub(super) fn record<'v>(
        &self,
        value: &'v [u8],
        appends: Option<&Appends>,
    ) -> Result<Cow<'v, [u8]>, StoreError> {
        if value.first() != Some(&IN_LOG) {
            return Ok(Cow::Borrowed(value));
        }
        let (offset, len) = named(value)?;
        if let Some(found) = appends.and_then(|a| a.get(offset, len)) {
            return found.map(|record| Cow::Owned(record.to_vec()));
        }
        let mut frame = vec![0u8; FRAME_LEN + len as usize];
        self.file.read_exact_at(&mut frame, offset).map_err(|e| {
            StoreError::Corrupt(format!(
                "the report at {offset} of the report log {} cannot be read: {e}",
                self.path.display()
            ))
        })?;
        check_frame(&frame, offset, len)?;
        frame.drain(..FRAME_LEN);
        Ok(Cow::Owned(frame))
    }
}

/// The alignment of direct writes: the largest logical block size of the disks in use.
const BLOCK: usize = 4096;

/// How a group's records reach the disk: with direct I/O (`O_DIRECT`) where the file system
/// takes it, else through the page cache.
///
/// A group is a megabyte or so of new bytes. Written through the page cache, every one of its
/// pages is a page the kernel allocates and fills, then writes back at the `fdatasync`; on the
/// virtual machines measured here that copy into new pages was most of the store's writer's
/// time (TESTING.md, "The report log written direct"). A direct write goes from one reused
/// buffer to the disk. It must begin and end on a block boundary, so each write begins at the
/// block holding the committed end, carrying that block's bytes before the end again (kept
/// from the last write), and is padded with zeros to a whole block: the padding is past the
/// committed end, where the next group writes. The `fdatasync` after it stays: it makes the
/// file's new length and the disk's own cache durable.
#[derive(Debug)]
struct DiskWriter {
    /// The log opened for direct writes, while the file system takes them.
    direct: Option<File>,
    /// The log's bytes from the start of the block holding `tail_end` to `tail_end`, as the
    /// last direct write left them.
    tail: Vec<u8>,
    tail_end: u64,
    /// Reused for every direct write; a block-aligned part of it is written.
    buffer: Vec<u8>,
}

impl DiskWriter {
    fn open(path: &Path) -> DiskWriter {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(path);
        let direct = match direct {
            Ok(file) => Some(file),
            Err(e) => {
                tracing::info!(log = %path.display(), error = %e,
                    "the report log is written through the page cache (this file system takes no direct writes)");
                None
            }
        };
        DiskWriter {
            direct,
            tail: Vec::new(),
            tail_end: 0,
            buffer: Vec::new(),
        }
    }

    /// Writes `appends` at their place and syncs them. `file` reads the log (for the block
    /// before the appends when the last write did not end there).
    fn write(&mut self, file: &File, path: &Path, appends: &Appends) -> std::io::Result<()> {
        if let Some(direct) = &self.direct {
            let block = BLOCK as u64;
            let start = appends.base - appends.base % block;
            let head = (appends.base - start) as usize;
            if self.tail_end != appends.base || self.tail.len() != head {
                self.tail.resize(head, 0);
                file.read_exact_at(&mut self.tail, start)?;
            }
            let len = head + appends.bytes.len();
            let padded = len.div_ceil(BLOCK) * BLOCK;
            if self.buffer.len() < padded + BLOCK {
                self.buffer = vec![0; (padded + BLOCK).next_power_of_two()];
            }
            let at = self.buffer.as_ptr().align_offset(BLOCK);
            let Some(buffer) = self.buffer.get_mut(at..at + padded) else {
                return Err(std::io::Error::other(
                    "no block-aligned buffer for the report log",
                ));
            };
            buffer[..head].copy_from_slice(&self.tail);
            buffer[head..len].copy_from_slice(&appends.bytes);
            buffer[len..].fill(0);
            match direct.write_all_at(buffer, start) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    // The file system opened the file for direct I/O but takes no direct
                    // write of this shape: nothing was written, so the page cache does it.
                    tracing::info!(log = %path.display(), error = %e,
                        "the report log is written through the page cache from now on (this file system refused a direct write)");
                    self.direct = None;
                }
                written => {
                    written?;
                    direct.sync_data()?;
                    let end = appends.base + appends.bytes.len() as u64;
                    let from = (end - end % block - start) as usize;
                    self.tail.clear();
                    self.tail.extend_from_slice(&buffer[from..len]);
                    self.tail_end = end;
                    return Ok(());
                }
            }
        }
        file.write_all_at(&appends.bytes, appends.base)?;
        file.sync_data()
    }
}

/// The header of the log whose identity is (`high`, `low`): [`MAGIC`], then the identity.
fn header(high: u64, low: u64) -> [u8; HEADER_LEN as usize] {
    let mut header = [0u8; HEADER_LEN as usize];
    header[..16].copy_from_slice(MAGIC);
    header[16..24].copy_from_slice(&high.to_be_bytes());
    header[24..].copy_from_slice(&low.to_be_bytes());
    header
}

/// Where a `reports` value beginning with [`IN_LOG`] says its record is.
fn named(value: &[u8]) -> Result<(u64, u32), StoreError> {
    let bad = || StoreError::Corrupt(format!("a report's place in the report log ({value:?})"));
    let value: &LogValue = value.try_into().map_err(|_| bad())?;
    let offset = u64::from_le_bytes(value[1..9].try_into().map_err(|_| bad())?);
    let len = u32::from_le_bytes(value[9..].try_into().map_err(|_| bad())?);
    if len > MAX_RECORD {
        return Err(bad());
    }
    Ok((offset, len))
}

/// The record of a frame read at `offset`, if its length and CRC-32 are the ones it was
/// written with.
fn check_frame(frame: &[u8], offset: u64, len: u32) -> Result<&[u8], StoreError> {
    let (head, record) = frame.split_at(FRAME_LEN.min(frame.len()));
    let written_len = head
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    let written_crc = head
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    if written_len != Some(len) || written_crc != Some(crc32fast::hash(record)) {
        return Err(StoreError::Corrupt(format!(
            "the report at {offset} of the report log fails its check (length or CRC-32)"
        )));
    }
    Ok(record)
}

/// A group commit's way to the reports' bytes: the log, and what the group has appended to it
/// so far (its own reports, which later batches of the group may look up).
pub(super) struct Records<'a> {
    pub(super) log: &'a ReportLog,
    pub(super) appends: &'a mut Appends,
}

impl Records<'_> {
    /// Reads, as of what the group appended so far.
    pub(super) fn reader(&self) -> RecordReader<'_> {
        RecordReader {
            log: self.log,
            appends: Some(self.appends),
        }
    }
}

/// The way to a stored report from its `reports` value, inline or in the log.
pub(super) struct RecordReader<'a> {
    log: &'a ReportLog,
    appends: Option<&'a Appends>,
}

impl RecordReader<'_> {
    /// The record bytes of the `reports` value `value`.
    pub(super) fn record<'v>(&self, value: &'v [u8]) -> Result<Cow<'v, [u8]>, StoreError> {
        self.log.record(value, self.appends)
    }

    /// The stored report whose `reports` value is `value`.
    pub(super) fn report(&self, value: &[u8]) -> Result<super::StoredReport, StoreError> {
        super::decode(&self.log.record(value, self.appends)?)
    }
}

impl ReportLog {
    /// Reads for a transaction that appends nothing (committed records only).
    pub(super) fn reader(&self) -> RecordReader<'_> {
        RecordReader {
            log: self,
            appends: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{apply, batch, redb_store, site, T0};
    use crate::store::{BatchJob, BatchOutcome, ReportQuery, Store, REPORTS};
    use pasopati_common::frame::Limits;
    use pasopati_common::pii::PiiGuard;
    use pasopati_common::{Epoch, Report, Timestamp};
    use redb::ReadableDatabase;

    const E: Epoch = Epoch(1);

    fn log_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(LOG_FILE)).unwrap().len()
    }

    /// The log's committed end as the closed store of `dir` has it (the file runs on to a
    /// whole block past it).
    fn log_end(dir: &Path) -> usize {
        let db = redb::Database::open(dir.join(crate::store::STORE_FILE)).unwrap();
        let read = db.begin_read().unwrap();
        let end = read
            .open_table(META)
            .unwrap()
            .get(LOG_END)
            .unwrap()
            .unwrap()
            .value();
        end as usize
    }

    /// Stores reports 11 to 15 after 1 to 10 in `s`, the store of `dir`, and finds all
    /// fifteen, before and after reopening it.
    fn stores_on_across_a_reopen(dir: &Path, s: Store) {
        apply(&s, &site(), E, &batch(11, 5), Timestamp(T0));
        assert_eq!(stored(&s), batch(1, 15).reports);
        drop(s);
        assert_eq!(stored(&Store::open(dir).unwrap()), batch(1, 15).reports);
    }

    fn stored(s: &Store) -> Vec<Report> {
        s.reports(&ReportQuery::default())
            .unwrap()
            .into_iter()
            .map(|r| r.report)
            .collect()
    }

    /// What is wrong with the log, as the refusal to open the store says it.
    fn problem_of(dir: &Path) -> String {
        match Store::open(dir) {
            Err(StoreError::ReportLog { problem, .. }) => problem,
            Err(other) => panic!("refused, but not for its report log: {other}"),
            Ok(_) => panic!("opened"),
        }
    }

    #[test]
    fn stored_reports_are_in_the_log_and_the_table_only_names_them() {
        let (dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 20), Timestamp(T0));
        assert!(log_len(dir.path()) > HEADER_LEN + 20 * 100);
        {
            let read = s.as_redb().unwrap().db.begin_read().unwrap();
            let table = read.open_table(REPORTS).unwrap();
            for entry in table.iter().unwrap() {
                let value = entry.unwrap().1.value().to_vec();
                assert_eq!((value.len(), value[0]), (13, IN_LOG));
            }
        }
        assert_eq!(stored(&s), batch(1, 20).reports);
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(stored(&s), batch(1, 20).reports);
    }

    /// A group's bytes written to the log but never committed (a crash, or a failed commit)
    /// are named by nothing: the store opens with them there, and the next group writes where
    /// they were.
    #[test]
    fn a_tail_no_commit_names_is_written_over() {
        let (dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 10), Timestamp(T0));
        let committed = log_len(dir.path());
        {
            let redb = s.as_redb().unwrap();
            let txn = redb.db.begin_write().unwrap();
            let mut appends = redb.log.appends(&txn).unwrap();
            appends.push(&[0x5a; 4_000]).unwrap();
            redb.log.write(&appends, &txn).unwrap();
            txn.abort().unwrap();
        }
        assert!(log_len(dir.path()) > committed);
        drop(s);
        stores_on_across_a_reopen(dir.path(), Store::open(dir.path()).unwrap());
    }

    /// Groups written direct, at block boundaries or not, and a group written where the last
    /// write did not end (a commit that failed after its log write) leave the same bytes as
    /// groups written through the page cache, and what was read before each write is read
    /// again after it.
    #[test]
    fn a_direct_write_leaves_the_bytes_the_page_cache_would() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for direct in [true, false] {
            let path = dir.path().join(format!("log-{direct}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            file.write_all_at(&header(1, 2), 0).unwrap();
            let mut disk = DiskWriter::open(&path);
            if !direct {
                disk.direct = None;
            } else if disk.direct.is_none() {
                println!("this file system takes no direct writes: both halves use the page cache");
            }
            let mut end = HEADER_LEN;
            let mut written = Vec::new();
            // Sizes that end inside a block, exactly on one, and span several.
            for (i, size) in [100usize, 4_096 - 8 - 132, 10_000, 1, 4_088, 70_000]
                .into_iter()
                .enumerate()
            {
                let mut appends = Appends {
                    base: end,
                    bytes: Vec::new(),
                };
                let record: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
                let value = appends.push(&record).unwrap();
                disk.write(&file, &path, &appends).unwrap();
                if i == 3 {
                    // Written, never committed: the next group begins where this one did.
                    continue;
                }
                written.push((value, record));
                end += appends.bytes.len() as u64;
                let log = ReportLog::new(file.try_clone().unwrap(), path.clone());
                for (value, record) in &written {
                    assert_eq!(&*log.record(value, None).unwrap(), &record[..]);
                }
            }
            let mut bytes = std::fs::read(&path).unwrap();
            bytes.truncate(end as usize);
            files.push(bytes);
        }
        assert_eq!(files[0], files[1]);
    }

    /// After a failed write nothing commits until the store is reopened, not even a group
    /// that appends no report (a batch refused behind the one that failed would otherwise
    /// record a gap).
    #[test]
    fn after_a_failed_write_no_group_commits() {
        let (_dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 3), Timestamp(T0));
        let redb = s.as_redb().unwrap();
        redb.log
            .failed
            .store(true, std::sync::atomic::Ordering::Release);
        let txn = redb.db.begin_write().unwrap();
        let appends = redb.log.appends(&txn).unwrap();
        assert!(appends.is_empty());
        assert!(matches!(
            redb.log.write(&appends, &txn),
            Err(StoreError::NeedsReopen)
        ));
        txn.abort().unwrap();
        let job = BatchJob {
            site: site(),
            epoch: E,
            batch: batch(10, 2),
            now: Timestamp(T0),
            examined: None,
        };
        let refused = s.apply_batches(vec![job], &Limits::default(), &PiiGuard::default());
        assert!(
            matches!(refused, Err(StoreError::NeedsReopen)),
            "{refused:?}"
        );
        assert!(s.gaps().unwrap().is_empty(), "no gap recorded");
    }

    /// A group of a thousand reports of a kilobyte is written in one go and read back whole.
    #[test]
    fn a_large_group_is_kept_whole() {
        let (dir, s) = redb_store();
        let mut big = batch(1, 1_000);
        for r in &mut big.reports {
            r.body = "Kegiatan pembinaan kepribadian berjalan lancar. ".repeat(20);
        }
        apply(&s, &site(), E, &big, Timestamp(T0));
        let len = log_len(dir.path());
        assert!(len > 1_000 * 1_000, "{len}");
        assert_eq!(stored(&s), big.reports);
        drop(s);
        assert_eq!(stored(&Store::open(dir.path()).unwrap()), big.reports);
    }

    /// A log that does not fit the redb file is refused with what to put back, and nothing
    /// is moved: put back, the store opens as it was.
    #[test]
    fn a_log_cut_short_missing_or_of_another_store_is_refused() {
        let (dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 10), Timestamp(T0));
        drop(s);
        let path = dir.path().join(LOG_FILE);
        let whole = std::fs::read(&path).unwrap();

        std::fs::write(&path, &whole[..log_end(dir.path()) - 1]).unwrap();
        let reason = problem_of(dir.path());
        assert!(reason.contains("cut short"), "{reason}");
        let message = Store::open(dir.path()).err().map(|e| e.to_string());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("put back the collector.reports.log")),
            "{message:?}"
        );

        std::fs::remove_file(&path).unwrap();
        let reason = problem_of(dir.path());
        assert!(reason.contains("is missing"), "{reason}");

        let mut foreign = whole.clone();
        foreign[20] ^= 1;
        std::fs::write(&path, &foreign).unwrap();
        let reason = problem_of(dir.path());
        assert!(reason.contains("another store"), "{reason}");
        assert!(dir.path().join(crate::store::STORE_FILE).exists());

        std::fs::write(&path, &whole).unwrap();
        assert_eq!(
            stored(&Store::open(dir.path()).unwrap()),
            batch(1, 10).reports
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_never_another_report() {
        let (dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 3), Timestamp(T0));
        drop(s);
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = log_end(dir.path()) - 10;
        bytes[last] ^= 0x20;
        std::fs::write(&path, &bytes).unwrap();
        let s = Store::open(dir.path()).unwrap();
        let err = s.reports(&ReportQuery::default()).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert!(err.to_string().contains("CRC-32"), "{err}");
    }

    /// A store opened from a backup's copy holds its reports inline and has no log: it
    /// begins one, moving aside a log left in the directory, and stores into it.
    #[test]
    fn a_store_restored_from_a_copy_begins_a_log_of_its_own() {
        let (dir, s) = redb_store();
        apply(&s, &site(), E, &batch(1, 10), Timestamp(T0));
        let copy = dir.path().join("copy.redb");
        s.snapshot_to(&copy).unwrap();
        let restored = tempfile::tempdir().unwrap();
        std::fs::copy(&copy, restored.path().join(crate::store::STORE_FILE)).unwrap();
        std::fs::copy(dir.path().join(LOG_FILE), restored.path().join(LOG_FILE)).unwrap();
        let r = Store::open(restored.path()).unwrap();
        assert_eq!(log_len(restored.path()), HEADER_LEN);
        let aside = std::fs::read_dir(restored.path())
            .unwrap()
            .filter(|e| {
                let name = e.as_ref().unwrap().file_name();
                name.to_string_lossy()
                    .starts_with("collector.reports.log.damaged-")
            })
            .count();
        assert_eq!(
            aside, 1,
            "the stray log is moved aside, never read or written"
        );
        assert_eq!(stored(&r), batch(1, 10).reports);
        stores_on_across_a_reopen(restored.path(), r);
    }

    /// A group commit's later batch finds the reports an earlier batch of the same group
    /// stored, before any of them is written to the log: a resend of them is a replay.
    #[test]
    fn a_group_reads_what_it_appended_before_writing_it() {
        let (_dir, s) = redb_store();
        let now = Timestamp(T0);
        let all = batch(1, 8);
        let resent = pasopati_common::frame::Batch {
            first_seq: 3,
            reports: all.reports[2..].to_vec(),
        };
        let jobs = [batch(1, 5), resent].map(|batch| BatchJob {
            site: site(),
            epoch: E,
            batch,
            now,
            examined: None,
        });
        let outcomes = s
            .apply_batches(jobs.to_vec(), &Limits::default(), &PiiGuard::default())
            .unwrap();
        match &outcomes[1] {
            BatchOutcome::Stored {
                hwm,
                stored,
                replayed,
                ..
            } => assert_eq!((*hwm, stored.len(), *replayed), (8, 3, 3)),
            other => panic!("{other:?}"),
        }
        assert_eq!(stored(&s), all.reports);
    }
}
