//! `claim`: the claims register, a claim as it appeared and a verdict with its evidence.

use super::{ask, failed, json_lines};
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::Context;
use clap::Subcommand;
use pasopati_common::Timestamp;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum ClaimCommand {
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

/// Runs one `claim` command.
pub(super) async fn run(command: ClaimCommand) -> anyhow::Result<()> {
    match command {
        ClaimCommand::Add {
            data_dir,
            claim,
            url,
            source,
            appeared_at,
            item,
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
            match ask(&data_dir, request).await? {
                CollectorResponse::ClaimAdded(n) => pasopati_common::outln!("{n}"),
                other => return Err(failed(other)),
            }
            Ok(())
        }
        ClaimCommand::Verdict {
            data_dir,
            id,
            verdict,
            official_figure,
            figure_source,
            as_of,
            reports,
            evidence,
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
            json_lines(&data_dir, request).await
        }
    }
}
