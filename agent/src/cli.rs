//! The `pasopati-agent` command line: parses arguments, sets up logging, and calls the library.
//! It lives in the library so the binary (and the test suite's copy of it) is one line.

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pasopati_common::localtime;
use pasopati_common::logging::{self, LogConfig};
use pasopati_common::terminal::error_text;
use pasopati_common::{Priority, ReportDraft, ReportId, Revision, Timestamp};
use std::io::Read;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    name = "pasopati-agent",
    // What this executable runs as, a stamp included (`fleet::stamp_version`).
    version = pasopati_common::version(),
    about = "PASOPATI Edge site agent"
)]
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
        /// The new body; `-` reads it from standard input.
        #[arg(long, conflicts_with = "body_file")]
        body: Option<String>,
        /// Read the new body from this file (UTF-8 text).
        #[arg(long, value_name = "PATH")]
        body_file: Option<PathBuf>,
        #[arg(long)]
        priority: Option<Priority>,
        /// When it happened, RFC 3339 (`2026-11-27T09:30:00+07:00`) or local time in the site's
        /// zone (`2026-11-27 09:30`).
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
        /// The report's text; `-` reads it from standard input (for long texts: a command line
        /// holds only so much).
        #[arg(
            long,
            required_unless_present = "body_file",
            conflicts_with = "body_file"
        )]
        body: Option<String>,
        /// Read the report's text from this file (UTF-8 text).
        #[arg(long, value_name = "PATH")]
        body_file: Option<PathBuf>,
        /// `normal` or `urgent` (default: the category's default).
        #[arg(long)]
        priority: Option<Priority>,
        /// When it happened (default: now): RFC 3339 (`2026-11-27T09:30:00+07:00`) or local time
        /// in the site's zone (`2026-11-27 09:30`).
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
    logging::init_logging(LogConfig::DAEMON);
    // The packaged executable may hand over to an installed release (`launch.rs`); `exec`
    // returns only if that fails, and then this one runs.
    match &cli.command {
        Command::Run { data_dir } => crate::launch::hand_over(data_dir),
        Command::Status { data_dir, .. }
        | Command::Report {
            data_dir: Some(data_dir),
            ..
        }
        | Command::Report {
            action:
                Some(ReportAction::Edit { data_dir, .. } | ReportAction::Retract { data_dir, .. }),
            ..
        } => crate::launch::hand_over_command(data_dir),
        _ => {}
    }
    logging::run_command(Some(2), run(cli), |e| {
        if let Some(crate::AgentError::Restart(version)) = e.downcast_ref::<crate::AgentError>() {
            tracing::info!(%version, "restarting into another version");
            return std::process::ExitCode::from(crate::launch::EXIT_RESTART);
        }
        pasopati_common::errln!("error: {}", error_text(e.as_ref()));
        if let Some(step) = next_step(e) {
            pasopati_common::errln!("{step}");
        }
        if needs_a_person(e) {
            std::process::ExitCode::from(EXIT_CONFIG)
        } else {
            std::process::ExitCode::FAILURE
        }
    })
}

/// The operator's next step after a failure, as the command to run, or `None` when the error
/// says all there is. The library's errors say what is wrong; which command puts it right is
/// this command line's to say.
fn next_step(e: &anyhow::Error) -> Option<String> {
    use crate::config::ConfigError;
    use crate::outbox::OutboxError;
    use crate::AgentError;
    use pasopati_common::token::TokenError;
    let enroll = |dir: &str| format!("`pasopati-agent enroll --data-dir {dir} --token <TOKEN>`");
    let config_step = |c: &ConfigError| {
        match c {
        ConfigError::NotEnrolled { dir, .. } => Some(format!("Run {} first.", enroll(dir))),
        ConfigError::NotEnrolledYet { dir, .. } => Some(format!(
            "Run {} first, with the token from the media center, then start the agent again.",
            enroll(dir)
        )),
        ConfigError::CollectorDir { .. } => Some(
            "`pasopati-agent enroll` writes agent.toml there; for the collector use `pasopati-collector`.".into(),
        ),
        ConfigError::File(_) => None,
    }
    };
    let outbox_step = |o: &OutboxError| {
        match o {
        OutboxError::Locked { .. } => {
            Some("Is `pasopati-agent run` running for this data directory?".into())
        }
        OutboxError::Damaged { .. } => Some(
            "Start the agent daemon (`pasopati-agent run`): it keeps the damaged file aside and starts a fresh outbox.".into(),
        ),
        _ => None,
    }
    };
    let token_step = |t: &TokenError| match t {
        TokenError::Prefix => {
            Some("Copy the whole last line printed by `pasopati-collector site add`.".into())
        }
        _ => None,
    };
    e.chain().find_map(|cause| {
        if let Some(a) = cause.downcast_ref::<AgentError>() {
            return match a {
                AgentError::Config(c) => config_step(c),
                AgentError::Outbox(o) => outbox_step(o),
                AgentError::Token(t) => token_step(t),
                AgentError::AlreadyEnrolled { .. } => Some(
                    "Pass --force to replace its certificate (queued reports are kept).".into(),
                ),
                AgentError::AlreadyRunning(_) => Some(
                    "Stop it first (`systemctl stop pasopati-agent`), or use the CLI commands, which talk to it.".into(),
                ),
                AgentError::ForeignSocket { .. } => Some(
                    "Pass the agent's data directory, where `pasopati-agent enroll` wrote agent.toml.".into(),
                ),
                AgentError::CertificateExpired { dir, .. } => Some(expired_step(dir)),
                _ => None,
            };
        }
        cause
            .downcast_ref::<ConfigError>()
            .and_then(&config_step)
            .or_else(|| cause.downcast_ref::<OutboxError>().and_then(&outbox_step))
            .or_else(|| cause.downcast_ref::<TokenError>().and_then(&token_step))
    })
}

/// What to do about an expired site certificate: a new token, then enrolling again.
fn expired_step(dir: &str) -> String {
    format!("Ask the media center for a new token (`pasopati-collector site token --id <SITE>`), then run `pasopati-agent enroll --data-dir {dir} --force --token <TOKEN>`.")
}

/// The exit status of a failure no restart can cure (not enrolled, a wrong data directory, an
/// invalid agent.toml): EX_CONFIG from sysexits.h. The systemd unit does not restart on it
/// (`RestartPreventExitStatus=78`).
pub const EXIT_CONFIG: u8 = 78;

fn needs_a_person(e: &anyhow::Error) -> bool {
    e.downcast_ref::<crate::config::ConfigError>().is_some()
        || matches!(
            e.downcast_ref::<crate::AgentError>(),
            Some(crate::AgentError::Config(_) | crate::AgentError::ForeignSocket { .. })
        )
}

/// The body given on the command line: the text itself, `-` for standard input, or the file
/// of `--body-file`.
fn read_body(body: Option<String>, body_file: Option<PathBuf>) -> anyhow::Result<Option<String>> {
    match (body, body_file) {
        (Some(b), _) if b == "-" => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the body from standard input (it must be UTF-8 text)")?;
            Ok(Some(text))
        }
        (Some(b), _) => Ok(Some(b)),
        (None, Some(path)) => {
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading --body-file {}", path.display()))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                anyhow::anyhow!(
                    "--body-file {} is not UTF-8 text; save it as UTF-8 (in Notepad: Save As, Encoding UTF-8)",
                    path.display()
                )
            })?;
            Ok(Some(text.trim_start_matches('\u{feff}').to_owned()))
        }
        (None, None) => Ok(None),
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
                "enrolled as site {site}; start the agent with: sudo systemctl enable --now pasopati-agent (installed package; `systemctl restart` if it was already enabled), or pasopati-agent run --data-dir {}",
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
                    body_file,
                    priority,
                    occurred_at,
                }),
            ..
        } => {
            let body = read_body(body, body_file)?;
            let changes = Revision {
                category,
                title,
                body,
                priority,
                occurred_at: parse_time(&data_dir, occurred_at)?,
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
            body,
            body_file,
            priority,
            occurred_at,
            attach,
        } => {
            let Some(body) = read_body(body, body_file)? else {
                bail!("report needs --body TEXT, --body - (standard input) or --body-file PATH");
            };
            let draft = ReportDraft {
                category,
                title,
                body,
                priority,
                occurred_at: parse_time(&data_dir, occurred_at)?,
            };
            let id = crate::file_report_with(&data_dir, draft, &attach).await?;
            pasopati_common::outln!("{id}");
        }
        Command::Report { .. } => bail!(
            "report needs --data-dir, --category, --title and --body (or --body-file PATH, or --body - for standard input)"
        ),
        Command::Status { data_dir, json } => {
            let s = crate::status(&data_dir).await?;
            if json {
                pasopati_common::outln!("{}", serde_json::to_string(&s)?);
            } else {
                let zone = localtime::Zone::parse(&s.time_zone).unwrap_or_default();
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
                    shown(s.oldest_unsent_at.as_deref(), zone, "-")
                );
                pasopati_common::outln!(
                    "acked seq:        {} (epoch {}, next seq {})",
                    s.acked_seq,
                    s.epoch,
                    s.next_seq
                );
                pasopati_common::outln!(
                    "last sync:        {}",
                    shown(s.last_sync_at.as_deref(), zone, "never")
                );
                if let Some(w) = &s.web_form {
                    pasopati_common::outln!("web form:         {w}");
                }
                if let Some(problem) = &s.web_form_error {
                    pasopati_common::outln!("web form:         {problem}");
                }
                pasopati_common::outln!(
                    "not stored:       {} report revision(s) refused or quarantined by the center",
                    s.center_verdicts
                );
                for v in &s.latest_verdicts {
                    pasopati_common::outln!(
                        "  {} {} rev {} \"{}\" ({}): {}",
                        shown(Some(&v.at), zone, "-"),
                        v.verdict,
                        v.revision,
                        v.title,
                        v.id,
                        v.reason
                    );
                }
                if s.center_verdicts > s.latest_verdicts.len() as u64 {
                    pasopati_common::outln!("  (latest {} shown; `status --json` for details)", s.latest_verdicts.len());
                }
                for name in &s.inbox_ignored {
                    pasopati_common::outln!(
                        "inbox:            {name} is not read: {}",
                        crate::inbox::IGNORED_HINT
                    );
                }
                pasopati_common::outln!("agent version:    {}", s.agent_version);
                if s.center_settings > 0 || s.center_settings_error.is_some() {
                    pasopati_common::outln!(
                        "center settings:  version {}{}",
                        s.center_settings,
                        s.center_settings_error
                            .as_deref()
                            .map(|e| format!(" (the last offered were refused: {e})"))
                            .unwrap_or_default()
                    );
                }
                if s.update != "idle" {
                    pasopati_common::outln!("update:           {}", s.update);
                }
                pasopati_common::outln!("times:            {zone} (UTC{:+})", zone.offset_hours());
                if let Some(e) = &s.last_error {
                    pasopati_common::outln!("last error:       {e}");
                }
                if s.sync_state == "expired" {
                    let dir = data_dir.display().to_string();
                    pasopati_common::outln!("next step:        {}", expired_step(&dir));
                }
            }
        }
    }
    Ok(())
}

/// `--occurred-at`: RFC 3339 with an offset, or a local time in the site's zone.
fn parse_time(
    data_dir: &std::path::Path,
    text: Option<String>,
) -> anyhow::Result<Option<Timestamp>> {
    let Some(text) = text else {
        return Ok(None);
    };
    if let Ok(t) = Timestamp::parse_rfc3339(&text) {
        return Ok(Some(t));
    }
    let zone = crate::config::AgentConfig::load(data_dir)
        .map(|c| c.zone())
        .unwrap_or_default();
    match localtime::parse_local(&text, zone) {
        Some(t) => Ok(Some(t)),
        None => bail!(
            "--occurred-at `{text}` is not a time: write RFC 3339 (2026-11-27T09:30:00+07:00), or 2026-11-27 09:30 for local time ({zone})"
        ),
    }
}

/// A time from `status` (RFC 3339 with offset) as people read it, in the site's zone.
fn shown(rfc3339: Option<&str>, zone: localtime::Zone, none: &str) -> String {
    match rfc3339.map(Timestamp::parse_rfc3339) {
        Some(Ok(t)) => localtime::format_local(t, zone),
        Some(Err(_)) => rfc3339.unwrap_or(none).to_owned(),
        None => none.to_owned(),
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    pasopati_common::control::shutdown_signal().await;
    shutdown.cancel();
}
