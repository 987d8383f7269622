//! `site`: registering, enrolling, revoking, reinstating, renaming, removing and listing sites.

use super::{ask, done, failed, token};
use crate::admin::{SiteAdd, SiteView};
use crate::control::{CollectorRequest, CollectorResponse};
use clap::Subcommand;
use pasopati_common::localtime::{format_local_text, Zone};
use pasopati_common::{HumanDuration, SiteId, SiteType};
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum SiteCommand {
    /// Register a site; prints its one-time enrollment token as the last line.
    Add {
        #[command(flatten)]
        site: SiteArgs,
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
        #[command(flatten)]
        site: SiteArgs,
        /// How long the token is valid, e.g. 72h, 7d, 30m (default: token_ttl of the config).
        #[arg(long)]
        ttl: Option<HumanDuration>,
    },
    /// Revoke a site: its live connection is closed and it cannot connect again.
    Revoke(SiteArgs),
    /// Let a revoked site back in: it keeps its reports and history, and gets a new one-time
    /// token. At the site, `pasopati-agent enroll --force --token -` keeps the outbox, so the
    /// reports queued while it was revoked are sent.
    Reinstate {
        #[command(flatten)]
        site: SiteArgs,
        /// Why the site may come back (written to the audit log).
        #[arg(long)]
        reason: String,
        /// How long the new token is valid (default: `token_ttl`).
        #[arg(long)]
        ttl: Option<HumanDuration>,
    },
    /// Change a site's name, and its Kanwil with --kanwil.
    Rename {
        #[command(flatten)]
        site: SiteArgs,
        #[arg(long)]
        name: String,
        #[arg(long)]
        kanwil: Option<String>,
    },
    /// Remove a site registered by mistake (only one that never sent a report).
    Remove(SiteArgs),
    /// The settings the center wants sites to run (`set`).
    Config {
        #[command(subcommand)]
        command: super::fleet::ConfigCommand,
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

// The site a command acts on, and the collector's data directory.
#[derive(clap::Args)]
pub(super) struct SiteArgs {
    #[arg(long)]
    data_dir: PathBuf,
    #[arg(long)]
    id: SiteId,
}

/// Runs one `site` command.
pub(super) async fn run(command: SiteCommand) -> anyhow::Result<()> {
    match command {
        SiteCommand::Add {
            site: SiteArgs { data_dir, id },
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
            let token = token(&data_dir, request).await?;
            pasopati_common::outln!("site {id} registered.");
            pasopati_common::outln!("Give the site operator this one-time enrollment token (valid for the token lifetime, 72h unless --ttl or token_ttl says otherwise);");
            pasopati_common::outln!(
                "they run: pasopati-agent enroll --data-dir <DIR> --token <TOKEN>"
            );
            pasopati_common::outln!("{token}");
        }
        SiteCommand::Token {
            site: SiteArgs { data_dir, id },
            ttl,
        } => {
            let request = CollectorRequest::SiteToken {
                site: id.clone(),
                ttl,
            };
            let token = token(&data_dir, request).await?;
            pasopati_common::outln!("new enrollment token for site {id}; once used, the site's previous certificate stops working:");
            pasopati_common::outln!("{token}");
        }
        SiteCommand::Revoke(SiteArgs { data_dir, id }) => {
            match ask(&data_dir, CollectorRequest::SiteRevoke(id.clone())).await? {
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
            site: SiteArgs { data_dir, id },
            reason,
            ttl,
        } => {
            let request = CollectorRequest::SiteReinstate {
                site: id.clone(),
                reason,
                ttl,
            };
            let token = token(&data_dir, request).await?;
            pasopati_common::outln!(
                "site {id} may enroll again; its reports and history are kept."
            );
            pasopati_common::outln!(
                "At the site, re-enroll keeping the outbox (queued reports are then sent):"
            );
            pasopati_common::outln!("  pasopati-agent enroll --force --data-dir <DIR> --token -");
            pasopati_common::outln!("{token}");
        }
        SiteCommand::Rename {
            site: SiteArgs { data_dir, id },
            name,
            kanwil,
        } => {
            let request = CollectorRequest::SiteRename {
                site: id.clone(),
                name,
                kanwil,
            };
            done(&data_dir, request).await?;
            pasopati_common::outln!("site {id} renamed");
        }
        SiteCommand::Remove(SiteArgs { data_dir, id }) => {
            done(&data_dir, CollectorRequest::SiteRemove(id.clone())).await?;
            pasopati_common::outln!("site {id} removed");
        }
        SiteCommand::Config { command } => super::fleet::config(command).await?,
        SiteCommand::List { data_dir, json } => {
            match ask(&data_dir, CollectorRequest::SiteList).await? {
                CollectorResponse::Sites(sites) if json => {
                    for s in sites {
                        pasopati_common::outln!("{}", serde_json::to_string(&s)?);
                    }
                }
                CollectorResponse::Sites(sites) => print_site_table(&sites),
                other => return Err(failed(other)),
            }
        }
    }
    Ok(())
}

/// `site list` for people: one row a site, times in the site's zone.
fn print_site_table(sites: &[SiteView]) {
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
                format_local_text(t, Zone::of_kanwil(&s.kanwil))
            }),
            s.disk_free_bytes
                .map_or_else(dash, |b| format!("{:.1}", b as f64 / (1u64 << 30) as f64)),
            s.clock_offset_ms
                .map_or_else(dash, |ms| format!("{:+.0}", ms as f64 / 1000.0)),
            s.kanwil,
            s.name
        );
    }
}
