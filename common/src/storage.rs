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
            let reason = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the storage engine rejected the file".into());
            Err(OpenError::Damaged {
                path: shown,
                reason,
            })
        }
    }
}

/// Opens (creating if absent) the database at `path` and prepares it in one durable write
/// transaction: `prepare` opens every table the owner uses (so readers never meet a missing one)
/// and writes first-time values; its result is returned with the database. The owner's error
/// type says what a locked, damaged or unopenable file means for it (`From<OpenError>`).
pub fn open_prepared<T, E>(
    path: &Path,
    prepare: impl FnOnce(&redb::WriteTransaction) -> Result<T, E>,
) -> Result<(redb::Database, T), E>
where
    E: From<OpenError> + From<redb::TransactionError> + From<redb::CommitError>,
{
    let db = open(path)?;
    let txn = db.begin_write()?;
    let prepared = prepare(&txn)?;
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
