//! `backup` and `restore` (the format and the checks are in `crate::backup`).

use super::ask;
use crate::backup;
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::Context;
use std::path::Path;

/// `backup`: whoever holds the store (the running daemon, or this command when none runs)
/// copies it into the data directory; this command writes the backup file from that copy and
/// the other files, then removes the copy.
pub(super) async fn backup(data_dir: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        anyhow::bail!(backup::BackupError::Exists(out.display().to_string()));
    }
    let config = crate::config::CollectorConfig::load(data_dir)?;
    if config.store.is_some() {
        return backup_without_store(data_dir, out).await;
    }
    let name = backup::snapshot_name(std::process::id(), pasopati_common::Timestamp::now().0);
    let copy = data_dir.join(&name);
    let answer = ask(data_dir, CollectorRequest::StoreSnapshot(name)).await;
    let written = match answer {
        Ok(CollectorResponse::Json(lines)) => {
            let reports = lines
                .first()
                .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .and_then(|v| v["reports"].as_u64())
                .unwrap_or(0);
            let (dir, copy, out) = (data_dir.to_owned(), copy.clone(), out.to_owned());
            pasopati_common::task::run_blocking("writing the backup", move || {
                backup::write_archive(&dir, Some(&copy), reports, &out)
            })
            .await
            .map_err(anyhow::Error::from)
            .and_then(|r| r.map_err(anyhow::Error::from))
        }
        Ok(other) => Err(super::failed(other)),
        Err(e) => Err(e),
    };
    // The copy is in the data directory only for this command.
    let _ = std::fs::remove_file(&copy);
    let manifest = written.context("the backup was not written")?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    println!(
        "backup written: {} ({} files, {:.1} MiB, {} reports). It holds the CA key: keep it where only admins can read it, and copy it off this machine.",
        out.display(),
        manifest.files.len(),
        bytes as f64 / (1 << 20) as f64,
        manifest.reports
    );
    Ok(())
}

/// `backup` of a collector whose store is in PostgreSQL: the data directory without the store
/// (the database is backed up with its own tools). Restored on another machine, it makes a
/// second collector on the same database.
async fn backup_without_store(data_dir: &Path, out: &Path) -> anyhow::Result<()> {
    let (dir, target) = (data_dir.to_owned(), out.to_owned());
    let manifest = pasopati_common::task::run_blocking("writing the backup", move || {
        backup::write_archive(&dir, None, 0, &target)
    })
    .await??;
    println!(
        "backup written: {} ({} files): the configuration, CA and keys of this collector. The store is in PostgreSQL and is not in this file: back it up with pg_dump (packaging/INSTALL.md). `restore` this file on another machine to add a second collector on the same database. It holds the CA key: keep it where only admins can read it.",
        out.display(),
        manifest.files.len()
    );
    Ok(())
}

/// `restore`: the backup into an empty data directory.
pub(super) fn restore(data_dir: &Path, from: &Path) -> anyhow::Result<()> {
    if pasopati_common::control::daemon_answers(data_dir) {
        anyhow::bail!(
            "a collector is running for {}; stop it first (restore needs an empty data directory)",
            data_dir.display()
        );
    }
    let manifest = backup::restore(from, data_dir)?;
    println!(
        "restored into {}: {} files, {} reports, backed up at {} by collector {}. Start the collector (`pasopati-collector run --data-dir {}`); each site's agent resends what the center received after the backup. If the daemon runs as its own user, give it the directory first (`chown -R pasopati: {}`).",
        data_dir.display(),
        manifest.files.len(),
        manifest.reports,
        manifest.created_at,
        manifest.collector_version,
        data_dir.display(),
        data_dir.display()
    );
    Ok(())
}
