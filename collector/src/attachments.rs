//! Receiving attachments: the collector's side of the chunked transfer.
//!
//! Files live beside the store, in `<data-dir>/attachments/`:
//! * `<hex>`: a verified attachment, named by its BLAKE3 hash;
//! * `partial/<site>.<hex>.part`: the bytes received so far from one site, synced to disk
//!   before each `ChunkAck`, so a transfer cut at any point resumes from what is on disk;
//! * `quarantine/<site>.<hex>`: a file that matched its hash but still carried metadata (an
//!   agent that did not strip it); kept for an admin, never served.
//!
//! A chunk is written only if its offset is exactly the length of the partial file; anything
//! else is answered with that length, so resent or reordered chunks cannot corrupt a file. When
//! the partial file is complete it is hashed, checked for metadata, renamed into place, and only
//! then recorded in the store and acknowledged.
//!
//! On a PostgreSQL store the bytes also go into the database before the record, and a
//! collector that lacks a file another received makes its copy from there on first use
//! ([`AttachmentDir::local_copy`]).

use crate::store::{Store, StoreError};
use pasopati_common::attachment::{self, MediaType};
use pasopati_common::frame::{Chunk, CollectorFrame};
use pasopati_common::transfer;
use pasopati_common::{hex, SiteId, Timestamp};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub use pasopati_common::transfer::ChunkViolation;

/// The attachment folder of one collector data directory.
#[derive(Clone, Debug)]
pub struct AttachmentDir {
    dir: PathBuf,
}

impl AttachmentDir {
    pub fn new(data_dir: &Path) -> AttachmentDir {
        AttachmentDir {
            dir: data_dir.join("attachments"),
        }
    }

    /// The attachment folder beside a store (in the same data directory).
    pub fn of(store: &Store) -> AttachmentDir {
        AttachmentDir::new(store.data_dir())
    }

    /// Where a verified attachment's bytes are.
    pub fn path(&self, hash: &[u8; 32]) -> PathBuf {
        self.dir.join(hex(hash))
    }

    /// Where a verified attachment's bytes are on this machine, copied from the database
    /// first if another collector on it received them; `None` when nobody holds them.
    /// Blocking.
    pub fn local_copy(
        &self,
        store: &Store,
        hash: &[u8; 32],
    ) -> Result<Option<PathBuf>, StoreError> {
        let path = self.path(hash);
        if path.is_file() {
            return Ok(Some(path));
        }
        let Some(pg) = store.as_postgres() else {
            return Ok(None);
        };
        let Some(bytes) = pg.attachment_bytes(hash)? else {
            return Ok(None);
        };
        if attachment::content_hash(&bytes) != *hash {
            return Err(StoreError::Corrupt(format!(
                "the database's copy of attachment {} does not match its hash",
                hex(hash)
            )));
        }
        let io = |what: &str, e: std::io::Error| {
            StoreError::Storage(format!("attachment file {}: {what}: {e}", path.display()))
        };
        fs::create_dir_all(&self.dir).map_err(|e| io("creating its folder", e))?;
        let temporary = self
            .dir
            .join(format!("{}.copy-{}", hex(hash), std::process::id()));
        fs::write(&temporary, &bytes).map_err(|e| io("writing a copy", e))?;
        fs::rename(&temporary, &path).map_err(|e| io("moving the copy into place", e))?;
        Ok(Some(path))
    }

    fn partial(&self, site: &SiteId, hash: &[u8; 32]) -> PathBuf {
        self.dir
            .join("partial")
            .join(format!("{site}.{}.part", hex(hash)))
    }

    fn quarantine(&self, site: &SiteId, hash: &[u8; 32]) -> PathBuf {
        self.dir
            .join("quarantine")
            .join(format!("{site}.{}", hex(hash)))
    }

    /// Applies one chunk from `site` and returns the answer. Blocking (file I/O and the store).
    pub fn receive(
        &self,
        store: &Store,
        site: &SiteId,
        chunk: &Chunk,
        now: Timestamp,
    ) -> Result<Result<CollectorFrame, ChunkViolation>, StoreError> {
        // The offsets and the resume rule are `pasopati_common::transfer`; this is the file work.
        if let Err(violation) = transfer::check_chunk(chunk) {
            return Ok(Err(violation));
        }
        let hash = chunk.hash;
        let refused = |reason: String| Ok(Ok(CollectorFrame::AttachmentRefused { hash, reason }));
        if let Some(stored) = store.attachment(&hash)? {
            if self.local_copy(store, &hash)?.is_some() {
                return Ok(Ok(CollectorFrame::ChunkAck {
                    hash,
                    received: stored.reference.size,
                }));
            }
        }
        let Some(expected) = store.expected_attachment(site, &hash)? else {
            return refused(
                "no stored report of this site refers to this attachment (was its report quarantined?)"
                    .into(),
            );
        };
        if expected.size != chunk.size {
            return refused(format!(
                "its report gives {} bytes, the transfer {}",
                expected.size, chunk.size
            ));
        }
        let part = self.partial(site, &hash);
        let io = |what: &str, e: std::io::Error| {
            StoreError::Storage(format!("attachment file {}: {what}: {e}", part.display()))
        };
        let held = fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
        let plan = transfer::plan_chunk(chunk, held);
        if plan.discard_partial {
            // Cannot happen with this code; start over rather than keep a wrong file.
            fs::remove_file(&part).map_err(|e| io("removing", e))?;
        }
        if plan.resuming {
            tracing::info!(%site, attachment = %hex(&hash), from = held, of = chunk.size,
                "resuming an attachment transfer cut off earlier");
        }
        if plan.append {
            if let Some(parent) = part.parent() {
                fs::create_dir_all(parent).map_err(|e| io("creating its folder", e))?;
            }
            let mut f = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&part)
                .map_err(|e| io("opening", e))?;
            f.write_all(&chunk.data).map_err(|e| io("writing", e))?;
            f.sync_data().map_err(|e| io("syncing", e))?;
        }
        if !plan.complete {
            return Ok(Ok(CollectorFrame::ChunkAck {
                hash,
                received: plan.held_after,
            }));
        }
        // Complete: verify, then move into place, then record.
        let bytes = fs::read(&part).map_err(|e| io("reading", e))?;
        if attachment::content_hash(&bytes) != hash {
            fs::remove_file(&part).map_err(|e| io("removing", e))?;
            return refused("its content does not match its hash".into());
        }
        let clean = MediaType::sniff(&bytes)
            .filter(|t| *t == expected.media_type)
            .and_then(|t| attachment::strip_metadata(t, &bytes).ok())
            .is_some_and(|stripped| stripped == bytes);
        if !clean {
            let target = self.quarantine(site, &hash);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent).map_err(|e| io("creating the quarantine folder", e))?;
            }
            fs::rename(&part, &target).map_err(|e| io("moving to quarantine", e))?;
            tracing::error!(%site, attachment = %hex(&hash), kept = %target.display(),
                "an attachment still carried metadata or is not what its report says; quarantined, not stored");
            return refused(
                "it still carries metadata (EXIF, text chunks) or is not the type its report gives; upgrade the agent"
                    .into(),
            );
        }
        if let Some(pg) = store.as_postgres() {
            pg.put_attachment_bytes(&hash, &bytes)?;
        }
        let target = self.path(&hash);
        fs::rename(&part, &target).map_err(|e| io("moving into place", e))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing the folder", e))?;
        store.record_attachment(site, &expected, now)?;
        tracing::info!(%site, attachment = %hex(&hash), bytes = expected.size,
            media_type = expected.media_type.mime(), "attachment stored");
        Ok(Ok(CollectorFrame::ChunkAck {
            hash,
            received: expected.size,
        }))
    }
}
