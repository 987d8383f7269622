//! The `pasopati-collector` command line: parses arguments, sets up logging, and calls the library.
//! It lives in the library so the binary (and the test suite's copy of it) is one line.

use crate::admin::SiteAdd;
use crate::control::{CollectorRequest, CollectorResponse};
use crate::{BindOptions, Collector, InitOptions};
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use pasopati_common::{HumanDuration, SiteId, SiteType, Timestamp};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

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
    Init {
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
    },
    /// Analyse media items (and site reports) from files: duplicates, stories, UPT tags,
    /// sentiment, trends, spikes, coverage. Needs no data directory.
    Analyze {
        /// Media items, one JSON object per line: id, url, source, title, text, published_at.
        #[arg(long)]
        media: PathBuf,
        /// Site reports, one JSON object per line: id, site_id, category, title, body,
        /// occurred_at.
        #[arg(long)]
        reports: Option<PathBuf>,
        /// The UPT gazetteer (default: the shipped config/upt.csv).
        #[arg(long)]
        gazetteer: Option<PathBuf>,
        /// Where to write the result (one JSON object).
        #[arg(long)]
        out: PathBuf,
        /// The coverage period, in days.
        #[arg(long, default_value_t = 30)]
        coverage_days: i64,
        /// Apply the light stemmer (particles and possessives) before comparing texts.
        #[arg(long)]
        stem: bool,
        /// How far apart in time two pieces of one story may be, in hours.
        #[arg(long, default_value_t = 72)]
        window_hours: i64,
        /// News spikes: a day against this many days before it.
        #[arg(long, default_value_t = 14)]
        news_baseline_days: i64,
        /// Social spikes: an hour against this many hours before it.
        #[arg(long, default_value_t = 12)]
        social_baseline_hours: i64,
    },
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
    /// Manage sites.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
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
        action: Option<QuarantineAction>,
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
        command: MediaCommand,
    },
    /// The stories of the live analysis (items, reports, suggested reports, figure conflicts),
    /// one JSON object per line.
    Stories {
        #[arg(long)]
        data_dir: PathBuf,
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
        command: ClaimCommand,
    },
    /// Dashboard users: add (password from standard input), list, disable.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API tokens for the dashboard's API and feeds.
    ApiToken {
        #[command(subcommand)]
        command: ApiTokenCommand,
    },
    /// The claims register as ClaimReview JSON, one claim per line.
    Claims {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// The hash-chained log of admin actions.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum MediaCommand {
    /// Store and analyse the items of a file: JSONL (`id,url,source,title,text,published_at`)
    /// or an RSS/Atom feed. Bad lines are reported by number; the rest is imported. Importing
    /// the same item id again is skipped.
    Import {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        file: PathBuf,
    },
    /// Stored media items (identity data masked) with where the analysis placed them.
    List {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// From this arrival number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user. The password (at least 12 characters) is read from standard input.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        /// admin (fleet, users, sites), analyst (everything editorial) or viewer (read only).
        #[arg(long)]
        role: String,
        /// Read the password from standard input (the only way; it keeps it out of `ps`).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// List users (JSON lines).
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Disable a user; their sessions and API tokens stop working at once.
    Disable {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
    },
    /// Set a user's new password, read from standard input (at least 12 characters).
    Passwd {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's role: admin, analyst or viewer.
    Role {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        #[arg(long)]
        role: String,
    },
}

#[derive(Subcommand)]
enum QuarantineAction {
    /// Move a quarantined report into the reports, after reading it and finding no identity
    /// data (the guard was wrong). Audited with the reason.
    Release {
        #[arg(long)]
        data_dir: PathBuf,
        /// The number `quarantine` shows.
        #[arg(long)]
        number: u64,
        #[arg(long)]
        reason: String,
    },
    /// Erase a quarantined report's text for good (its position stays, so a resend from the
    /// site is recognised and never stored). Audited with the reason.
    Purge {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        number: u64,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
enum ApiTokenCommand {
    /// Create a bearer token acting as a user; printed once, stored as its SHA-256. Its id
    /// and expiry go to standard error.
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        username: String,
        /// How long the token works (`90d`, `12h`); after that it is refused.
        #[arg(long, default_value = "90d")]
        expires: HumanDuration,
    },
    /// List API tokens (JSON lines: id, user, creation, expiry), never the tokens themselves.
    List {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Revoke one API token by its id (from `api-token list`); it stops working at once.
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        /// The token's id.
        id: String,
    },
}

#[derive(Subcommand)]
enum ClaimCommand {
    /// Record a claim as it appeared; it starts as `belum_terverifikasi`. Prints its number.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        /// The claim, quoted as it appeared.
        #[arg(long)]
        claim: String,
        #[arg(long, default_value = "")]
        url: String,
        #[arg(long, default_value = "")]
        source: String,
        /// When it appeared, RFC 3339 (default: now).
        #[arg(long)]
        appeared_at: Option<String>,
        /// The imported media item it comes from.
        #[arg(long)]
        item: Option<String>,
    },
    /// Record a verdict: benar, salah, menyesatkan or belum_terverifikasi, with evidence.
    Verdict {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: u64,
        #[arg(long)]
        verdict: String,
        /// The official figure (e.g. `50 WBP`), with its source and as-of time.
        #[arg(long, requires_all = ["figure_source", "as_of"])]
        official_figure: Option<String>,
        #[arg(long)]
        figure_source: Option<String>,
        /// RFC 3339.
        #[arg(long)]
        as_of: Option<String>,
        /// A site report supporting the verdict; repeatable.
        #[arg(long = "report")]
        reports: Vec<String>,
        #[arg(long, default_value = "")]
        evidence: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the chain; exit non-zero naming the first entry that was changed, removed or moved.
    Verify {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Print the log, oldest first.
    Show {
        #[arg(long)]
        data_dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Register a site; prints its one-time enrollment token as the last line.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
        #[arg(long)]
        name: String,
        #[arg(long = "type")]
        site_type: SiteType,
        #[arg(long)]
        kanwil: String,
        /// How long the token is valid, e.g. 72h, 7d, 30m (default: token_ttl of the config).
        #[arg(long)]
        ttl: Option<HumanDuration>,
    },
    /// Mint a fresh one-time enrollment token for a registered site (printed as the last line).
    Token {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
        /// How long the token is valid, e.g. 72h, 7d, 30m (default: token_ttl of the config).
        #[arg(long)]
        ttl: Option<HumanDuration>,
    },
    /// Revoke a site: its live connection is closed and it cannot connect again.
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
    },
    /// Let a revoked site back in: it keeps its reports and history, and gets a new one-time
    /// token. At the site, `pasopati-agent enroll --force --token -` keeps the outbox, so the
    /// reports queued while it was revoked are sent.
    Reinstate {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
        /// Why the site may come back (written to the audit log).
        #[arg(long)]
        reason: String,
        /// How long the new token is valid (default: `token_ttl`).
        #[arg(long)]
        ttl: Option<HumanDuration>,
    },
    /// Change a site's name, and its Kanwil with --kanwil.
    Rename {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
        #[arg(long)]
        name: String,
        #[arg(long)]
        kanwil: Option<String>,
    },
    /// Remove a site registered by mistake (only one that never sent a report).
    Remove {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        id: SiteId,
    },
    /// List sites.
    List {
        #[arg(long)]
        data_dir: PathBuf,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command line with the process's arguments.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    pasopati_common::logging::init_logging(pasopati_common::logging::LogConfig::DAEMON);
    pasopati_common::logging::run_command(None, run(cli), crate::next_step::report_failure)
}

/// A time from the store (RFC 3339) as people read it: local time with its zone (WIB for the
/// center's own records).
fn people_time(rfc3339: &str) -> String {
    pasopati_common::localtime::format_local_text(rfc3339, pasopati_common::localtime::Zone::Wib)
}

/// The single answer of a request that has one.
fn single(mut responses: Vec<CollectorResponse>) -> anyhow::Result<CollectorResponse> {
    match responses.len() {
        1 => Ok(responses.remove(0)),
        _ => Err(anyhow::anyhow!("unexpected answer from the collector")),
    }
}

fn print_json_lines(responses: Vec<CollectorResponse>) -> anyhow::Result<()> {
    for r in responses {
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

fn failed(response: CollectorResponse) -> anyhow::Error {
    match response {
        CollectorResponse::Failed(m) => anyhow::anyhow!(m),
        _ => anyhow::anyhow!("unexpected answer from the collector"),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            quic_listen,
            http_listen,
            public_addr,
        } => {
            let config = crate::init(
                &data_dir,
                InitOptions {
                    quic_listen,
                    http_listen,
                    public_addr,
                },
            )?;
            pasopati_common::outln!("collector initialised in {}", data_dir.display());
            let loopback = config
                .public_addr
                .rsplit_once(':')
                .is_some_and(|(host, _)| {
                    matches!(
                        host.trim_matches(['[', ']']),
                        "127.0.0.1" | "localhost" | "::1"
                    )
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
        }
        Command::Analyze {
            media,
            reports,
            gazetteer,
            out,
            coverage_days,
            stem,
            window_hours,
            news_baseline_days,
            social_baseline_hours,
        } => {
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))
            };
            let media_text = read(&media)?;
            let reports_text = reports.as_ref().map(read).transpose()?;
            let gazetteer = match &gazetteer {
                Some(path) => pasopati_analysis::gazetteer::Gazetteer::from_csv(&read(path)?)
                    .with_context(|| format!("{}", path.display()))?,
                None => pasopati_analysis::gazetteer::Gazetteer::builtin().clone(),
            };
            let media_name = media.display().to_string();
            let reports_name = reports
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            let result = pasopati_analysis::batch::analyze(pasopati_analysis::batch::BatchInput {
                media_name: &media_name,
                media: &media_text,
                reports_name: &reports_name,
                reports: reports_text.as_deref(),
                gazetteer,
                engine: pasopati_analysis::EngineConfig {
                    normalize: pasopati_analysis::text::NormalizeOptions { stem },
                    window_ms: window_hours.max(1) * 3_600_000,
                    ..Default::default()
                },
                spikes: pasopati_analysis::insight::SpikeConfig {
                    news_baseline_days: news_baseline_days.max(1),
                    social_baseline_hours: social_baseline_hours.max(1),
                    ..Default::default()
                },
                coverage_days,
            });
            let json = serde_json::to_vec_pretty(&result)?;
            std::fs::write(&out, json)
                .with_context(|| format!("cannot write {}", out.display()))?;
            let s = &result.summary;
            pasopati_common::outln!(
                "items={} reports={} stories={} duplicates={} alerts={} errors={} -> {}",
                s.items,
                s.reports,
                s.stories,
                s.duplicates,
                result.alerts.len(),
                s.errors,
                out.display()
            );
            for e in &result.errors {
                pasopati_common::errln!("{}:{}: {}", e.file, e.line, e.reason);
            }
        }
        Command::Validate { config } => {
            crate::config::CollectorConfig::load_file(&config)?;
            pasopati_common::outln!("{}: configuration is valid", config.display());
        }
        Command::Run { data_dir } => {
            let server = Collector::open_for_daemon(&data_dir)?.bind(BindOptions::default())?;
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            server.run(shutdown).await?;
        }
        Command::Site { command } => match command {
            SiteCommand::Add {
                data_dir,
                id,
                name,
                site_type,
                kanwil,
                ttl,
            } => {
                let request = CollectorRequest::SiteAdd(SiteAdd {
                    id: id.clone(),
                    name,
                    site_type,
                    kanwil,
                    ttl,
                });
                match single(crate::call(&data_dir, request).await?)? {
                    CollectorResponse::Token(token) => {
                        pasopati_common::outln!("site {id} registered.");
                        pasopati_common::outln!("Give the site operator this one-time enrollment token (valid for the token lifetime, 72h unless --ttl or token_ttl says otherwise);");
                        pasopati_common::outln!(
                            "they run: pasopati-agent enroll --data-dir <DIR> --token <TOKEN>"
                        );
                        pasopati_common::outln!("{token}");
                    }
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::Token { data_dir, id, ttl } => {
                let request = CollectorRequest::SiteToken {
                    site: id.clone(),
                    ttl,
                };
                match single(crate::call(&data_dir, request).await?)? {
                    CollectorResponse::Token(token) => {
                        pasopati_common::outln!("new enrollment token for site {id}; once used, the site's previous certificate stops working:");
                        pasopati_common::outln!("{token}");
                    }
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::Revoke { data_dir, id } => {
                match single(
                    crate::call(&data_dir, CollectorRequest::SiteRevoke(id.clone())).await?,
                )? {
                    CollectorResponse::Revoked { changed, closed } => {
                        if changed {
                            pasopati_common::outln!("site {id} revoked; {closed} live connection(s) closed. Its reports stay queued at the site. To let it back in later: `pasopati-collector site reinstate --id {id} --reason …`.");
                        } else {
                            pasopati_common::outln!("site {id} was already revoked");
                        }
                    }
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::Reinstate {
                data_dir,
                id,
                reason,
                ttl,
            } => {
                let request = CollectorRequest::SiteReinstate {
                    site: id.clone(),
                    reason,
                    ttl,
                };
                match single(crate::call(&data_dir, request).await?)? {
                    CollectorResponse::Token(token) => {
                        pasopati_common::outln!(
                            "site {id} may enroll again; its reports and history are kept."
                        );
                        pasopati_common::outln!("At the site, re-enroll keeping the outbox (queued reports are then sent):");
                        pasopati_common::outln!(
                            "  pasopati-agent enroll --force --data-dir <DIR> --token -"
                        );
                        pasopati_common::outln!("{token}");
                    }
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::Rename {
                data_dir,
                id,
                name,
                kanwil,
            } => {
                let request = CollectorRequest::SiteRename {
                    site: id.clone(),
                    name,
                    kanwil,
                };
                match single(crate::call(&data_dir, request).await?)? {
                    CollectorResponse::Done => pasopati_common::outln!("site {id} renamed"),
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::Remove { data_dir, id } => {
                match single(
                    crate::call(&data_dir, CollectorRequest::SiteRemove(id.clone())).await?,
                )? {
                    CollectorResponse::Done => pasopati_common::outln!("site {id} removed"),
                    other => return Err(failed(other)),
                }
            }
            SiteCommand::List { data_dir, json } => {
                match single(crate::call(&data_dir, CollectorRequest::SiteList).await?)? {
                    CollectorResponse::Sites(sites) => {
                        if json {
                            for s in sites {
                                pasopati_common::outln!("{}", serde_json::to_string(&s)?);
                            }
                        } else {
                            pasopati_common::outln!(
                                "{:<26} {:<9} {:>7} {:>7}  {:<20} {:>8} {:>8}  {:<18} NAME",
                                "ID",
                                "STATE",
                                "REPORTS",
                                "BACKLOG",
                                "LAST SYNC",
                                "DISK GiB",
                                "CLOCK s",
                                "KANWIL"
                            );
                            let dash = || "-".to_owned();
                            for s in sites {
                                pasopati_common::outln!(
                                    "{:<26} {:<9} {:>7} {:>7}  {:<20} {:>8} {:>8}  {:<18} {}",
                                    s.id,
                                    s.state,
                                    s.reports,
                                    s.backlog.map_or_else(dash, |b| b.to_string()),
                                    s.last_sync_at.as_deref().map_or_else(dash, |t| {
                                        pasopati_common::localtime::format_local_text(
                                            t,
                                            pasopati_common::localtime::Zone::of_kanwil(&s.kanwil),
                                        )
                                    }),
                                    s.disk_free_bytes.map_or_else(dash, |b| format!(
                                        "{:.1}",
                                        b as f64 / (1u64 << 30) as f64
                                    )),
                                    s.clock_offset_ms.map_or_else(dash, |ms| format!(
                                        "{:+.0}",
                                        ms as f64 / 1000.0
                                    )),
                                    s.kanwil,
                                    s.name
                                );
                            }
                        }
                    }
                    other => return Err(failed(other)),
                }
            }
        },
        Command::Reports {
            data_dir,
            json,
            site,
            limit,
        } => {
            let responses =
                crate::call(&data_dir, CollectorRequest::Reports { site, limit }).await?;
            let mut out = pasopati_common::terminal::Terminal::stdout();
            for response in responses {
                let CollectorResponse::Reports(reports) = response else {
                    return Err(failed(response));
                };
                for r in reports {
                    if json {
                        writeln!(out, "{}", serde_json::to_string(&r)?)?;
                    } else {
                        writeln!(
                            out,
                            "{} {} {}#{} [{}{}] {}",
                            people_time(&r.received_at),
                            r.id,
                            r.site_id,
                            r.seq,
                            r.category,
                            if r.priority == "urgent" {
                                ", urgent"
                            } else {
                                ""
                            },
                            r.title
                        )?;
                    }
                }
            }
            out.flush()?;
        }
        Command::Gaps { data_dir, json } => {
            match single(crate::call(&data_dir, CollectorRequest::Gaps).await?)? {
                CollectorResponse::Gaps(gaps) => {
                    if !json && gaps.is_empty() {
                        pasopati_common::outln!("no gaps recorded");
                    }
                    for g in gaps {
                        if json {
                            pasopati_common::outln!("{}", serde_json::to_string(&g)?);
                        } else {
                            pasopati_common::outln!(
                                "{} epoch {} seqs {}..={} {} (seen {} times, last {})",
                                g.site_id,
                                g.epoch,
                                g.from_seq,
                                g.to_seq,
                                g.kind,
                                g.times,
                                g.last_seen
                            );
                        }
                    }
                }
                other => return Err(failed(other)),
            }
        }
        Command::Revisions { data_dir, id, json } => {
            for response in crate::call(&data_dir, CollectorRequest::Revisions(id)).await? {
                let CollectorResponse::Reports(revisions) = response else {
                    return Err(failed(response));
                };
                for r in revisions {
                    if json {
                        pasopati_common::outln!("{}", serde_json::to_string(&r)?);
                    } else {
                        let retracted = r
                            .retraction
                            .as_deref()
                            .map(|why| format!(" RETRACTED: {why}"))
                            .unwrap_or_default();
                        pasopati_common::outln!(
                            "revision {} filed {} received {} [{}] {}{retracted}",
                            r.revision,
                            people_time(&r.filed_at),
                            people_time(&r.received_at),
                            r.category,
                            r.title
                        );
                    }
                }
            }
        }
        Command::Quarantine {
            action: Some(action),
            ..
        } => {
            let (data_dir, request, done) = match action {
                QuarantineAction::Release {
                    data_dir,
                    number,
                    reason,
                } => (
                    data_dir,
                    CollectorRequest::QuarantineRelease { number, reason },
                    format!("quarantined report {number} released into the reports"),
                ),
                QuarantineAction::Purge {
                    data_dir,
                    number,
                    reason,
                } => (
                    data_dir,
                    CollectorRequest::QuarantinePurge { number, reason },
                    format!("quarantined report {number} purged"),
                ),
            };
            match single(crate::call(&data_dir, request).await?)? {
                CollectorResponse::Done => pasopati_common::outln!("{done}"),
                other => return Err(failed(other)),
            }
        }
        Command::Quarantine {
            action: None,
            data_dir,
            json,
        } => {
            let data_dir = data_dir.context("--data-dir is required")?;
            match single(crate::call(&data_dir, CollectorRequest::Quarantine).await?)? {
                CollectorResponse::Quarantine(items) => {
                    if !json && items.is_empty() {
                        pasopati_common::outln!("no report in quarantine");
                    }
                    for q in items {
                        if json {
                            pasopati_common::outln!("{}", serde_json::to_string(&q)?);
                        } else {
                            let what: Vec<String> =
                                q.findings.iter().map(|f| f.to_string()).collect();
                            pasopati_common::outln!(
                                "#{} {} {} {}#{} {}",
                                q.number,
                                people_time(&q.received_at),
                                q.id,
                                q.site_id,
                                q.seq,
                                what.join("; ")
                            );
                        }
                    }
                }
                other => return Err(failed(other)),
            }
        }
        Command::Attachments { data_dir, json } => {
            match single(crate::call(&data_dir, CollectorRequest::Attachments).await?)? {
                CollectorResponse::Attachments(items) => {
                    if !json && items.is_empty() {
                        pasopati_common::outln!("no attachment stored");
                    }
                    for a in items {
                        if json {
                            pasopati_common::outln!("{}", serde_json::to_string(&a)?);
                        } else {
                            pasopati_common::outln!(
                                "{} {} {} {} bytes from {} {}",
                                a.stored_at
                                    .as_deref()
                                    .map_or_else(|| "-".to_owned(), people_time),
                                a.hash,
                                a.media_type,
                                a.size,
                                a.site_id.as_deref().unwrap_or("-"),
                                a.name
                            );
                        }
                    }
                }
                other => return Err(failed(other)),
            }
        }
        Command::Media {
            command: MediaCommand::Import { data_dir, file },
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let name = file.display().to_string();
            let looks_xml = text.trim_start().starts_with('<');
            let (items, errors) = if looks_xml {
                pasopati_analysis::feed::read_feed(&name, &text)
            } else {
                pasopati_analysis::media::read_media_jsonl(&name, &text)
            };
            for e in &errors {
                pasopati_common::errln!("{}:{}: {}", e.file, e.line, e.reason);
            }
            let mut total = crate::newsroom::ImportOutcome::default();
            for piece in items.chunks(200) {
                match single(
                    crate::call(&data_dir, CollectorRequest::MediaImport(piece.to_vec())).await?,
                )? {
                    CollectorResponse::MediaImported(o) => {
                        total.added += o.added;
                        total.known += o.known;
                        total.duplicates += o.duplicates;
                    }
                    other => return Err(failed(other)),
                }
            }
            pasopati_common::outln!(
                "imported={} already_stored={} duplicates={} errors={}",
                total.added,
                total.known,
                total.duplicates,
                errors.len()
            );
        }
        Command::Media {
            command:
                MediaCommand::List {
                    data_dir,
                    limit,
                    after,
                },
        } => print_json_lines(
            crate::call(&data_dir, CollectorRequest::Media { after, limit }).await?,
        )?,
        Command::Stories { data_dir } => {
            print_json_lines(crate::call(&data_dir, CollectorRequest::Stories).await?)?
        }
        Command::Insights {
            data_dir,
            coverage_days,
        } => print_json_lines(
            crate::call(&data_dir, CollectorRequest::Insights { coverage_days }).await?,
        )?,
        Command::User {
            command:
                UserCommand::Add {
                    data_dir,
                    username,
                    role,
                    password_stdin: _,
                },
        } => {
            let role: crate::store::Role = role.parse().map_err(anyhow::Error::msg)?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let user = crate::web::auth::new_user(&username, role, password)?;
            match single(crate::call(&data_dir, CollectorRequest::UserAdd(user)).await?)? {
                CollectorResponse::Done => {
                    pasopati_common::outln!("user {username} added ({})", role.as_str())
                }
                other => return Err(failed(other)),
            }
        }
        Command::User {
            command:
                UserCommand::Passwd {
                    data_dir,
                    username,
                    password_stdin: _,
                },
        } => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\n', '\r']);
            let hashed =
                crate::web::auth::new_user(&username, crate::store::Role::Viewer, password)?;
            let request = CollectorRequest::UserUpdate {
                username: username.clone(),
                password_hash: Some(hashed.password_hash),
                role: None,
            };
            match single(crate::call(&data_dir, request).await?)? {
                CollectorResponse::Done => {
                    pasopati_common::outln!("password of {username} changed")
                }
                other => return Err(failed(other)),
            }
        }
        Command::User {
            command:
                UserCommand::Role {
                    data_dir,
                    username,
                    role,
                },
        } => {
            let role: crate::store::Role = role.parse().map_err(anyhow::Error::msg)?;
            let request = CollectorRequest::UserUpdate {
                username: username.clone(),
                password_hash: None,
                role: Some(role),
            };
            match single(crate::call(&data_dir, request).await?)? {
                CollectorResponse::Done => {
                    pasopati_common::outln!("{username} is now {}", role.as_str())
                }
                other => return Err(failed(other)),
            }
        }
        Command::User {
            command: UserCommand::List { data_dir },
        } => print_json_lines(crate::call(&data_dir, CollectorRequest::UserList).await?)?,
        Command::User {
            command: UserCommand::Disable { data_dir, username },
        } => match single(
            crate::call(&data_dir, CollectorRequest::UserDisable(username.clone())).await?,
        )? {
            CollectorResponse::Done => pasopati_common::outln!("user {username} disabled"),
            other => return Err(failed(other)),
        },
        Command::ApiToken {
            command:
                ApiTokenCommand::Create {
                    data_dir,
                    username,
                    expires,
                },
        } => {
            if expires.0.is_zero() {
                anyhow::bail!("--expires must be longer than zero");
            }
            let (token, hash) = crate::web::auth::new_api_token();
            let expires_at = Timestamp::now().0.saturating_add(expires.as_millis_i64());
            let request = CollectorRequest::ApiTokenAdd {
                username,
                hash,
                expires_at,
            };
            match single(crate::call(&data_dir, request).await?)? {
                CollectorResponse::Done => {
                    pasopati_common::outln!("{token}");
                    pasopati_common::errln!(
                        "token id {} valid until {}",
                        crate::store::api_token_id(&hash),
                        people_time(&Timestamp(expires_at).to_rfc3339())
                    );
                }
                other => return Err(failed(other)),
            }
        }
        Command::ApiToken {
            command: ApiTokenCommand::List { data_dir },
        } => print_json_lines(crate::call(&data_dir, CollectorRequest::ApiTokenList).await?)?,
        Command::ApiToken {
            command: ApiTokenCommand::Revoke { data_dir, id },
        } => match single(
            crate::call(&data_dir, CollectorRequest::ApiTokenRevoke(id.clone())).await?,
        )? {
            CollectorResponse::Done => pasopati_common::outln!("API token {id} revoked"),
            other => return Err(failed(other)),
        },
        Command::Claims { data_dir } => {
            print_json_lines(crate::call(&data_dir, CollectorRequest::Claims).await?)?
        }
        Command::Claim {
            command:
                ClaimCommand::Add {
                    data_dir,
                    claim,
                    url,
                    source,
                    appeared_at,
                    item,
                },
        } => {
            let appeared_at = match appeared_at {
                Some(t) => Timestamp::parse_rfc3339(&t).context("--appeared-at")?.0,
                None => Timestamp::now().0,
            };
            let request = CollectorRequest::ClaimAdd {
                claim,
                url,
                source,
                appeared_at,
                item,
            };
            match single(crate::call(&data_dir, request).await?)? {
                CollectorResponse::ClaimAdded(n) => pasopati_common::outln!("{n}"),
                other => return Err(failed(other)),
            }
        }
        Command::Claim {
            command:
                ClaimCommand::Verdict {
                    data_dir,
                    id,
                    verdict,
                    official_figure,
                    figure_source,
                    as_of,
                    reports,
                    evidence,
                },
        } => {
            let figure = match (official_figure, figure_source, as_of) {
                (Some(v), Some(s), Some(t)) => {
                    Some((v, s, Timestamp::parse_rfc3339(&t).context("--as-of")?.0))
                }
                _ => None,
            };
            let request = CollectorRequest::ClaimVerdict {
                number: id,
                verdict,
                figure,
                reports,
                evidence,
            };
            print_json_lines(crate::call(&data_dir, request).await?)?;
        }
        Command::Audit { command } => match command {
            AuditCommand::Verify { data_dir } => {
                match single(crate::call(&data_dir, CollectorRequest::AuditVerify).await?)? {
                    CollectorResponse::AuditOk(n) => {
                        pasopati_common::outln!("audit log intact: {n} entries verified")
                    }
                    CollectorResponse::AuditBroken { entry, reason } => {
                        bail!("audit log broken at entry {entry}: {reason}")
                    }
                    other => return Err(failed(other)),
                }
            }
            AuditCommand::Show { data_dir, json } => {
                for response in crate::call(&data_dir, CollectorRequest::AuditShow).await? {
                    let CollectorResponse::Audit(entries) = response else {
                        return Err(failed(response));
                    };
                    for e in entries {
                        if json {
                            pasopati_common::outln!("{}", serde_json::to_string(&e)?);
                        } else {
                            pasopati_common::outln!(
                                "{:>5} {} {:<14} {:<24} {} {}",
                                e.seq,
                                people_time(&e.at),
                                e.action,
                                e.subject,
                                e.actor,
                                e.details
                            );
                        }
                    }
                }
            }
        },
    }
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    pasopati_common::control::shutdown_signal().await;
    shutdown.cancel();
}
