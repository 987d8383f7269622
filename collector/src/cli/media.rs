//! `media`: importing media files and listing stored items.

use super::{failed, json_lines};
use crate::control::{CollectorRequest, CollectorResponse};
use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum MediaCommand {
    /// Store and analyse the items of a file: JSONL (`id,url,source,title,text,published_at`)
    /// or an RSS/Atom feed, or with `--format` a social media file: an X archive's tweets.js
    /// (`x`), Instagram's posts_1.json (`instagram`), Facebook's your_posts_1.json
    /// (`facebook`), TikTok's user_data_tiktok.json (`tiktok`), a social-listening CSV with a
    /// header (`listening-csv`), or a saved YouTube feed, Mastodon timeline, Bluesky search or
    /// Telegram channel page (`youtube`, `mastodon`, `bluesky`, `telegram`). Bad lines are
    /// reported by number; the rest is imported. Importing the same item id again is skipped
    /// (its engagement is updated).
    Import {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        file: PathBuf,
        /// The file's format; by default JSONL, or RSS/Atom when the file starts with `<`.
        #[arg(long)]
        format: Option<String>,
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
        MediaCommand::Import {
            data_dir,
            file,
            format,
        } => import(data_dir, file, format).await,
        MediaCommand::List {
            data_dir,
            limit,
            after,
        } => json_lines(&data_dir, CollectorRequest::Media { after, limit }).await,
    }
}

/// Imports a media file in pieces of 200 items; bad lines are named, the rest imported.
async fn import(data_dir: PathBuf, file: PathBuf, format: Option<String>) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("cannot read {}", file.display()))?;
    let name = file.display().to_string();
    let (items, errors) = match format.as_deref() {
        None | Some("auto") if text.trim_start().starts_with('<') => {
            pasopati_analysis::feed::read_feed(&name, &text)
        }
        None | Some("auto" | "jsonl") => pasopati_analysis::media::read_media_jsonl(&name, &text),
        Some("rss" | "atom" | "feed") => pasopati_analysis::feed::read_feed(&name, &text),
        Some(other) => {
            let format = pasopati_analysis::social::SocialFormat::parse(other)
                .map_err(|e| anyhow::anyhow!("--format: {e}, or jsonl and feed for news files"))?;
            let read = pasopati_analysis::social::read(format, &name, &text);
            (read.items, read.errors)
        }
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
