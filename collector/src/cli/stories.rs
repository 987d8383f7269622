//! `story`: one story with why each item is in it, and an analyst's merges and splits (see
//! `pasopati_analysis::edits`: the engine learns nothing from them).

use super::json_lines;
use crate::control::CollectorRequest;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand)]
pub(super) enum StoryCommand {
    /// One story as JSON: its items and reports, each with why it is in the story.
    Show {
        #[arg(long)]
        data_dir: PathBuf,
        /// The story's id (as `stories` lists it).
        #[arg(long)]
        id: String,
    },
    /// Show every item and report of story `--from` in story `--into`.
    Merge {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        from: String,
        #[arg(long)]
        into: String,
        /// Why (kept with the edit and in the audit log).
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Move items or reports (with their copies) out of a story into a story of their own.
    Split {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        story: String,
        /// An item or report id to move; repeatable.
        #[arg(long = "item", required = true)]
        items: Vec<String>,
        /// The new story's title (default: the story's, marked as split).
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value = "")]
        note: String,
    },
    /// Every merge and split, undone ones included, one JSON object a line.
    Edits {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Undo a merge or split by its number (it stays on record, marked undone).
    Undo {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        edit: u64,
    },
}

/// Runs one `story` command; every answer is JSON lines.
pub(super) async fn run(command: StoryCommand) -> anyhow::Result<()> {
    let (data_dir, request) = match command {
        StoryCommand::Show { data_dir, id } => (data_dir, CollectorRequest::StoryShow(id)),
        StoryCommand::Merge {
            data_dir,
            from,
            into,
            note,
        } => (data_dir, CollectorRequest::StoryMerge { from, into, note }),
        StoryCommand::Split {
            data_dir,
            story,
            items,
            title,
            note,
        } => (
            data_dir,
            CollectorRequest::StorySplit {
                story,
                docs: items,
                title,
                note,
            },
        ),
        StoryCommand::Edits { data_dir } => (data_dir, CollectorRequest::StoryEdits),
        StoryCommand::Undo { data_dir, edit } => (data_dir, CollectorRequest::StoryUndo(edit)),
    };
    json_lines(&data_dir, request).await
}
