//! Polling news feeds (`[[feeds]]` in collector.toml): each feed is fetched on its schedule,
//! read as RSS or Atom, and its items imported through the [`Newsroom`] (items already stored
//! are skipped by id). A failing feed is retried on its next turn and logged with the reason;
//! it never stops the others or the collector.

use crate::config::FeedConfig;
use crate::newsroom::Newsroom;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The largest feed document read.
const MAX_FEED_BYTES: u64 = 10 * 1024 * 1024;
/// How long one fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// A fetch that failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
}

/// Fetches a feed document (blocking).
pub fn fetch(url: &str) -> Result<String, FeedError> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .http_status_as_error(false)
        .user_agent(concat!("pasopati-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let fetch_error = |e: ureq::Error| FeedError::Fetch {
        url: url.to_owned(),
        message: e.to_string(),
    };
    let mut response = agent.get(url).call().map_err(fetch_error)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(FeedError::Status {
            url: url.to_owned(),
            status,
        });
    }
    response
        .body_mut()
        .with_config()
        .limit(MAX_FEED_BYTES)
        .read_to_string()
        .map_err(fetch_error)
}

/// Polls every feed on its schedule until `shutdown`.
pub async fn poll(feeds: Vec<FeedConfig>, newsroom: Arc<Newsroom>, shutdown: CancellationToken) {
    let mut tasks = tokio::task::JoinSet::new();
    for feed in feeds {
        let newsroom = newsroom.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            loop {
                poll_once(&feed.url, &newsroom).await;
                tokio::select! {
                    _ = tokio::time::sleep(feed.every.0) => {}
                    _ = shutdown.cancelled() => break,
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn poll_once(url: &str, newsroom: &Arc<Newsroom>) {
    let u = url.to_owned();
    let n = newsroom.clone();
    let result = tokio::task::spawn_blocking(move || {
        let text = fetch(&u).map_err(|e| e.to_string())?;
        let (items, errors) = pasopati_analysis::feed::read_feed(&u, &text);
        for e in &errors {
            tracing::warn!(feed = %u, entry = e.line, "feed entry skipped: {}", e.reason);
        }
        n.import(items).map_err(|e| e.to_string())
    })
    .await;
    match result {
        Ok(Ok(o)) => {
            tracing::info!(feed = %url, added = o.added, duplicates = o.duplicates, already_stored = o.known, "feed polled")
        }
        Ok(Err(e)) => {
            tracing::warn!(feed = %url, "feed not polled: {e}; retrying at its next turn")
        }
        Err(e) => tracing::error!(feed = %url, "feed task failed: {e}"),
    }
}
