//! `media`: importing media files and listing stored items.

use super::{failed, json_lines};
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum MediaCommand {
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

/// Runs one `media` command.
pub(super) async fn run(command: MediaCommand) -> anyhow::Result<()> {
    match command {
        MediaCommand::Import { data_dir, file } => import(data_dir, file).await,
        MediaCommand::List {
            data_dir,
            limit,
            after,
        } => json_lines(&data_dir, CollectorRequest::Media { after, limit }).await,
    }
}

/// Imports a JSONL or RSS/Atom file in pieces of 200 items; bad lines are named, the rest
/// imported.
async fn import(data_dir: PathBuf, file: PathBuf) -> anyhow::Result<()> {
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
        match super::ask(&data_dir, CollectorRequest::MediaImport(piece.to_vec())).await? {
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
    Ok(())
}
