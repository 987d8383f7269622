//! Opening a redb database file without letting a damaged file crash the daemon.
//!
//! redb reports most damage as an error, but some (a file truncated below its header's length)
//! trip an assertion inside redb. Either way the daemon must say what happened and what to do,
//! keep the damaged file, and not crash-loop; this module turns both into [`OpenError::Damaged`]
//! and moves the file aside.

use std::path::{Path, PathBuf};

/// Why a database did not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} is in use by another process")]
    Locked { path: String },
    #[error("{path} is damaged: {reason}")]
    Damaged { path: String, reason: String },
    #[error("{path} cannot be opened: {reason}")]
    Other { path: String, reason: String },
    /// The file was last written by a newer release whose layout this one cannot read safely.
    /// It is never moved aside: the newer release (or a later one) opens it as it is.
    #[error(
        "{path} was last written with layout {found} of the {kind} by a newer release, which \
         releases reading layout {readable_by} or later can use; this release reads layouts up to \
         {supported}. Nothing was changed: install the newer release again (or a later one)"
    )]
    Newer {
        path: String,
        kind: &'static str,
        found: u64,
        readable_by: u64,
        supported: u64,
    },
}

/// The layout of a redb file, stamped in its `meta` table so that every later release can tell
/// which migrations a file needs and an older release refuses a file it would misread.
///
/// `current` counts this release's layout. `oldest_reader` is the oldest layout whose code still
/// reads and writes a file of this layout correctly: a change that only adds (a table, a key an
/// older release ignores) keeps it, so a release can be rolled back without touching the file; a
/// change an older release would misread raises it to `current`. Every migration is idempotent
/// (an older release may have written the file again after it ran, and it runs again then).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// What the file is, for messages ("outbox", "store").
    pub kind: &'static str,
    pub current: u64,
    pub oldest_reader: u64,
}

/// The `meta` key holding the layout that last wrote a file.
pub const LAYOUT_KEY: &str = "layout";
/// The `meta` key holding the oldest layout that may still open the file.
pub const READABLE_BY_KEY: &str = "layout_readable_by";

impl Layout {
    /// Reads the stamp of the file being prepared in `txn` (in its `meta` table), refuses a file
    /// this release cannot read, runs `migrate(from)` for every layout `from` the file has that
    /// is older than `current` (a file without a stamp predates stamping and counts as layout
    /// 1), and stamps it with this release's layout. `fresh` is a file just created.
    pub fn prepare<E>(
        &self,
        txn: &redb::WriteTransaction,
        path: &Path,
        meta: redb::TableDefinition<&str, u64>,
        fresh: bool,
        mut migrate: impl FnMut(u64) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<OpenError> + From<redb::TableError> + From<redb::StorageError>,
    {
        use redb::ReadableTable;
        let (found, readable_by) = {
            let table = txn.open_table(meta)?;
            let found = table.get(LAYOUT_KEY)?.map(|v| v.value());
            let readable_by = table.get(READABLE_BY_KEY)?.map(|v| v.value());
            (found, readable_by)
        };
        let found = match found {
            Some(found) => found,
            None if fresh => self.current,
            None => 1,
        };
        let readable_by = readable_by.unwrap_or(1);
        if readable_by > self.current {
            return Err(OpenError::Newer {
                path: path.display().to_string(),
                kind: self.kind,
                found,
                readable_by,
                supported: self.current,
            }
            .into());
        }
        for from in found..self.current {
            migrate(from)?;
        }
        let mut table = txn.open_table(meta)?;
        table.insert(LAYOUT_KEY, self.current)?;
        table.insert(READABLE_BY_KEY, self.oldest_reader)?;
        Ok(())
    }
}

/// Opens (creating if absent) the database at `path`.
pub fn open(path: &Path) -> Result<redb::Database, OpenError> {
    let shown = path.display().to_string();
    let result = std::panic::catch_unwind(|| redb::Database::create(path));
    match result {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(redb::DatabaseError::DatabaseAlreadyOpen)) => Err(OpenError::Locked { path: shown }),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(reason)))) => {
            Err(OpenError::Damaged {
                path: shown,
                reason,
            })
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
            ) =>
        {
            Err(OpenError::Damaged {
                path: shown,
                reason: e.to_string(),
            })
        }
        Ok(Err(e)) => Err(OpenError::Other {
            path: shown,
            reason: e.to_string(),
        }),
        Err(panic) => {
            let reason = crate::task::panic_text(panic.as_ref())
                .unwrap_or_else(|| "the storage engine rejected the file".into());
            Err(OpenError::Damaged {
                path: shown,
                reason,
            })
        }
    }
}

/// Opens (creating if absent) the database at `path` and prepares it in one durable write
/// transaction: `prepare` opens every table the owner uses (so readers never meet a missing one),
/// checks and migrates the file's [`Layout`] and writes first-time values; it is told whether the
/// file was just created, and its result is returned with the database. The owner's error type
/// says what a locked, damaged, newer or unopenable file means for it (`From<OpenError>`).
pub fn open_prepared<T, E>(
    path: &Path,
    prepare: impl FnOnce(&redb::WriteTransaction, bool) -> Result<T, E>,
) -> Result<(redb::Database, T), E>
where
    E: From<OpenError> + From<redb::TransactionError> + From<redb::CommitError>,
{
    let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
    let db = open(path)?;
    let txn = db.begin_write()?;
    let prepared = prepare(&txn, fresh)?;
    txn.commit()?;
    Ok((db, prepared))
}

/// Renames a damaged file to `<name>.damaged-<unix seconds>` beside it and returns the new path.
pub fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let stamp = crate::Timestamp::now().0 / 1000;
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".damaged-{stamp}"));
    let target = path.with_file_name(name);
    std::fs::rename(path, &target)?;
    Ok(target)
}

/// Moves the database at `path`, damaged for `reason`, aside with [`move_aside`]. When it cannot
/// be moved, the error (for the owner's "cannot be opened" message) says what is wrong with the
/// file and why it stays where it is.
pub fn move_damaged_aside(path: &str, reason: &str) -> Result<PathBuf, String> {
    move_aside(Path::new(path))
        .map_err(|e| format!("it is damaged ({reason}) and cannot be moved aside: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(dir: &Path) -> PathBuf {
        let path = dir.join("x.redb");
        let db = open(&path).unwrap();
        let table: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("t");
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(table).unwrap();
            for i in 0..2000u64 {
                t.insert(i, &[7u8; 100][..]).unwrap();
            }
        }
        txn.commit().unwrap();
        path
    }

    #[test]
    fn truncated_and_garbage_files_are_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len / 2).unwrap();
        assert!(matches!(open(&path), Err(OpenError::Damaged { .. })));
        std::fs::write(&path, vec![0xabu8; 8192]).unwrap();
        assert!(
            matches!(open(&path), Err(OpenError::Damaged { .. })),
            "{:?}",
            open(&path).err()
        );
        let aside = move_aside(&path).unwrap();
        assert!(aside.exists() && !path.exists());
        assert!(
            open(&path).is_ok(),
            "a fresh file opens after the damaged one is moved"
        );
    }

    const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

    #[derive(Debug)]
    enum TestError {
        Open(OpenError),
        Redb(#[allow(dead_code)] String),
    }
    impl From<OpenError> for TestError {
        fn from(e: OpenError) -> Self {
            TestError::Open(e)
        }
    }
    macro_rules! redb_errors {
        ($($t:ty),*) => {$(impl From<$t> for TestError {
            fn from(e: $t) -> Self { TestError::Redb(e.to_string()) }
        })*};
    }
    redb_errors!(
        redb::TableError,
        redb::StorageError,
        redb::TransactionError,
        redb::CommitError
    );

    /// Opens `path` as a release of `layout` would, recording the migrations it runs.
    fn open_as(path: &Path, layout: Layout) -> Result<(redb::Database, Vec<u64>), TestError> {
        open_prepared(path, |txn, fresh| {
            let mut ran = Vec::new();
            layout.prepare(txn, path, META, fresh, |from| {
                ran.push(from);
                Ok::<_, TestError>(())
            })?;
            Ok(ran)
        })
    }

    fn stamp(db: &redb::Database) -> (Option<u64>, Option<u64>) {
        use redb::ReadableDatabase;
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let read = |k| meta.get(k).unwrap().map(|v| v.value());
        (read(LAYOUT_KEY), read(READABLE_BY_KEY))
    }

    const fn layout(current: u64, oldest_reader: u64) -> Layout {
        Layout {
            kind: "outbox",
            current,
            oldest_reader,
        }
    }

    #[test]
    fn a_new_file_is_stamped_with_the_layout_and_needs_no_migration() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.redb");
        let (db, ran) = open_as(&path, layout(3, 2)).unwrap();
        assert!(ran.is_empty(), "{ran:?}");
        assert_eq!(stamp(&db), (Some(3), Some(2)));
    }

    #[test]
    fn an_unstamped_file_counts_as_layout_one_and_is_migrated_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = filled(dir.path());
        let (db, ran) = open_as(&path, layout(3, 3)).unwrap();
        assert_eq!(ran, vec![1, 2]);
        assert_eq!(stamp(&db), (Some(3), Some(3)));
        drop(db);
        let (_, again) = open_as(&path, layout(3, 3)).unwrap();
        assert!(
            again.is_empty(),
            "a stamped file is migrated once: {again:?}"
        );
    }

    #[test]
    fn an_older_release_opens_a_file_it_can_read_and_the_newer_migrates_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rolled-back.redb");
        drop(open_as(&path, layout(3, 2)).unwrap());
        // A rollback to layout 2: it may read layout 3, and stamps what it wrote.
        let (db, ran) = open_as(&path, layout(2, 2)).unwrap();
        assert!(ran.is_empty());
        assert_eq!(stamp(&db), (Some(2), Some(2)));
        drop(db);
        // Back on layout 3, the step from 2 runs again over what layout 2 wrote.
        let (_, ran) = open_as(&path, layout(3, 2)).unwrap();
        assert_eq!(ran, vec![2]);
    }

    #[test]
    fn a_file_only_newer_releases_can_read_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("newer.redb");
        drop(open_as(&path, layout(4, 4)).unwrap());
        let err = open_as(&path, layout(2, 1)).unwrap_err();
        let TestError::Open(err @ OpenError::Newer { .. }) = err else {
            panic!("{err:?}");
        };
        let text = err.to_string();
        for part in [
            "layout 4",
            "layout 4 or later",
            "up to 2",
            "install the newer release",
        ] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        // Nothing was written: the newer release finds its own stamp and nothing to migrate.
        let (db, ran) = open_as(&path, layout(4, 4)).unwrap();
        assert!(ran.is_empty(), "{ran:?}");
        assert_eq!(stamp(&db), (Some(4), Some(4)));
    }
}

/// Creates a data directory (and its parents) private to its owner, mode 0700.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Makes a data directory private to its owner: the directory (and the folders directly in it)
/// mode 0700, the regular files directly in it 0600, whatever the umask or an existing folder's
/// mode was. The stores hold password, token and key material; nobody else on the machine may
/// read them. Sockets and links are left alone.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let mode = if kind.is_dir() {
            0o700
        } else if kind.is_file() {
            0o600
        } else {
            continue;
        };
        std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(test)]
mod private_tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn data_directories_become_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("store.redb"), b"x").unwrap();
        std::fs::set_permissions(
            dir.join("store.redb"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        make_private(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&dir), mode(&dir.join("store.redb"))), (0o700, 0o600));
    }
}
