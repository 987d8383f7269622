//! `pasopati-demo`: parses the arguments, sets up logging, runs [`pasopati_demo::run`].

use clap::Parser;
use pasopati_common::logging::{self, LogConfig};
use pasopati_common::terminal::error_text;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Run a collector and a fleet of demo agents on loopback, with the dashboard and invented
/// news, and print what arrives.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// How many demo sites.
    #[arg(long, default_value_t = 8)]
    sites: usize,
    /// How long the sites file reports, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Keep the demo's data directory instead of deleting it.
    #[arg(long)]
    keep: bool,
    /// Keep the collector and its dashboard running after the fleet is done (Ctrl-C stops).
    #[arg(long)]
    stay: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    // The demo prints its own story; its daemons' logs would drown it.
    logging::init_logging(LogConfig {
        default_filter: "warn",
        ..LogConfig::DAEMON
    });
    logging::run_command(None, run(args), |e| {
        pasopati_common::errln!("error: {}", error_text(e.as_ref()));
        std::process::ExitCode::FAILURE
    })
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.sites == 0 {
        anyhow::bail!("--sites must be at least 1");
    }
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        pasopati_common::control::shutdown_signal().await;
        stop.cancel();
    });
    let summary = pasopati_demo::run(
        pasopati_demo::DemoOptions {
            sites: args.sites,
            duration: Duration::from_secs(args.duration),
            keep: args.keep,
            stay: args.stay,
        },
        shutdown,
    )
    .await
    .map_err(|e| anyhow::anyhow!("demo: {e}"))?;
    if !summary.ok() {
        anyhow::bail!("the demo ended with lost or duplicated reports");
    }
    Ok(())
}
