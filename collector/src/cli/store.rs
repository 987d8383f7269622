//! `store migrate`: moves a collector's redb store into PostgreSQL (the copy, its resumption
//! and its verification are `PgStore::import_from`), then points the collector at it.

use crate::config::{CollectorConfig, StoreSettings};
use crate::store::pg::{ImportProgress, PgOptions, PgStore};
use crate::store::{RedbStore, StoreError, LOG_FILE, STORE_FILE};
use anyhow::Context;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// What the store commands do.
#[derive(clap::Subcommand)]
pub(super) enum StoreCommand {
    /// Move the redb store of a stopped collector into an empty PostgreSQL database, verify
    /// every table (rows and content hashes), and point the collector at it. Agents keep their
    /// reports while the collector is stopped. Stopped midway, run it again: it goes on.
    Migrate {
        /// The collector's data directory (its store is redb).
        #[arg(long = "from", value_name = "DATA_DIR")]
        data_dir: PathBuf,
        /// postgres://USER@HOST:PORT/DB?sslmode=require (an empty database; the schema is
        /// made now).
        #[arg(long = "to", value_name = "URL")]
        url: String,
        /// The CA certificate (PEM) that signs the database server's certificate, for
        /// sslmode=require; copied into the data directory.
        #[arg(long, value_name = "FILE")]
        store_ca: Option<PathBuf>,
        /// Rows written per transaction.
        #[arg(long, default_value_t = 5_000)]
        rows_per_chunk: usize,
    },
}

/// Where the moved redb store is kept, beside the configuration that no longer names it.
pub const MOVED_STORE_FILE: &str = "collector.redb.moved-to-postgres";
/// The same for the redb store's report log.
pub const MOVED_LOG_FILE: &str = "collector.reports.log.moved-to-postgres";

pub(super) fn run(command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate {
            data_dir,
            url,
            store_ca,
            rows_per_chunk,
        } => migrate(&data_dir, url, store_ca, rows_per_chunk.max(1)),
    }
}

fn migrate(
    data_dir: &Path,
    url: String,
    store_ca: Option<PathBuf>,
    rows_per_chunk: usize,
) -> anyhow::Result<()> {
    let mut config = CollectorConfig::load(data_dir)?;
    if let Some(store) = &config.store {
        anyhow::bail!(
            "the collector in {} keeps its store in PostgreSQL already ({}); nothing to move",
            data_dir.display(),
            crate::store::pg::redact(&store.url)
        );
    }
    let stop_first = || {
        format!(
            "the collector is running for {}: stop it first (`systemctl stop pasopati-collector`). Sites' agents keep their reports while it is stopped and send them when it is back",
            data_dir.display()
        )
    };
    if pasopati_common::control::daemon_answers(data_dir) {
        anyhow::bail!(stop_first());
    }
    let ca_cert = std::fs::read(data_dir.join(crate::authority::CA_CERT_FILE))
        .with_context(|| format!("reading the CA certificate of {}", data_dir.display()))?;
    let source = pasopati_common::hex(&pasopati_common::sha256(&ca_cert));
    let from = match RedbStore::open(data_dir) {
        Ok(s) => s,
        Err(StoreError::Locked { .. }) => anyhow::bail!(stop_first()),
        Err(e) => return Err(e.into()),
    };
    let options = PgOptions {
        url: url.clone(),
        ca_file: store_ca.clone(),
        max_connections: Some(2),
    };
    let to = PgStore::open(&options)?;
    pasopati_common::errln!(
        "moving the store of {} into {} …",
        data_dir.display(),
        to.location()
    );
    let mut report = |p: &ImportProgress| {
        if p.done {
            pasopati_common::errln!("  {}: {} rows", p.table, p.copied);
        } else if p.copied.is_multiple_of(rows_per_chunk as u64 * 20) {
            pasopati_common::errln!("  {}: {} rows so far", p.table, p.copied);
        }
        ControlFlow::Continue(())
    };
    let Some(summary) = to.import_from(&from, &source, rows_per_chunk, &mut report)? else {
        anyhow::bail!("the move stopped before its end; run the same command again to go on");
    };
    // Attachments' bytes go into the database too, so that a second collector on it can
    // serve them (each keeps a copy in its own data directory).
    let files = crate::attachments::AttachmentDir::new(data_dir);
    let mut uploaded = 0usize;
    for a in from.attachments()? {
        let hash = a.reference.hash;
        let path = files.path(&hash);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading attachment {}", path.display()))?;
        to.put_attachment_bytes(&hash, &bytes)?;
        uploaded += 1;
    }
    if uploaded > 0 {
        pasopati_common::errln!("  attachments: {uploaded} files");
    }
    // So are release packages, for the same reason.
    let mut packages = 0usize;
    for (_, record) in from.fleet_list(crate::fleet::kind::RELEASE)? {
        let release: crate::fleet::release::ReleaseRecord = crate::fleet::from_json(&record)?;
        let path = data_dir
            .join(crate::fleet::release::PACKAGE_DIR)
            .join(&release.sha256);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("reading release package {}", path.display()))?;
        to.put_release_package(&release.sha256_bytes()?, &bytes)?;
        packages += 1;
    }
    if packages > 0 {
        pasopati_common::errln!("  release packages: {packages}");
    }
    drop((from, to));
    // The configuration names the new store before the old file moves aside: a crash between
    // the two leaves a collector on PostgreSQL and a redb file it no longer reads.
    let mut settings = StoreSettings {
        url,
        ca_file: None,
        max_connections: None,
    };
    if let Some(ca) = store_ca {
        std::fs::copy(&ca, data_dir.join(crate::STORE_CA_FILE))
            .with_context(|| format!("copying the database's CA certificate {}", ca.display()))?;
        settings.ca_file = Some(PathBuf::from(crate::STORE_CA_FILE));
    }
    config.store = Some(settings);
    config.save(data_dir)?;
    std::fs::rename(data_dir.join(STORE_FILE), data_dir.join(MOVED_STORE_FILE))
        .with_context(|| format!("moving {STORE_FILE} aside in {}", data_dir.display()))?;
    // Its report log goes with it: the two are one store. The move is done by now, so a
    // failure here is said and not fatal.
    if let Err(e) = std::fs::rename(data_dir.join(LOG_FILE), data_dir.join(MOVED_LOG_FILE)) {
        pasopati_common::errln!(
            "warning: {LOG_FILE} could not be renamed to {MOVED_LOG_FILE} in {} ({e}); rename it by hand, and keep it with {MOVED_STORE_FILE}",
            data_dir.display()
        );
    }
    pasopati_common::outln!(
        "moved{}: {} rows written now; every table verified (rows and content hash):",
        if summary.resumed {
            " (going on from an earlier run)"
        } else {
            ""
        },
        summary.copied_now
    );
    for check in &summary.tables {
        pasopati_common::outln!(
            "  {:<22} {:>10} rows  {}",
            check.table,
            check.rows,
            check.hash
        );
    }
    pasopati_common::outln!(
        "{}/collector.toml now names the PostgreSQL store; the redb store is kept as {}/{} and its report log as {MOVED_LOG_FILE} (delete both once the collector runs well). Start the collector (`pasopati-collector run --data-dir {}`); sites send what they kept meanwhile.",
        data_dir.display(),
        data_dir.display(),
        MOVED_STORE_FILE,
        data_dir.display()
    );
    Ok(())
}
