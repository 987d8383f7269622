//! The `pasopati-agent` command line: parses arguments, sets up logging, and calls the library.
//! It lives in the library so the binary (and the test suite's copy of it) is one line.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pasopati_common::{Priority, ReportDraft, ReportId, Revision, Timestamp};
use std::io::Read;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "pasopati-agent", version, about = "PASOPATI Edge site agent")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ReportAction {
    /// File a corrected revision of a report filed here; the center keeps every revision.
    Edit {
        /// The report's id, as `report` printed it.
        id: ReportId,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        body: Option<String>,
        #[arg(long)]
        priority: Option<Priority>,
        #[arg(long)]
        occurred_at: Option<String>,
    },
    /// Retract a report filed here, with the reason.
    Retract {
        id: ReportId,
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        reason: String,
    },
}

// Parsed once per process; its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Enroll this site with a one-time token from the media center.
    Enroll {
        #[arg(long)]
        data_dir: PathBuf,
        /// The token printed by `pasopati-collector site add`; `-` reads it from standard input.
        #[arg(long)]
        token: String,
        /// Replace an existing certificate (queued reports are kept).
        #[arg(long)]
        force: bool,
    },
    /// Check a configuration file (agent.toml); exits non-zero naming what is wrong.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the agent daemon: sync the outbox to the collector.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// File a report. Prints its id once it is durably saved.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Report {
        #[command(subcommand)]
        action: Option<ReportAction>,
        #[arg(long, required = true)]
        data_dir: Option<PathBuf>,
        #[arg(long, required = true)]
        category: Option<String>,
        #[arg(long, required = true)]
        title: Option<String>,
        #[arg(long, required = true)]
        body: Option<String>,
        /// `normal` or `urgent` (default: the category's default).
        #[arg(long)]
        priority: Option<Priority>,
        /// When it happened, RFC 3339 (default: now).
        #[arg(long)]
        occurred_at: Option<String>,
        /// A photo (JPEG, PNG) or PDF document to send with the report; repeat for more (at
        /// most 10). Photos lose their EXIF data (GPS position, camera serial) before saving.
        #[arg(long = "attach", value_name = "FILE")]
        attach: Vec<PathBuf>,
    },
    /// Show the backlog and sync state.
    Status {
        #[arg(long)]
        data_dir: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line with the process's arguments.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("PASOPATI_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,quinn=warn,rustls=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            pasopati_common::errln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if pasopati_common::terminal::is_broken_pipe(e.as_ref()) => {
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            pasopati_common::errln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll {
            data_dir,
            token,
            force,
        } => {
            let token = if token == "-" {
                let mut text = String::new();
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the token from standard input")?;
                text
            } else {
                token
            };
            let site = crate::enroll(&data_dir, &token, force).await?;
            pasopati_common::outln!(
                "enrolled as site {site}; start the agent with: pasopati-agent run --data-dir {}",
                data_dir.display()
            );
        }
        Command::Validate { config } => {
            crate::config::AgentConfig::load_file(&config)?;
            pasopati_common::outln!("{}: configuration is valid", config.display());
        }
        Command::Run { data_dir } => {
            let agent = crate::Agent::open(&data_dir)?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            agent.run(shutdown).await?;
        }
        Command::Report {
            action:
                Some(ReportAction::Edit {
                    id,
                    data_dir,
                    category,
                    title,
                    body,
                    priority,
                    occurred_at,
                }),
            ..
        } => {
            let changes = Revision {
                category,
                title,
                body,
                priority,
                occurred_at: parse_time(occurred_at)?,
                retract: None,
            };
            let revision = crate::revise_report(&data_dir, id, changes).await?;
            pasopati_common::outln!("{id} revision {revision}");
        }
        Command::Report {
            action:
                Some(ReportAction::Retract {
                    id,
                    data_dir,
                    reason,
                }),
            ..
        } => {
            let changes = Revision {
                retract: Some(reason),
                ..Revision::default()
            };
            let revision = crate::revise_report(&data_dir, id, changes).await?;
            pasopati_common::outln!("{id} revision {revision} (retracted)");
        }
        Command::Report {
            action: None,
            data_dir: Some(data_dir),
            category: Some(category),
            title: Some(title),
            body: Some(body),
            priority,
            occurred_at,
            attach,
        } => {
            let draft = ReportDraft {
                category,
                title,
                body,
                priority,
                occurred_at: parse_time(occurred_at)?,
            };
            let id = crate::file_report_with(&data_dir, draft, &attach).await?;
            pasopati_common::outln!("{id}");
        }
        Command::Report { .. } => bail!("report needs --data-dir, --category, --title and --body"),
        Command::Status { data_dir, json } => {
            let s = crate::status(&data_dir).await?;
            if json {
                pasopati_common::outln!("{}", serde_json::to_string(&s)?);
            } else {
                pasopati_common::outln!("site:             {}", s.site_id);
                pasopati_common::outln!("collector:        {}", s.collector);
                pasopati_common::outln!(
                    "daemon:           {}",
                    if s.daemon_running {
                        "running"
                    } else {
                        "not running"
                    }
                );
                pasopati_common::outln!(
                    "connected:        {}",
                    if s.connected { "yes" } else { "no" }
                );
                pasopati_common::outln!(
                    "backlog:          {} ({} urgent waiting)",
                    s.backlog,
                    s.queued_urgent
                );
                pasopati_common::outln!("attachments:      {} waiting", s.attachments_pending);
                pasopati_common::outln!(
                    "oldest unsent:    {}",
                    s.oldest_unsent_at.as_deref().unwrap_or("-")
                );
                pasopati_common::outln!(
                    "acked seq:        {} (epoch {}, next seq {})",
                    s.acked_seq,
                    s.epoch,
                    s.next_seq
                );
                pasopati_common::outln!(
                    "last sync:        {}",
                    s.last_sync_at.as_deref().unwrap_or("never")
                );
                if let Some(w) = &s.web_form {
                    pasopati_common::outln!("web form:         {w}");
                }
                if let Some(e) = &s.last_error {
                    pasopati_common::outln!("last error:       {e}");
                }
            }
        }
    }
    Ok(())
}

fn parse_time(text: Option<String>) -> anyhow::Result<Option<Timestamp>> {
    text.map(|t| Timestamp::parse_rfc3339(&t))
        .transpose()
        .context("--occurred-at")
}

async fn stop_on_signal(shutdown: CancellationToken) {
    pasopati_common::control::shutdown_signal().await;
    shutdown.cancel();
}
