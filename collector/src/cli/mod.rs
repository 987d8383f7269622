//! The `pasopati-collector` command line: parses arguments, sets up logging, and calls the library.
//! It lives in the library so the binary (and the test suite's copy of it) is one line.
//!
//! [`Command`] is the whole command line in one place; [`run`] sends each command to the
//! function of its group, one file each: `daemon.rs` (init, validate, run), `analyze.rs`,
//! `site.rs`, `reports.rs` (reports, gaps, revisions, quarantine, attachments), `media.rs`
//! (media, stories, insights), `stories.rs` (one story, analysts' merges and splits), `claims.rs`, `users.rs` (users and API tokens) and `audit.rs`.
//! Admin commands reach the running daemon over its control socket, or open the store
//! directly when none runs ([`crate::call`]).

mod analyze;
mod audit;
mod backup;
mod claims;
mod daemon;
mod fleet;
mod media;
mod reports;
mod site;
mod store;
mod stories;
mod users;

use crate::control::{CollectorRequest, CollectorResponse};
use clap::{Parser, Subcommand};
use pasopati_common::SiteId;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "pasopati-collector",
    version,
    about = "PASOPATI Edge central collector"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: configuration, certificate authority, server certificate, store.
    Init(daemon::InitArgs),
    /// Analyse media items (and site reports) from files: duplicates, stories, UPT tags,
    /// sentiment, trends, spikes, coverage. Needs no data directory.
    Analyze(analyze::AnalyzeArgs),
    /// Check a configuration file (collector.toml); exits non-zero naming what is wrong.
    Validate {
        #[arg(long)]
        config: PathBuf,
    },
    /// Run the collector daemon.
    Run {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Write a backup of the data directory (a consistent copy of the store, the
    /// configuration, the CA and keys, the attachments) into one file, mode 0600. Safe while
    /// the daemon runs.
    Backup {
        #[arg(long)]
        data_dir: PathBuf,
        /// The backup file to write (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Bring a backup back into an empty data directory (the daemon stopped). Agents resend
    /// what the center received after the backup.
    Restore {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        from: PathBuf,
    },
    /// The store itself: `migrate` moves a redb store into PostgreSQL.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Signed agent releases: `key`, `add`, `list`.
    Release {
        #[command(subcommand)]
        command: fleet::ReleaseCommand,
    },
    /// Staged rollouts of a release: `start`, `status`, `pause`, `resume`, `abort`.
    Rollout {
        #[command(subcommand)]
        command: fleet::RolloutCommand,
    },
    /// Manage sites.
    Site {
        #[command(subcommand)]
        command: site::SiteCommand,
    },
    /// List stored reports, oldest arrival first.
    Reports {
        #[arg(long)]
        data_dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only this site's reports.
        #[arg(long)]
        site: Option<SiteId>,
        /// At most this many.
        #[arg(long)]
        limit: Option<u64>,
    },
    /// List recorded gaps in sites' sequences.
    Gaps {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Every revision of one report (edits and retraction), oldest first.
    Revisions {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: pasopati_common::ReportId,
        #[arg(long)]
        json: bool,
    },
    /// List reports held in quarantine because they carry inmate identity data; `release` or
    /// `purge` one by its number.
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Quarantine {
        #[command(subcommand)]
        action: Option<reports::QuarantineAction>,
        #[arg(long, required = true)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// List the attachments (photos, documents) the collector holds, with where each file is.
    Attachments {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Media items: import files (JSONL, RSS or Atom), list what is stored.
    Media {
        #[command(subcommand)]
        command: media::MediaCommand,
    },
    /// The stories of the live analysis (items, reports, suggested reports, figure conflicts),
    /// one JSON object per line.
    Stories {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// One story with why each item is in it; an analyst's merges and splits, and undoing them.
    Story {
        #[command(subcommand)]
        command: stories::StoryCommand,
    },
    /// Record today's risk scores of every UPT and Kanwil now, and print the risk picture
    /// (each score with its parts and its daily history) as one JSON object.
    Risk {
        #[arg(long)]
        data_dir: PathBuf,
        /// How many days of history.
        #[arg(long, default_value_t = 30)]
        days: i64,
    },
    /// Trends, spike alerts and coverage gaps, as one JSON object.
    Insights {
        #[arg(long)]
        data_dir: PathBuf,
        /// The coverage period, in days (default: `[analysis] coverage_days`).
        #[arg(long)]
        coverage_days: Option<i64>,
    },
    /// The claims register: record a claim, give a verdict with its evidence.
    Claim {
        #[command(subcommand)]
        command: claims::ClaimCommand,
    },
    /// Dashboard users: add (password from standard input), list, disable.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// API tokens for the dashboard's API and feeds.
    ApiToken {
        #[command(subcommand)]
        command: users::ApiTokenCommand,
    },
    /// The claims register as ClaimReview JSON, one claim per line.
    Claims {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// The hash-chained log of admin actions.
    Audit {
        #[command(subcommand)]
        command: audit::AuditCommand,
    },
}

/// Runs the command line with the process's arguments.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    pasopati_common::logging::init_logging(pasopati_common::logging::LogConfig::DAEMON);
    pasopati_common::logging::run_command(None, run(cli), crate::next_step::report_failure)
}

/// Sends each command to the function of its group.
async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => daemon::init(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Validate { config } => daemon::validate(&config),
        Command::Run { data_dir } => daemon::run(&data_dir).await,
        Command::Backup { data_dir, out } => backup::backup(&data_dir, &out).await,
        Command::Restore { data_dir, from } => backup::restore(&data_dir, &from),
        Command::Store { command } => store::run(command),
        Command::Site { command } => site::run(command).await,
        Command::Release { command } => fleet::release(command).await,
        Command::Rollout { command } => fleet::rollout(command).await,
        Command::Reports {
            data_dir,
            json,
            site,
            limit,
        } => reports::reports(&data_dir, json, site, limit).await,
        Command::Gaps { data_dir, json } => reports::gaps(&data_dir, json).await,
        Command::Revisions { data_dir, id, json } => reports::revisions(&data_dir, id, json).await,
        Command::Quarantine {
            action: Some(action),
            ..
        } => reports::quarantine_action(action).await,
        Command::Quarantine {
            action: None,
            data_dir,
            json,
        } => reports::quarantine(data_dir, json).await,
        Command::Attachments { data_dir, json } => reports::attachments(&data_dir, json).await,
        Command::Media { command } => media::run(command).await,
        Command::Stories { data_dir } => json_lines(&data_dir, CollectorRequest::Stories).await,
        Command::Story { command } => stories::run(command).await,
        Command::Risk { data_dir, days } => {
            json_lines(&data_dir, CollectorRequest::Risk { days }).await
        }
        Command::Insights {
            data_dir,
            coverage_days,
        } => json_lines(&data_dir, CollectorRequest::Insights { coverage_days }).await,
        Command::Claim { command } => claims::run(command).await,
        Command::Claims { data_dir } => json_lines(&data_dir, CollectorRequest::Claims).await,
        Command::User { command } => users::user(command).await,
        Command::ApiToken { command } => users::api_token(command).await,
        Command::Audit { command } => audit::run(command).await,
    }
}

/// A time from the store (RFC 3339) as people read it: local time with its zone (WIB for the
/// center's own records).
fn people_time(rfc3339: &str) -> String {
    pasopati_common::localtime::format_local_text(rfc3339, pasopati_common::localtime::Zone::Wib)
}

/// Sends `request` to the collector of `data_dir` and returns its single answer.
async fn ask(data_dir: &Path, request: CollectorRequest) -> anyhow::Result<CollectorResponse> {
    let mut responses = crate::call(data_dir, request).await?;
    match responses.len() {
        1 => Ok(responses.remove(0)),
        _ => Err(anyhow::anyhow!("unexpected answer from the collector")),
    }
}

/// Sends a request whose answer is `Done`.
async fn done(data_dir: &Path, request: CollectorRequest) -> anyhow::Result<()> {
    match ask(data_dir, request).await? {
        CollectorResponse::Done => Ok(()),
        other => Err(failed(other)),
    }
}

/// Sends a request whose answer is an enrollment token, and returns the token.
async fn token(data_dir: &Path, request: CollectorRequest) -> anyhow::Result<String> {
    match ask(data_dir, request).await? {
        CollectorResponse::Token(token) => Ok(token),
        other => Err(failed(other)),
    }
}

/// Sends a request answered with JSON documents and prints them, one a line.
async fn json_lines(data_dir: &Path, request: CollectorRequest) -> anyhow::Result<()> {
    for r in crate::call(data_dir, request).await? {
        match r {
            CollectorResponse::Json(lines) => {
                for l in lines {
                    pasopati_common::outln!("{l}");
                }
            }
            other => return Err(failed(other)),
        }
    }
    Ok(())
}

/// Prints rows: one JSON object a line with `json`, else `text` of each, or `none` when there
/// is no row.
fn print_rows<T: serde::Serialize>(
    rows: Vec<T>,
    json: bool,
    none: &str,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    if !json && rows.is_empty() {
        pasopati_common::outln!("{none}");
    }
    print_each(rows, json, text)
}

/// Prints rows: one JSON object a line with `json`, else `text` of each.
fn print_each<T: serde::Serialize>(
    rows: Vec<T>,
    json: bool,
    text: impl Fn(&T) -> String,
) -> anyhow::Result<()> {
    for row in rows {
        if json {
            pasopati_common::outln!("{}", serde_json::to_string(&row)?);
        } else {
            pasopati_common::outln!("{}", text(&row));
        }
    }
    Ok(())
}

/// The error of an answer that is not the one expected: the daemon's own message if it failed.
fn failed(response: CollectorResponse) -> anyhow::Error {
    match response {
        CollectorResponse::Failed(m) => anyhow::anyhow!(m),
        _ => anyhow::anyhow!("unexpected answer from the collector"),
    }
}
