//! The engine's snapshot on disk (`analysis.snapshot` in the data directory), so a restart
//! places only what was stored after it instead of every stored item
//! (`pasopati_analysis::snapshot` has the format). It is written every
//! [`SNAPSHOT_EVERY`] when documents were placed since the last one, and at shutdown, to a
//! temporary file that is synced and then renamed over the old one, so a crash leaves the old
//! snapshot or the new one, never half of one. Its tag says where in the store it was taken:
//! the next media arrival (with a mark of the last item, so a snapshot is never used with
//! another store, or one restored from an older backup), the report arrival below which every
//! report was placed, and the few above it that were placed too (sessions hand batches over a
//! little out of order). A
//! snapshot that cannot be read is set aside with a warning and the engine is rebuilt from the
//! store, as it was before snapshots.

use super::{Newsroom, Ordering};
use pasopati_analysis::snapshot::MAX_SNAPSHOT_BYTES;
use pasopati_analysis::Engine;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The snapshot's file name in the data directory.
pub const SNAPSHOT_FILE: &str = "analysis.snapshot";
/// How often a snapshot is written while documents arrive.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(600);

/// A snapshot that could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotWriteError {
    #[error("cannot write the analysis snapshot {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Encode(#[from] pasopati_analysis::snapshot::SnapshotError),
    #[error("the analysis engine was poisoned by a panic")]
    Poisoned,
}

impl Newsroom {
    fn snapshot_path(&self) -> PathBuf {
        self.store.data_dir().join(SNAPSHOT_FILE)
    }

    /// Writes the engine's snapshot if the engine runs and placed anything since `after`
    /// documents; returns how many documents it holds (`None`: nothing written).
    pub fn write_snapshot(&self, after: usize) -> Result<Option<usize>, SnapshotWriteError> {
        let slot = self
            .engine
            .lock()
            .map_err(|_| SnapshotWriteError::Poisoned)?;
        let Some(engine) = slot.as_ref() else {
            return Ok(None);
        };
        if engine.len() == after {
            return Ok(None);
        }
        let media_next = self.media_next.load(Ordering::SeqCst);
        let mut tag = vec![media_next, self.last_media_mark(media_next)];
        {
            let placed = self
                .placed_reports
                .lock()
                .map_err(|_| SnapshotWriteError::Poisoned)?;
            tag.push(placed.below);
            tag.extend(placed.above.iter().copied());
        }
        let path = self.snapshot_path();
        let partial = path.with_extension("snapshot.partial");
        let io = |source| SnapshotWriteError::Io {
            path: partial.display().to_string(),
            source,
        };
        // Readable by the collector's user only, like the store.
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&partial)
                .map_err(io)?
        };
        let mut out = std::io::BufWriter::new(file);
        engine.write_snapshot(&mut out, &tag)?;
        let file = out.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, &path).map_err(io)?;
        if let Some(dir) = path.parent() {
            // The rename is durable once the directory is.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(Some(engine.len()))
    }

    /// The engine of the snapshot with the next media arrival and the report arrivals it
    /// holds, or `None` (with the reason logged) when there is no usable snapshot.
    pub(super) fn restore(&self) -> Option<(Engine, u64, super::PlacedReports)> {
        let path = self.snapshot_path();
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), "cannot open the analysis snapshot ({e}); placing every stored item again");
                return None;
            }
        };
        let limit = file
            .metadata()
            .map_or(MAX_SNAPSHOT_BYTES, |m| m.len() as usize)
            .min(MAX_SNAPSHOT_BYTES);
        let mut input = std::io::BufReader::new(file);
        match Engine::read_snapshot(self.settings.engine(), &mut input, limit) {
            Ok((engine, tag)) => match tag[..] {
                [media_next, mark, below, ..] if !self.store_holds(media_next, mark, below) => {
                    tracing::warn!(path = %path.display(), "the analysis snapshot is ahead of the store (a store restored from an older backup?); placing every stored item again");
                    None
                }
                [media_next, _, below, ref above @ ..] => Some((
                    engine,
                    media_next,
                    super::PlacedReports {
                        below,
                        above: above.iter().copied().collect(),
                    },
                )),
                _ => {
                    tracing::warn!(path = %path.display(), "the analysis snapshot has no store position; placing every stored item again");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(path = %path.display(), "the analysis snapshot is not usable ({e}); placing every stored item again");
                None
            }
        }
    }
}

impl Newsroom {
    /// A mark of the last media item placed before `media_next`: the hash of its id (0 for
    /// none), so a snapshot is only used with the store it was taken from.
    fn last_media_mark(&self, media_next: u64) -> u64 {
        match media_next.checked_sub(1) {
            Some(last) => self
                .store
                .media(last, 1)
                .ok()
                .and_then(|m| m.into_iter().next())
                .map_or(0, |m| pasopati_analysis::text::hash64(m.id.as_bytes())),
            None => 0,
        }
    }

    /// Whether the store holds everything a snapshot tagged (`media_next`, `mark`, `below`)
    /// holds: the same last media item, and at least as many report arrivals.
    fn store_holds(&self, media_next: u64, mark: u64, below: u64) -> bool {
        let reports = self.store.counts().map_or(0, |c| c.reports);
        self.last_media_mark(media_next) == mark && reports >= below
    }
}

/// Writes the snapshot every [`SNAPSHOT_EVERY`] while documents arrive, and once more at
/// `shutdown`.
pub async fn keep_snapshots(newsroom: Arc<Newsroom>, shutdown: CancellationToken) {
    let mut written = 0usize;
    loop {
        let stopping = tokio::select! {
            _ = tokio::time::sleep(SNAPSHOT_EVERY) => false,
            _ = shutdown.cancelled() => true,
        };
        let n = newsroom.clone();
        match tokio::task::spawn_blocking(move || n.write_snapshot(written)).await {
            Ok(Ok(Some(docs))) => {
                written = docs;
                tracing::debug!(docs, "analysis snapshot written");
            }
            Ok(Ok(None)) => {}
            Ok(Err(e)) => tracing::warn!("{e}; the next restart places more items again"),
            Err(e) => tracing::warn!("the analysis snapshot stopped: {e}"),
        }
        if stopping {
            break;
        }
    }
}
