//! The PostgreSQL store (issue 16), built in the steps of `docs/plans/postgres.md`. Here so far:
//! how the collector connects (TLS with rustls and ring, like everything else) and the schema
//! migrations, applied at start from versioned files, never by hand. The store's data methods
//! come behind the `Store` seam next.
//!
//! **Migrations.** Each file of `migrations/` is one version, listed in [`MIGRATIONS`] and
//! compiled into the binary. At start, holding a session advisory lock (collectors starting
//! together take turns), the runner makes `schema_migrations` if needed, refuses a database
//! that a newer collector migrated or whose recorded file differs from this binary's (by
//! SHA-256), and applies each missing version with its record in one transaction (PostgreSQL's
//! DDL is transactional, so a failed migration leaves nothing half-done).
//!
//! **TLS.** `sslmode=require` connects with TLS, verifying the server's certificate and name
//! against the CA in `[store] ca_file`. `sslmode=disable` is accepted only for a database on
//! this machine (loopback or a Unix socket). `sslmode=prefer`, the client library's default,
//! is refused: it falls back to plaintext without a word.

mod fleet;
mod import;
mod ingest;
mod notifications;
mod records;
mod reports;
mod search;
mod store;

pub use import::{ImportProgress, ImportSummary, TableCheck};
pub use store::{Lead, PgStore, DEFAULT_MAX_CONNECTIONS, STORED_CHANNEL};

use super::StoreError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::{Path, PathBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::Client;

/// One migration: its version, name and SQL text.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. A new file in `migrations/` is a new line here (a unit test
/// checks that the two agree).
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "schema",
        sql: include_str!("migrations/0001_schema.sql"),
    },
    Migration {
        version: 2,
        name: "store_import",
        sql: include_str!("migrations/0002_store_import.sql"),
    },
    Migration {
        version: 3,
        name: "report_index",
        sql: include_str!("migrations/0003_report_index.sql"),
    },
    Migration {
        version: 4,
        name: "attachment_bytes",
        sql: include_str!("migrations/0004_attachment_bytes.sql"),
    },
    Migration {
        version: 5,
        name: "fleet",
        sql: include_str!("migrations/0005_fleet.sql"),
    },
    Migration {
        version: 6,
        name: "responses_and_notifications",
        sql: include_str!("migrations/0006_responses_and_notifications.sql"),
    },
    Migration {
        version: 7,
        name: "notify_active",
        sql: include_str!("migrations/0007_notify_active.sql"),
    },
    Migration {
        version: 8,
        name: "report_index_filters",
        sql: include_str!("migrations/0008_report_index_filters.sql"),
    },
    Migration {
        version: 9,
        name: "alerts",
        sql: include_str!("migrations/0009_alerts.sql"),
    },
    Migration {
        version: 10,
        name: "live_sites",
        sql: include_str!("migrations/0010_live_sites.sql"),
    },
];

/// The advisory lock key the migration runner holds ("PASOPATI" in ASCII).
const MIGRATION_LOCK: i64 = 0x5041_534F_5041_5449;

/// How to reach the database.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PgOptions {
    /// A libpq-style URL or key-value string (`postgres://USER@HOST:PORT/DB?sslmode=require`).
    pub url: String,
    /// The CA certificate(s), PEM, that sign the database server's certificate.
    pub ca_file: Option<PathBuf>,
    /// How many connections this collector opens at most (default
    /// [`store::DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: Option<usize>,
}

impl PgOptions {
    /// The configured connection limit, or the default.
    pub fn max_connections(&self) -> usize {
        self.max_connections
            .unwrap_or(store::DEFAULT_MAX_CONNECTIONS)
    }
}

fn database(message: impl std::fmt::Display) -> StoreError {
    StoreError::Database(message.to_string())
}

/// A client error in full: the server's message when it sent one (the client's own `Display`
/// says only "db error"), else the error and its cause.
fn explain(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        database(explain(&e))
    }
}

/// How to connect: the parsed configuration, and TLS or not. Refuses a configuration that could
/// send the store's data in plaintext over a network.
pub enum Connector {
    Plain(tokio_postgres::Config),
    Tls(
        tokio_postgres::Config,
        tokio_postgres_rustls::MakeRustlsConnect,
    ),
}

impl Connector {
    pub fn new(options: &PgOptions) -> Result<Connector, StoreError> {
        let config: tokio_postgres::Config = options.url.parse().map_err(|e| {
            database(format!(
                "the store address `{}` cannot be read ({e}); write it as postgres://USER@HOST:PORT/DATABASE?sslmode=require",
                redact(&options.url)
            ))
        })?;
        let local = config.get_hosts().iter().all(|h| match h {
            Host::Unix(_) => true,
            Host::Tcp(name) => matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1"),
        });
        match config.get_ssl_mode() {
            SslMode::Disable if local => Ok(Connector::Plain(config)),
            SslMode::Disable => Err(database(
                "sslmode=disable would send reports in plaintext to a database on another machine; use sslmode=require with [store] ca_file",
            )),
            SslMode::Require => {
                let ca = options.ca_file.as_deref().ok_or_else(|| {
                    database("sslmode=require needs the CA that signs the database server's certificate: set [store] ca_file")
                })?;
                Ok(Connector::Tls(config, tls_connector(ca)?))
            }
            _ => Err(database(
                "set sslmode=require (TLS, the server's certificate verified against [store] ca_file) or, for a database on this machine only, sslmode=disable; sslmode=prefer falls back to plaintext silently and is refused",
            )),
        }
    }

    /// Opens a connection that listens on `channel` and sends each notification's payload to
    /// `tx`, until the connection ends or `tx` is closed; its I/O runs on a task of the
    /// current runtime.
    pub async fn listen(
        &self,
        channel: &'static str,
        tx: tokio::sync::mpsc::Sender<String>,
    ) -> Result<(), StoreError> {
        let failed = |e: tokio_postgres::Error| {
            database(format!("cannot connect to the store: {}", explain(&e)))
        };
        match self {
            Connector::Plain(config) => {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                tokio::spawn(listening(client, connection, channel, tx));
            }
            Connector::Tls(config, tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(failed)?;
                tokio::spawn(listening(client, connection, channel, tx));
            }
        }
        Ok(())
    }

    /// Opens one connection, whose I/O runs on a task of the current runtime.
    pub async fn connect(&self) -> Result<Client, StoreError> {
        let failed = |e: tokio_postgres::Error| {
            database(format!("cannot connect to the store: {}", explain(&e)))
        };
        match self {
            Connector::Plain(config) => {
                let (client, connection) = config
                    .connect(tokio_postgres::NoTls)
                    .await
                    .map_err(failed)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "the connection to the store ended");
                    }
                });
                Ok(client)
            }
            Connector::Tls(config, tls) => {
                let (client, connection) = config.connect(tls.clone()).await.map_err(failed)?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::warn!(error = %e, "the connection to the store ended");
                    }
                });
                Ok(client)
            }
        }
    }
}

/// Drives a listening connection: `LISTEN channel`, then every notification's payload to `tx`.
async fn listening<S, T>(
    client: Client,
    mut connection: tokio_postgres::Connection<S, T>,
    channel: &'static str,
    tx: tokio::sync::mpsc::Sender<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let forward = async {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                    if tx.send(n.payload().to_owned()).await.is_err() {
                        return;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::warn!(error = %explain(&e), "the store's notification connection ended");
                    return;
                }
                None => return,
            }
        }
    };
    let listen = async {
        if let Err(e) = client.batch_execute(&format!("LISTEN {channel}")).await {
            tracing::warn!(error = %explain(&e), "cannot listen for the store's notifications");
        }
    };
    tokio::join!(forward, listen);
}

/// The store address with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

fn tls_connector(ca_file: &Path) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        database(format!(
            "[store] ca_file {} cannot be read: {e}",
            ca_file.display()
        ))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| unreadable(&e))? {
        roots
            .add(cert.map_err(|e| unreadable(&e))?)
            .map_err(|e| unreadable(&e))?;
    }
    if roots.is_empty() {
        return Err(unreadable(&"it holds no certificate"));
    }
    let config = rustls::ClientConfig::builder_with_provider(pasopati_common::pki::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(database)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// What [`migrate`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Versions applied now, in order.
    pub applied: Vec<i32>,
    /// The schema version the database is at.
    pub version: i32,
}

/// Brings the database's schema to this binary's version (see the module documentation).
pub async fn migrate(client: &mut Client) -> Result<Migrated, StoreError> {
    migrate_with(client, MIGRATIONS).await
}

async fn migrate_with(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Migrated, StoreError> {
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::from)?;
    let result = apply_missing(client, migrations).await;
    let unlocked = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(StoreError::from);
    let migrated = result?;
    unlocked?;
    Ok(migrated)
}

async fn apply_missing(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Migrated, StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                sha256 bytea NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(StoreError::from)?;
    let rows = client
        .query(
            "SELECT version, name, sha256 FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .map_err(StoreError::from)?;
    let newest_known = migrations.last().map_or(0, |m| m.version);
    let mut done = Migrated::default();
    for row in &rows {
        let version: i32 = row.get(0);
        let name: String = row.get(1);
        let sha: Vec<u8> = row.get(2);
        if version > newest_known {
            return Err(database(format!(
                "the store's schema is at version {version} ({name}), newer than this collector knows ({newest_known}): a newer collector has used it; run that version (or newer) instead"
            )));
        }
        let Some(known) = migrations.iter().find(|m| m.version == version) else {
            return Err(database(format!("the store records schema version {version} ({name}), which this collector does not have")));
        };
        if sha != pasopati_common::sha256(known.sql.as_bytes()) {
            return Err(database(format!(
                "schema version {version} ({name}) in the store differs from this collector's file: the schema was changed by hand or by another build; restore the database from a backup or make it anew"
            )));
        }
        done.version = done.version.max(version);
    }
    let at = done.version;
    for m in migrations.iter().filter(|m| m.version > at) {
        let txn = client.transaction().await.map_err(StoreError::from)?;
        txn.batch_execute(m.sql).await.map_err(|e| {
            database(format!(
                "schema version {} ({}) could not be applied: {}",
                m.version,
                m.name,
                explain(&e)
            ))
        })?;
        txn.execute(
            "INSERT INTO schema_migrations (version, name, sha256) VALUES ($1, $2, $3)",
            &[
                &m.version,
                &m.name,
                &pasopati_common::sha256(m.sql.as_bytes()).to_vec(),
            ],
        )
        .await
        .map_err(StoreError::from)?;
        txn.commit().await.map_err(StoreError::from)?;
        tracing::info!(version = m.version, name = m.name, "store schema migrated");
        done.applied.push(m.version);
        done.version = m.version;
    }
    Ok(done)
}

/// Test access to a custom migration list (for the runner's refusals).
#[doc(hidden)]
pub async fn migrate_list_for_tests(
    client: &mut Client,
    migrations: &[Migration],
) -> Result<Migrated, StoreError> {
    migrate_with(client, migrations).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_migration_file_is_listed_once_in_order() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store/pg/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{:04}_{}.sql", m.version, m.name))
            .collect();
        assert_eq!(files, listed);
        assert!(MIGRATIONS
            .windows(2)
            .all(|w| w[0].version + 1 == w[1].version));
    }

    #[test]
    fn a_connection_that_could_fall_back_to_plaintext_is_refused() {
        let opts = |url: &str| PgOptions {
            url: url.into(),
            ..PgOptions::default()
        };
        let refused = |url: &str| match Connector::new(&opts(url)) {
            Ok(_) => panic!("{url} accepted"),
            Err(e) => e.to_string(),
        };
        // prefer is the client library's default.
        assert!(refused("postgres://u@db.example:5432/p").contains("sslmode=prefer"));
        assert!(refused("postgres://u@db.example:5432/p?sslmode=prefer").contains("refused"));
        assert!(refused("postgres://u@db.example:5432/p?sslmode=disable").contains("plaintext"));
        assert!(refused("postgres://u@db.example/p?sslmode=require").contains("ca_file"));
        assert!(refused("postgres://u:rahasia@db.example/p?sslmode=nope").contains("u:***@"));
        assert!(!refused("postgres://u:rahasia@db.example/p?sslmode=nope").contains("rahasia"));
        assert!(matches!(
            Connector::new(&opts("postgres://u@127.0.0.1:5432/p?sslmode=disable")),
            Ok(Connector::Plain(_))
        ));
        assert!(matches!(
            Connector::new(&opts(
                "host=/run/postgresql user=u dbname=p sslmode=disable"
            )),
            Ok(Connector::Plain(_))
        ));
    }
}
