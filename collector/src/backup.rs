//! Backups of a collector's data directory, safe while the daemon runs, and their restore.
//!
//! A backup is one tar file, written with mode 0600 because it holds the CA's key:
//!
//! - `MANIFEST.json` first: the format, the collector's version, when, how many reports, and each
//!   file's size and SHA-256;
//! - `collector.redb`: a consistent copy of the store, made by whoever holds the store (the
//!   daemon through its control socket, or the command itself when no daemon runs) with
//!   `Store::snapshot_to`;
//! - every other file the collector needs to start on a new machine: `collector.toml`, the CA and
//!   server certificates and keys, `reset.key`, the attachments, the release packages (and the
//!   private release key, while it is kept on this machine).
//!
//! Left out: what the collector rebuilds from the store (the report index under `index/` and the
//! analysis snapshot), the live store file, the control socket, files moved aside as damaged,
//! and unfinished attachment uploads (agents send them again).
//!
//! `restore` writes a backup into an empty directory, checking every file against the manifest,
//! and leaves nothing behind if a check fails. The restored store is older than the agents'
//! acknowledgements: the collector sees the rollback per site at their next session and asks
//! for what they still hold (the protocol's rollback, `pasopati_protocol::session`).

use crate::store::STORE_FILE;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

/// The backup format; a restore refuses another.
const FORMAT: u32 = 1;
const MANIFEST: &str = "MANIFEST.json";
/// The largest manifest a restore reads.
const MANIFEST_LIMIT: u64 = 64 << 20;

/// The name of the store copy the daemon writes into the data directory for a backup; the
/// control request names only this file, never another path.
pub fn snapshot_name(pid: u32, at_ms: i64) -> String {
    format!("backup-snapshot-{pid}-{at_ms}.redb")
}

/// Whether `name` is a store copy's name as [`snapshot_name`] makes them.
pub fn is_snapshot_name(name: &str) -> bool {
    name.strip_prefix("backup-snapshot-")
        .and_then(|rest| rest.strip_suffix(".redb"))
        .is_some_and(|middle| {
            !middle.is_empty() && middle.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        })
}

/// A backup or restore failure, each with what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} exists already; choose another file name (a backup is never overwritten)")]
    Exists(String),
    #[error("restore needs an empty data directory, and {0} is not empty; restore into a new directory, or move this one away first")]
    NotEmpty(String),
    #[error("{file} is not a usable backup: {reason}")]
    Invalid { file: String, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// What a backup holds, as its manifest says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Manifest {
    pub format: u32,
    pub collector_version: String,
    /// When the backup was made (RFC 3339).
    pub created_at: String,
    /// Stored report revisions in the store copy.
    pub reports: u64,
    pub files: Vec<ManifestFile>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    /// Relative to the data directory, `/`-separated.
    pub path: String,
    pub bytes: u64,
    /// Hex.
    pub sha256: String,
}

/// Whether a file of the data directory goes into a backup (`relative` to the directory).
fn belongs_in_backup(relative: &Path) -> bool {
    let first = relative
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = relative
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let derived = first == "index" || name == crate::newsroom::SNAPSHOT_FILE;
    // The store's copy holds its reports inline, so the live report log stays out too.
    let live = relative == Path::new(STORE_FILE)
        || relative == Path::new(crate::store::LOG_FILE)
        || name == pasopati_common::control::SOCKET_NAME
        || is_snapshot_name(&name);
    let transient = name.contains(".damaged-")
        || name.ends_with(".tmp")
        || name.ends_with(".staged")
        || relative.starts_with(Path::new("attachments").join("partial"));
    !(derived || live || transient)
}

/// The files of `data_dir` that go into a backup, relative, sorted.
fn files_to_back_up(data_dir: &Path) -> Result<Vec<PathBuf>, BackupError> {
    let mut out = Vec::new();
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let dir = data_dir.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            let kind = entry.file_type().map_err(io(&entry.path()))?;
            let relative = rel.join(entry.file_name());
            if kind.is_dir() {
                if relative != Path::new("index") {
                    dirs.push(relative);
                }
            } else if kind.is_file() && belongs_in_backup(&relative) {
                out.push(relative);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies `from` into `to`, returning how many bytes and their SHA-256 (hex).
fn copy_hashed(from: &mut dyn Read, to: &mut dyn Write) -> std::io::Result<(u64, String)> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 16];
    let mut bytes = 0u64;
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            return Ok((bytes, pasopati_common::hex(ctx.finish().as_ref())));
        }
        ctx.update(&buf[..n]);
        to.write_all(&buf[..n])?;
        bytes += n as u64;
    }
}

fn sha256_of(path: &Path) -> Result<(u64, String), BackupError> {
    let mut file = std::fs::File::open(path).map_err(io(path))?;
    copy_hashed(&mut file, &mut std::io::sink()).map_err(io(path))
}

fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes the backup file `out` of `data_dir`, whose store copy is at `store_copy` (made by
/// `Store::snapshot_to`, holding `reports` report revisions). Returns its manifest. Without a
/// copy (the store is in PostgreSQL, backed up with its own tools) the file holds the rest of
/// the data directory: restored elsewhere, it is a second collector on the same database.
pub fn write_archive(
    data_dir: &Path,
    store_copy: Option<&Path>,
    reports: u64,
    out: &Path,
) -> Result<Manifest, BackupError> {
    let mut sources: Vec<(String, PathBuf)> = store_copy
        .map(|copy| (STORE_FILE.to_owned(), copy.to_owned()))
        .into_iter()
        .collect();
    for rel in files_to_back_up(data_dir)? {
        sources.push((slash_path(&rel), data_dir.join(&rel)));
    }
    let mut files = Vec::new();
    for (name, path) in &sources {
        let (bytes, sha256) = sha256_of(path)?;
        files.push(ManifestFile {
            path: name.clone(),
            bytes,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT,
        collector_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: pasopati_common::Timestamp::now().to_rfc3339(),
        reports,
        files,
    };
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists(out.display().to_string()),
            _ => io(out)(e),
        })?;
    let written = (|| {
        let mut tar = tar::Builder::new(std::io::BufWriter::new(file));
        let text =
            serde_json::to_vec_pretty(&manifest).map_err(|e| io(out)(std::io::Error::other(e)))?;
        let mut header = tar::Header::new_gnu();
        header.set_size(text.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(0);
        tar.append_data(&mut header, MANIFEST, text.as_slice())
            .map_err(io(out))?;
        for ((name, path), listed) in sources.iter().zip(&manifest.files) {
            let mut f = std::fs::File::open(path).map_err(io(path))?;
            let mut header = tar::Header::new_gnu();
            header.set_size(listed.bytes);
            header.set_mode(0o600);
            header.set_mtime(0);
            tar.append_data(&mut header, name, (&mut f).take(listed.bytes))
                .map_err(io(out))?;
        }
        let mut inner = tar.into_inner().map_err(io(out))?;
        inner.flush().map_err(io(out))?;
        inner
            .into_inner()
            .map_err(|e| io(out)(e.into_error()))?
            .sync_all()
            .map_err(io(out))
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    Ok(manifest)
}

/// A restore's path inside the data directory, refused unless plain and relative.
fn safe_relative(name: &str) -> Option<PathBuf> {
    let path = Path::new(name);
    let plain = path.components().all(|c| matches!(c, Component::Normal(_)));
    (plain && !name.is_empty()).then(|| path.to_owned())
}

/// Writes the backup `from` into `data_dir`, which must be empty or not exist. Every file is
/// checked against the manifest; if anything fails, what was written is removed.
pub fn restore(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    if data_dir.exists() {
        let mut entries = std::fs::read_dir(data_dir).map_err(io(data_dir))?;
        if entries.next().is_some() {
            return Err(BackupError::NotEmpty(data_dir.display().to_string()));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(data_dir))?;
    let result = unpack(from, data_dir);
    if result.is_err() {
        if let Ok(entries) = std::fs::read_dir(data_dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = match entry.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                    _ => std::fs::remove_file(&path),
                };
            }
        }
    }
    result
}

fn unpack(from: &Path, data_dir: &Path) -> Result<Manifest, BackupError> {
    let invalid = |reason: String| BackupError::Invalid {
        file: from.display().to_string(),
        reason,
    };
    let file = std::fs::File::open(from).map_err(io(from))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let mut entries = archive.entries().map_err(io(from))?;
    let mut first = entries
        .next()
        .ok_or_else(|| invalid("it is empty".into()))?
        .map_err(io(from))?;
    let first_name = first
        .path()
        .map_err(io(from))?
        .to_string_lossy()
        .into_owned();
    if first_name != MANIFEST || first.size() > MANIFEST_LIMIT {
        return Err(invalid(format!(
            "it does not start with {MANIFEST} (is it a pasopati-collector backup?)"
        )));
    }
    let mut text = Vec::new();
    first.read_to_end(&mut text).map_err(io(from))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| invalid(format!("its manifest cannot be read: {e}")))?;
    if manifest.format != FORMAT {
        return Err(invalid(format!(
            "it is of backup format {}, and this collector reads format {FORMAT}; restore it with the collector version that made it ({})",
            manifest.format, manifest.collector_version
        )));
    }
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(io(from))?;
        let name = entry
            .path()
            .map_err(io(from))?
            .to_string_lossy()
            .into_owned();
        let listed = manifest
            .files
            .iter()
            .find(|f| f.path == name)
            .ok_or_else(|| {
                invalid(format!(
                    "it holds `{name}`, which its manifest does not list"
                ))
            })?;
        let rel = safe_relative(&name)
            .filter(|_| entry.header().entry_type().is_file())
            .ok_or_else(|| {
                invalid(format!(
                    "`{name}` is not a plain file inside the data directory"
                ))
            })?;
        if !seen.insert(name.clone()) {
            return Err(invalid(format!("`{name}` is in it twice")));
        }
        let target = data_dir.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o700))
                .map_err(io(parent))?;
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .map_err(io(&target))?;
        let (bytes, sha256) = copy_hashed(&mut entry, &mut out).map_err(io(&target))?;
        out.sync_all().map_err(io(&target))?;
        if bytes != listed.bytes || sha256 != listed.sha256 {
            return Err(invalid(format!(
                "`{name}` does not match its manifest (the file is damaged or was changed)"
            )));
        }
    }
    let missing: Vec<&str> = manifest
        .files
        .iter()
        .filter(|f| !seen.contains(&f.path))
        .map(|f| f.path.as_str())
        .collect();
    if !missing.is_empty() {
        return Err(invalid(format!(
            "it ends before {} (cut short?)",
            missing.join(", ")
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_dir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("collector.toml", "x = 1\n"),
            ("ca.key", "kunci CA uji (buatan)"),
            ("collector.redb", "the live store: never copied as a file"),
            (
                "collector.reports.log",
                "its report log: the copy holds the reports",
            ),
            ("collector.reports.log.damaged-1700000000", "moved aside"),
            ("analysis.snapshot", "derived"),
            ("collector.redb.damaged-1700000000", "moved aside"),
            ("backup-snapshot-1-2.redb", "another backup's copy"),
        ] {
            std::fs::write(d.path().join(name), text).unwrap();
        }
        for dir in ["index/reports", "attachments/ab", "attachments/partial"] {
            std::fs::create_dir_all(d.path().join(dir)).unwrap();
        }
        std::fs::write(d.path().join("index/reports/meta.json"), "{}").unwrap();
        std::fs::write(d.path().join("attachments/ab/abcdef"), "foto uji").unwrap();
        std::fs::write(d.path().join("attachments/partial/x"), "half").unwrap();
        d
    }

    #[test]
    fn a_backup_holds_what_a_new_machine_needs_and_restores_byte_for_byte() {
        let d = data_dir();
        let copy = d.path().join("backup-snapshot-9-9.redb");
        std::fs::write(&copy, "the consistent copy").unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("b.tar");
        let manifest = write_archive(d.path(), Some(&copy), 7, &out).unwrap();
        let names: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            names,
            [
                "collector.redb",
                "attachments/ab/abcdef",
                "ca.key",
                "collector.toml"
            ]
        );
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds the CA key");
        assert!(matches!(
            write_archive(d.path(), Some(&copy), 7, &out),
            Err(BackupError::Exists(_))
        ));
        let target = out_dir.path().join("restored");
        assert_eq!(restore(&out, &target).unwrap(), manifest);
        assert_eq!(
            std::fs::read_to_string(target.join("collector.redb")).unwrap(),
            "the consistent copy"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("attachments/ab/abcdef")).unwrap(),
            "foto uji"
        );
        let mode = std::fs::metadata(target.join("ca.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        // Never into a directory that holds something.
        assert!(matches!(
            restore(&out, &target),
            Err(BackupError::NotEmpty(_))
        ));
    }

    #[test]
    fn a_damaged_or_cut_backup_is_refused_and_leaves_nothing() {
        let d = data_dir();
        let copy = d.path().join("backup-snapshot-9-9.redb");
        std::fs::write(&copy, "the consistent copy").unwrap();
        let out_dir = tempfile::tempdir().unwrap();
        let out = out_dir.path().join("b.tar");
        write_archive(d.path(), Some(&copy), 7, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        // One byte of the store copy changed.
        let at = bytes.windows(10).position(|w| w == b"consistent").unwrap();
        let mut changed = bytes.clone();
        changed[at] = b'K';
        let bad = out_dir.path().join("changed.tar");
        std::fs::write(&bad, &changed).unwrap();
        let target = out_dir.path().join("r1");
        let err = restore(&bad, &target).unwrap_err().to_string();
        assert!(err.contains("does not match its manifest"), "{err}");
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        // Cut short.
        let cut = out_dir.path().join("cut.tar");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let target = out_dir.path().join("r2");
        assert!(restore(&cut, &target).is_err());
        assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
        // Not a backup at all.
        let other = out_dir.path().join("other.tar");
        std::fs::write(&other, b"hello").unwrap();
        assert!(restore(&other, &out_dir.path().join("r3")).is_err());
    }

    #[test]
    fn only_plain_snapshot_names_and_relative_paths_pass() {
        assert!(is_snapshot_name(&snapshot_name(12, 1_700_000_000_000)));
        for bad in [
            "backup-snapshot-.redb",
            "backup-snapshot-../x.redb",
            "x.redb",
            "backup-snapshot-1/2.redb",
        ] {
            assert!(!is_snapshot_name(bad), "{bad}");
        }
        assert!(safe_relative("attachments/ab/c").is_some());
        for bad in ["/etc/passwd", "../x", "a/../../x", ""] {
            assert!(safe_relative(bad).is_none(), "{bad}");
        }
    }
}
