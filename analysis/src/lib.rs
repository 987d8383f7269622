//! The media center's analysis: what is happening, where, whether it is true, and what is
//! growing, across site reports and media coverage together.
//!
//! Everything here is pure computation over values; reading feeds and files and storing results
//! is the collector's job. [`engine::Engine`] places items and reports one at a time
//! (duplicates, stories, tags, sentiment); [`insight`] derives trends, spikes, coverage gaps
//! and figure checks from what the engine holds; [`edits`] lays analysts' merges and splits
//! over the engine's stories; [`risk`] scores units and Kanwil, part by part;
//! [`batch`] is the `analyze` command's contract.

pub mod batch;
pub mod chunked;
pub mod edits;
pub mod engine;
pub mod feed;
pub mod figures;
pub mod gazetteer;
pub mod insight;
mod lists;
pub mod media;
pub mod risk;
pub mod sentiment;
pub mod simhash;
pub mod snapshot;
pub mod social;
pub mod text;
pub mod texts;
pub mod topic;
pub mod url;
pub mod vocab;

pub use engine::{Engine, EngineConfig, MediaItem, Placement, SiteReport};
