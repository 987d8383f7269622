//! `audit`: the hash-chained log of admin actions, shown and verified.

use super::{ask, failed, people_time, print_each};
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::bail;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum AuditCommand {
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

/// Runs one `audit` command.
pub(super) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify { data_dir } => {
            match ask(&data_dir, CollectorRequest::AuditVerify).await? {
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
                print_each(entries, json, |e| {
                    format!(
                        "{:>5} {} {:<14} {:<24} {} {}",
                        e.seq,
                        people_time(&e.at),
                        e.action,
                        e.subject,
                        e.actor,
                        e.details
                    )
                })?;
            }
        }
    }
    Ok(())
}
