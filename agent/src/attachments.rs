//! The agent's attachment files: `<data-dir>/attachments/<blake3 hex>`, one file per stripped
//! attachment waiting to be sent, and `attachments/uploads/`, where the CLI's files arrive in
//! pieces over the control socket before they are filed.
//!
//! Which attachments are waiting is recorded in the outbox, in the same transaction as their
//! report; a blob file is written (and synced) before that transaction and deleted after the
//! collector holds the attachment. A crash between the two leaves a file no pending entry names;
//! [`Blobs::sweep`] removes those when the daemon starts.

use pasopati_common::attachment::{self, AttachmentError, AttachmentRef, Prepared};
use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Uploads older than this are abandoned (the CLI died mid-upload) and swept.
const UPLOAD_MAX_AGE: Duration = Duration::from_secs(86_400);

/// The most bytes one upload may reach before it is filed.
const UPLOAD_MAX_BYTES: u64 = attachment::HARD_MAX_BYTES;

/// An attachment file operation that failed.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error(transparent)]
    Invalid(#[from] AttachmentError),
    #[error("attachment storage {path}: {source}. Check free disk space and permissions of the data directory")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("upload {id} is unknown or incomplete (was it started with this data directory?)")]
    UnknownUpload { id: String },
    #[error("upload {id} expected its next piece at byte {expected}, got byte {got}; start the upload again")]
    UploadOutOfOrder { id: String, expected: u64, got: u64 },
}

fn io_error(path: &Path, source: std::io::Error) -> BlobError {
    BlobError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The attachment folder of one data directory.
#[derive(Clone, Debug)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub fn new(data_dir: &Path) -> Blobs {
        Blobs {
            dir: data_dir.join("attachments"),
        }
    }

    /// Where the blob with this hash lives.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(pasopati_common::hex(hash))
    }

    fn uploads(&self) -> PathBuf {
        self.dir.join("uploads")
    }

    fn upload_path(&self, id: &[u8; 16]) -> PathBuf {
        self.uploads().join(pasopati_common::hex(id))
    }

    /// Writes a prepared attachment durably under its hash (a no-op if it is there already).
    pub fn save(&self, prepared: &Prepared) -> Result<(), BlobError> {
        let path = self.path(&prepared.reference.hash);
        if path.exists() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir).map_err(|e| io_error(&self.dir, e))?;
        let tmp = self.dir.join(format!(
            "{}.tmp",
            pasopati_common::hex(&prepared.reference.hash)
        ));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            f.write_all(&prepared.bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            File::open(&self.dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            io_error(&path, e)
        })
    }

    /// Reads `len` bytes of a blob from `offset`.
    pub fn read_range(
        &self,
        hash: &[u8; 32],
        offset: u64,
        len: usize,
    ) -> Result<Vec<u8>, BlobError> {
        let path = self.path(hash);
        let read = || -> std::io::Result<Vec<u8>> {
            let mut f = File::open(&path)?;
            f.seek(SeekFrom::Start(offset))?;
            let mut buf = Vec::with_capacity(len);
            f.take(len as u64).read_to_end(&mut buf)?;
            Ok(buf)
        };
        read().map_err(|e| io_error(&path, e))
    }

    /// Deletes a blob the collector holds.
    pub fn remove(&self, hash: &[u8; 32]) {
        let path = self.path(hash);
        if let Err(e) = fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %path.display(), "cannot delete a sent attachment: {e}");
            }
        }
    }

    /// Removes blobs no pending entry names, unfinished writes, and abandoned uploads.
    pub fn sweep(&self, pending: &HashSet<[u8; 32]>) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let orphan =
                match pasopati_common::unhex(&name).and_then(|v| <[u8; 32]>::try_from(v).ok()) {
                    Some(hash) => !pending.contains(&hash),
                    None => name.ends_with(".tmp"),
                };
            if orphan && path.is_file() {
                tracing::info!(path = %path.display(), "removing an attachment file no report waits for");
                let _ = fs::remove_file(&path);
            }
        }
        if let Ok(uploads) = fs::read_dir(self.uploads()) {
            for entry in uploads.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age > UPLOAD_MAX_AGE);
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }

    /// Appends a piece of an upload; `offset` must be the upload's current length (0 starts it
    /// afresh). Returns the new length.
    pub fn append_upload(&self, id: &[u8; 16], offset: u64, data: &[u8]) -> Result<u64, BlobError> {
        let dir = self.uploads();
        fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
        let path = self.upload_path(id);
        let shown = pasopati_common::hex(id);
        let mut f = if offset == 0 {
            File::create(&path)
        } else {
            OpenOptions::new().append(true).open(&path)
        }
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => BlobError::UnknownUpload { id: shown.clone() },
            _ => io_error(&path, e),
        })?;
        let len = f.metadata().map_err(|e| io_error(&path, e))?.len();
        if len != offset {
            return Err(BlobError::UploadOutOfOrder {
                id: shown,
                expected: len,
                got: offset,
            });
        }
        let new_len = len + data.len() as u64;
        if new_len > UPLOAD_MAX_BYTES {
            let _ = fs::remove_file(&path);
            return Err(AttachmentError::TooLarge {
                name: shown,
                size: new_len,
                limit: UPLOAD_MAX_BYTES,
            }
            .into());
        }
        f.write_all(data).map_err(|e| io_error(&path, e))?;
        Ok(new_len)
    }

    /// Reads a finished upload, checks and strips it, and stores it as a blob. The upload is
    /// left in place; [`Blobs::discard_upload`] removes it once its report is filed.
    pub fn prepare_upload(
        &self,
        id: &[u8; 16],
        name: &str,
        max_bytes: u64,
    ) -> Result<AttachmentRef, BlobError> {
        let path = self.upload_path(id);
        let meta = fs::metadata(&path).map_err(|_| BlobError::UnknownUpload {
            id: pasopati_common::hex(id),
        })?;
        if meta.len() > max_bytes.min(attachment::HARD_MAX_BYTES) {
            return Err(AttachmentError::TooLarge {
                name: attachment::clean_name(name),
                size: meta.len(),
                limit: max_bytes.min(attachment::HARD_MAX_BYTES),
            }
            .into());
        }
        let bytes = fs::read(&path).map_err(|e| io_error(&path, e))?;
        self.prepare_bytes(name, &bytes, max_bytes)
    }

    /// Checks, strips and stores a file read from disk (the inbox path).
    pub fn prepare_file(&self, file: &Path, max_bytes: u64) -> Result<AttachmentRef, BlobError> {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let limit = max_bytes.min(attachment::HARD_MAX_BYTES);
        let meta = fs::metadata(file).map_err(|e| io_error(file, e))?;
        if meta.len() > limit {
            return Err(AttachmentError::TooLarge {
                name: attachment::clean_name(&name),
                size: meta.len(),
                limit,
            }
            .into());
        }
        let bytes = fs::read(file).map_err(|e| io_error(file, e))?;
        self.prepare_bytes(&name, &bytes, max_bytes)
    }

    fn prepare_bytes(
        &self,
        name: &str,
        bytes: &[u8],
        max_bytes: u64,
    ) -> Result<AttachmentRef, BlobError> {
        let prepared = attachment::prepare(name, bytes, max_bytes)?;
        self.save(&prepared)?;
        Ok(prepared.reference)
    }

    /// Removes an upload that was filed (or given up).
    pub fn discard_upload(&self, id: &[u8; 16]) {
        let _ = fs::remove_file(self.upload_path(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_common::attachment::samples;

    #[test]
    fn uploads_arrive_in_order_and_become_stripped_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path());
        let photo = samples::jpeg_with_gps(64);
        let id = [3u8; 16];
        let (a, b) = photo.split_at(100);
        assert_eq!(blobs.append_upload(&id, 0, a).unwrap(), 100);
        assert!(matches!(
            blobs.append_upload(&id, 50, b),
            Err(BlobError::UploadOutOfOrder {
                expected: 100,
                got: 50,
                ..
            })
        ));
        blobs.append_upload(&id, 100, b).unwrap();
        let r = blobs.prepare_upload(&id, "foto.jpg", 1 << 20).unwrap();
        let stored = fs::read(blobs.path(&r.hash)).unwrap();
        assert_eq!(stored.len() as u64, r.size);
        assert!(stored.len() < photo.len());
        assert_eq!(blobs.read_range(&r.hash, 2, 2).unwrap(), &stored[2..4]);
        assert!(matches!(
            blobs.prepare_upload(&id, "foto.jpg", 10),
            Err(BlobError::Invalid(AttachmentError::TooLarge { .. }))
        ));
        blobs.discard_upload(&id);
        assert!(matches!(
            blobs.append_upload(&id, 100, b),
            Err(BlobError::UnknownUpload { .. })
        ));
    }

    #[test]
    fn sweep_keeps_pending_blobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::new(dir.path());
        let keep = blobs
            .prepare_bytes("a.jpg", &samples::plain_jpeg(1), 1 << 20)
            .unwrap();
        let drop = blobs
            .prepare_bytes("b.jpg", &samples::plain_jpeg(2), 1 << 20)
            .unwrap();
        fs::write(blobs.dir.join("x.tmp"), b"half").unwrap();
        blobs.sweep(&HashSet::from([keep.hash]));
        assert!(blobs.path(&keep.hash).exists());
        assert!(!blobs.path(&drop.hash).exists());
        assert!(!blobs.dir.join("x.tmp").exists());
    }
}
