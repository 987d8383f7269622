//! Setting up and running the collector: `init`, `validate` and `run`.

use crate::{BindOptions, Collector, InitOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// Arguments of `init`.
#[derive(clap::Args)]
pub(super) struct InitArgs {
    #[arg(long)]
    data_dir: PathBuf,
    /// UDP address for agents (default 0.0.0.0:4433).
    #[arg(long)]
    quic_listen: Option<SocketAddr>,
    /// TCP address for the dashboard (default 127.0.0.1:8080).
    #[arg(long)]
    http_listen: Option<SocketAddr>,
    /// host:port agents dial, written into enrollment tokens.
    #[arg(long)]
    public_addr: Option<String>,
    /// Keep the store in PostgreSQL instead of the embedded redb file:
    /// postgres://USER@HOST:PORT/DB?sslmode=require (the schema is made now).
    #[arg(long, value_name = "URL")]
    store: Option<String>,
    /// The CA certificate (PEM) that signs the database server's certificate, for
    /// sslmode=require; copied into the data directory.
    #[arg(long, value_name = "FILE", requires = "store")]
    store_ca: Option<PathBuf>,
}

/// Creates a data directory, warning when agents would be told to dial this machine only.
pub(super) fn init(args: InitArgs) -> anyhow::Result<()> {
    let InitArgs {
        data_dir,
        quic_listen,
        http_listen,
        public_addr,
        store,
        store_ca,
    } = args;
    let store = store.map(|url| crate::config::StoreSettings {
        url,
        ca_file: store_ca,
        max_connections: None,
    });
    let config = crate::init(
        &data_dir,
        InitOptions {
            quic_listen,
            http_listen,
            public_addr,
            store,
        },
    )?;
    pasopati_common::outln!("collector initialised in {}", data_dir.display());
    let loopback = pasopati_common::collector_addrs(&config.public_addr)
        .iter()
        .all(|addr| {
            addr.rsplit_once(':').is_some_and(|(host, _)| {
                matches!(
                    host.trim_matches(['[', ']']),
                    "127.0.0.1" | "localhost" | "::1"
                )
            })
        });
    if loopback {
        pasopati_common::errln!(
            "WARNING: agents will be told to dial {}, an address of this machine only. \
             Tokens minted now work for agents on this machine and nowhere else. For \
             real sites set `public_addr` in {}/collector.toml to the name or address \
             and port sites reach (or run init again with --public-addr HOST:PORT) \
             before `site add`.",
            config.public_addr,
            data_dir.display()
        );
    }
    pasopati_common::outln!(
        "agents will dial {} (QUIC on {})",
        config.public_addr,
        config.quic_listen
    );
    pasopati_common::outln!(
        "start it with: pasopati-collector run --data-dir {}",
        data_dir.display()
    );
    Ok(())
}

/// Checks a configuration file.
pub(super) fn validate(config: &Path) -> anyhow::Result<()> {
    crate::config::CollectorConfig::load_file(config)?;
    pasopati_common::outln!("{}: configuration is valid", config.display());
    Ok(())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub(super) async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let server = Collector::open_for_daemon(data_dir)?.bind(BindOptions::default())?;
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_signal(shutdown.clone()));
    server.run(shutdown).await?;
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    pasopati_common::control::shutdown_signal().await;
    shutdown.cancel();
}
