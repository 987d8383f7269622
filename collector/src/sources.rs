//! Polling sources: the news feeds of `[[feeds]]` (RSS or Atom) and the social sources of
//! `[[social]]` (YouTube channel feeds, Mastodon hashtag and account timelines, Bluesky
//! search, Telegram channel pages). Each source is fetched on its schedule, read by the
//! analysis crate's reader for its kind, and its items imported through the [`Newsroom`]
//! (items already stored are skipped by id; their engagement is updated).
//!
//! Politeness, for every source alike:
//!
//! * Conditional requests: the `ETag` and `Last-Modified` of the last answer are sent back as
//!   `If-None-Match` and `If-Modified-Since` (to the same address only), and `304 Not Modified`
//!   is a success that reads nothing.
//! * Only newer posts: Mastodon is asked with `min_id` (the newest status seen), Bluesky with
//!   `since` (the newest post's index time).
//! * Per host: at least `[polling] per_host_interval` between two requests to one host,
//!   whichever sources they serve (several hashtags on one Mastodon server share it).
//! * Failures back off: after the n-th failure in a row the wait is drawn between `every·2^(n−1)`
//!   and `every·2^n` (exponential backoff with "equal jitter", from the protocol crate's
//!   [`Backoff`], its base twice `every`), at most `[polling] backoff_cap` and never shorter than
//!   `every` or a `Retry-After` the source sent. A success resets it.
//! * Limits: each request has `[polling] timeout` and reads at most `[polling] max_bytes`.
//!
//! Each source's health (last poll, last success, last error and when, failures in a row, items
//! stored today, next poll) and its validators and cursor are kept in the store
//! ([`SourceHealth`]), so they survive a restart: a restarted collector waits for a source's
//! next poll as recorded and backs off from where it stood. A failing source never stops the
//! others or the collector.

use crate::config::{FeedConfig, PollingSettings, SocialConfig, SocialKind};
use crate::newsroom::Newsroom;
use crate::store::{SourceHealth, Store, Validators};
use pasopati_analysis::social::SocialFormat;
use pasopati_common::backoff::{Backoff, BackoffConfig};
use pasopati_common::Timestamp;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a source's documents are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reader {
    /// RSS 2.0 or Atom.
    Feed,
    Social(SocialFormat),
}

/// One polled source, as the poller sees it.
#[derive(Clone, Debug)]
pub struct Source {
    /// The key its health is kept under: kind and address.
    pub key: String,
    /// `rss`, `youtube`, `mastodon`, `bluesky` or `telegram`.
    pub kind: &'static str,
    /// What people read on the dashboard.
    pub label: String,
    pub reader: Reader,
    /// The address without a cursor.
    pub address: String,
    /// The query parameter that asks only for posts newer than the cursor.
    cursor_parameter: Option<&'static str>,
    pub every: Duration,
}

fn host_of(address: &str) -> String {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split(['/', '?', '#'])
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

impl Source {
    /// The source of a `[[feeds]]` entry.
    pub fn of_feed(feed: &FeedConfig) -> Source {
        Source {
            key: format!("rss {}", feed.url),
            kind: "rss",
            label: format!("Berita: {}", host_of(&feed.url)),
            reader: Reader::Feed,
            address: feed.url.clone(),
            cursor_parameter: None,
            every: feed.every.0,
        }
    }

    /// The source of a `[[social]]` entry (checked by `CollectorConfig::check`).
    pub fn of_social(s: &SocialConfig) -> Source {
        let base = |default: &str| {
            s.instance
                .as_deref()
                .unwrap_or(default)
                .trim_end_matches('/')
                .to_owned()
        };
        let field = |f: &Option<String>| f.as_deref().unwrap_or_default().trim().to_owned();
        let (address, label, format, cursor_parameter) = match s.kind {
            SocialKind::Youtube => {
                let channel = field(&s.channel);
                let address = s.url.clone().unwrap_or_else(|| {
                    format!(
                        "{}/feeds/videos.xml?{}",
                        base("https://www.youtube.com"),
                        query(&[("channel_id", &channel)])
                    )
                });
                let label = if channel.is_empty() {
                    format!("YouTube {address}")
                } else {
                    format!("YouTube kanal {channel}")
                };
                (address, label, SocialFormat::YouTube, None)
            }
            SocialKind::Mastodon => {
                let instance = base("");
                let host = host_of(&instance);
                match (&s.tag, &s.account) {
                    (Some(tag), _) => {
                        let tag = tag.trim().trim_start_matches('#');
                        (
                            format!("{instance}/api/v1/timelines/tag/{tag}?limit=40"),
                            format!("Mastodon #{tag} di {host}"),
                            SocialFormat::Mastodon,
                            Some("min_id"),
                        )
                    }
                    _ => {
                        let account = field(&s.account);
                        (
                            format!("{instance}/api/v1/accounts/{account}/statuses?limit=40"),
                            format!("Mastodon akun {account} di {host}"),
                            SocialFormat::Mastodon,
                            Some("min_id"),
                        )
                    }
                }
            }
            SocialKind::Bluesky => {
                let q = field(&s.query);
                (
                    format!(
                        "{}/xrpc/app.bsky.feed.searchPosts?{}",
                        base("https://public.api.bsky.app"),
                        query(&[("q", &q), ("sort", "latest"), ("limit", "50")])
                    ),
                    format!("Bluesky \"{q}\""),
                    SocialFormat::Bluesky,
                    Some("since"),
                )
            }
            SocialKind::Telegram => {
                let channel = field(&s.channel);
                (
                    format!("{}/s/{channel}", base("https://t.me")),
                    format!("Telegram t.me/{channel}"),
                    SocialFormat::Telegram,
                    None,
                )
            }
        };
        Source {
            key: format!("{} {address}", s.kind.name()),
            kind: s.kind.name(),
            label,
            reader: Reader::Social(format),
            address,
            cursor_parameter,
            every: s.every.0,
        }
    }

    /// The address to ask, with the cursor when there is one.
    pub fn address_with(&self, cursor: Option<&str>) -> String {
        match (self.cursor_parameter, cursor) {
            (Some(name), Some(cursor)) if !cursor.is_empty() => {
                let separator = if self.address.contains('?') { '&' } else { '?' };
                format!("{}{separator}{}", self.address, query(&[(name, cursor)]))
            }
            _ => self.address.clone(),
        }
    }

    /// The health of a source never polled.
    fn new_health(&self) -> SourceHealth {
        SourceHealth {
            key: self.key.clone(),
            kind: self.kind.to_owned(),
            label: self.label.clone(),
            ..Default::default()
        }
    }
}

/// Every source of a configuration: feeds first, then social sources.
pub fn configured(feeds: &[FeedConfig], social: &[SocialConfig]) -> Vec<Source> {
    feeds
        .iter()
        .map(Source::of_feed)
        .chain(social.iter().map(Source::of_social))
        .collect()
}

/// The health of every configured source, in the configuration's order; a source never
/// polled has an empty record. `items_today` counts only today's (WIB) items.
pub fn health_of(
    store: &Store,
    feeds: &[FeedConfig],
    social: &[SocialConfig],
) -> Result<Vec<SourceHealth>, crate::store::StoreError> {
    let today = pasopati_analysis::insight::day_of(Timestamp::now().0);
    configured(feeds, social)
        .iter()
        .map(|source| {
            let mut health = store
                .source_health(&source.key)?
                .unwrap_or_else(|| source.new_health());
            health.label = source.label.clone();
            if health.items_day != today {
                health.items_today = 0;
            }
            Ok(health)
        })
        .collect()
}

/// A fetch that failed, in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("cannot fetch {url}: {message}")]
    Fetch { url: String, message: String },
    #[error("{url} answered HTTP {status}")]
    Status {
        url: String,
        status: u16,
        /// The wait the source asked for (`Retry-After` in seconds).
        retry_after: Option<Duration>,
    },
}

/// What a conditional request brought.
#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Document {
        text: String,
        validators: Validators,
    },
}

/// The HTTP client of one source: the timeout of `[polling]`, errors as values.
pub fn client(polling: &PollingSettings) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(polling.timeout.0))
        .http_status_as_error(false)
        .user_agent(concat!("pasopati-collector/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// Fetches `url` (blocking), sending the validators of an earlier answer, reading at most
/// `max_bytes`.
pub fn fetch_conditional(
    agent: &ureq::Agent,
    url: &str,
    validators: &Validators,
    max_bytes: u64,
) -> Result<Fetched, FetchError> {
    let fetch_error = |e: ureq::Error| FetchError::Fetch {
        url: url.to_owned(),
        message: e.to_string(),
    };
    let mut request = agent.get(url);
    if let Some(etag) = &validators.etag {
        request = request.header("If-None-Match", etag);
    }
    if let Some(date) = &validators.last_modified {
        request = request.header("If-Modified-Since", date);
    }
    let mut response = request.call().map_err(fetch_error)?;
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    match status {
        304 => return Ok(Fetched::NotModified),
        200 => {}
        _ => {
            let retry_after = header("retry-after")
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(FetchError::Status {
                url: url.to_owned(),
                status,
                retry_after,
            });
        }
    }
    let validators = Validators {
        etag: header("etag"),
        last_modified: header("last-modified"),
    };
    let text = response
        .body_mut()
        .with_config()
        .limit(max_bytes)
        .read_to_string()
        .map_err(fetch_error)?;
    Ok(Fetched::Document { text, validators })
}

/// The turns of each host: a request to a host waits until `per_host_interval` after the one
/// before it.
struct HostGate {
    interval: Duration,
    next: Mutex<HashMap<String, tokio::time::Instant>>,
}

impl HostGate {
    /// Waits for this host's next turn (and takes it).
    async fn turn(&self, host: &str) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = tokio::time::Instant::now();
            let slot = next.get(host).copied().filter(|t| *t > now).unwrap_or(now);
            next.insert(host.to_owned(), slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

/// A random number for the backoff's jitter.
fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes),
        // Without the system's randomness, the clock's milliseconds still spread the sources.
        Err(_) => Timestamp::now().0.unsigned_abs(),
    }
}

/// How one poll ended.
enum Polled {
    Ok,
    Failed { retry_after: Option<Duration> },
}

/// Polls every source on its schedule until `shutdown`.
pub async fn poll(
    sources: Vec<Source>,
    newsroom: Arc<Newsroom>,
    store: Arc<Store>,
    polling: PollingSettings,
    shutdown: CancellationToken,
) {
    let gate = Arc::new(HostGate {
        interval: polling.per_host_interval.0,
        next: Mutex::new(HashMap::new()),
    });
    let mut tasks = tokio::task::JoinSet::new();
    for source in sources {
        let (newsroom, store, gate, shutdown, polling) = (
            newsroom.clone(),
            store.clone(),
            gate.clone(),
            shutdown.clone(),
            polling.clone(),
        );
        tasks.spawn(async move {
            poll_source(source, newsroom, store, gate, polling, shutdown).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

async fn poll_source(
    source: Source,
    newsroom: Arc<Newsroom>,
    store: Arc<Store>,
    gate: Arc<HostGate>,
    polling: PollingSettings,
    shutdown: CancellationToken,
) {
    let agent = client(&polling);
    let host = host_of(&source.address);
    let read_store = store.clone();
    let key = source.key.clone();
    let stored = tokio::task::spawn_blocking(move || read_store.source_health(&key)).await;
    let mut health = match stored {
        Ok(Ok(Some(h))) => h,
        Ok(Err(e)) => {
            tracing::warn!(source = %source.key, "the source's recorded health cannot be read ({e}); starting afresh");
            source.new_health()
        }
        _ => source.new_health(),
    };
    // The label follows the configuration; the rest is what the source did.
    health.label = source.label.clone();
    let mut backoff = Backoff::new(BackoffConfig {
        base: source.every.saturating_mul(2),
        cap: polling.backoff_cap.0.max(source.every),
    });
    for _ in 0..health.failures.min(32) {
        backoff.next_delay(0);
    }
    // A restarted collector keeps the recorded next poll (a backed-off source stays so).
    let mut wait = health
        .next_poll
        .map(|at| Duration::from_millis(at.saturating_sub(Timestamp::now().0).max(0) as u64))
        .unwrap_or_default()
        .min(polling.backoff_cap.0.max(source.every));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.cancelled() => break,
        }
        // On a shared store only the collector leading the media desk polls: two polling
        // the same feeds would store each item once but place it twice, in two orders.
        if !newsroom.leads() {
            wait = crate::cluster::LEAD_CHECK;
            continue;
        }
        tokio::select! {
            _ = gate.turn(&host) => {}
            _ = shutdown.cancelled() => break,
        }
        let job = (
            source.clone(),
            agent.clone(),
            health.clone(),
            newsroom.clone(),
            polling.max_bytes,
        );
        let done = tokio::task::spawn_blocking(move || {
            let (source, agent, mut health, newsroom, max_bytes) = job;
            let polled = poll_once(&source, &agent, &mut health, &newsroom, max_bytes);
            (health, polled)
        })
        .await;
        let polled = match done {
            Ok((h, polled)) => {
                health = h;
                polled
            }
            Err(e) => {
                tracing::error!(source = %source.key, "the poll task failed: {e}");
                health.failures = health.failures.saturating_add(1);
                health.last_error = Some(format!("the poll task failed: {e}"));
                health.last_error_at = Some(Timestamp::now().0);
                Polled::Failed { retry_after: None }
            }
        };
        wait = match polled {
            Polled::Ok => {
                backoff.reset();
                source.every
            }
            Polled::Failed { retry_after } => {
                let ceiling = backoff.ceiling();
                let jitter = backoff.next_delay(random_u64());
                (ceiling / 2 + jitter / 2)
                    .max(source.every)
                    .max(retry_after.unwrap_or_default())
            }
        };
        health.next_poll = Some(Timestamp::now().0.saturating_add(wait.as_millis() as i64));
        let (write_store, record) = (store.clone(), health.clone());
        match tokio::task::spawn_blocking(move || write_store.put_source_health(&record)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(source = %source.key, "the source's health cannot be recorded: {e}")
            }
            Err(e) => tracing::warn!(source = %source.key, "the health task failed: {e}"),
        }
    }
}

/// One poll (blocking): fetch, read, import, and the health it leaves.
fn poll_once(
    source: &Source,
    agent: &ureq::Agent,
    health: &mut SourceHealth,
    newsroom: &Newsroom,
    max_bytes: u64,
) -> Polled {
    let now = Timestamp::now().0;
    health.last_poll = Some(now);
    let address = source.address_with(health.cursor.as_deref());
    let same_address = health.validators_for.as_deref() == Some(address.as_str());
    let none = Validators::default();
    let validators = if same_address {
        &health.validators
    } else {
        &none
    };
    let result = fetch_conditional(agent, &address, validators, max_bytes)
        .map_err(|e| {
            let retry_after = match &e {
                FetchError::Status { retry_after, .. } => *retry_after,
                FetchError::Fetch { .. } => None,
            };
            (e.to_string(), retry_after)
        })
        .and_then(|fetched| read_and_import(source, &address, fetched, health, newsroom));
    match result {
        Ok(()) => {
            health.last_success = Some(now);
            health.failures = 0;
            Polled::Ok
        }
        Err((message, retry_after)) => {
            tracing::warn!(source = %source.key, failures = health.failures + 1, "source not polled: {message}; backing off");
            health.failures = health.failures.saturating_add(1);
            health.last_error = Some(message);
            health.last_error_at = Some(now);
            Polled::Failed { retry_after }
        }
    }
}

type PollFailure = (String, Option<Duration>);

fn read_and_import(
    source: &Source,
    address: &str,
    fetched: Fetched,
    health: &mut SourceHealth,
    newsroom: &Newsroom,
) -> Result<(), PollFailure> {
    let (text, validators) = match fetched {
        Fetched::NotModified => {
            health.not_modified += 1;
            tracing::debug!(source = %source.key, "not modified");
            return Ok(());
        }
        Fetched::Document { text, validators } => (text, validators),
    };
    let (items, errors, newest) = match source.reader {
        Reader::Feed => {
            let (items, errors) = pasopati_analysis::feed::read_feed(address, &text);
            (items, errors, None)
        }
        Reader::Social(format) => {
            let read = pasopati_analysis::social::read(format, address, &text);
            (read.items, read.errors, read.newest)
        }
    };
    // A document that could not be read at all is a failure of the source, not an empty poll.
    if items.is_empty() {
        if let Some(whole) = errors.iter().find(|e| e.line == 0) {
            return Err((whole.reason.clone(), None));
        }
    }
    for e in &errors {
        tracing::warn!(source = %source.key, entry = e.line, "entry skipped: {}", e.reason);
    }
    let outcome = newsroom
        .import(items)
        .map_err(|e| (format!("cannot store the items: {e}"), None))?;
    let today = pasopati_analysis::insight::day_of(Timestamp::now().0);
    if health.items_day != today {
        health.items_day = today;
        health.items_today = 0;
    }
    health.items_today += outcome.added;
    health.items_total += outcome.added;
    if newest.is_some() {
        health.cursor = newest;
    }
    health.validators_for = Some(address.to_owned());
    health.validators = validators;
    tracing::info!(source = %source.key, added = outcome.added, duplicates = outcome.duplicates, already_stored = outcome.known, skipped = errors.len(), "source polled");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pasopati_common::HumanDuration;

    fn social(kind: SocialKind) -> SocialConfig {
        SocialConfig {
            kind,
            url: None,
            instance: None,
            tag: None,
            account: None,
            query: None,
            channel: None,
            every: HumanDuration::from_secs(600),
        }
    }

    #[test]
    fn addresses_follow_each_platforms_documented_api() {
        let mut yt = social(SocialKind::Youtube);
        yt.channel = Some("UCcontoh_123".into());
        assert_eq!(
            Source::of_social(&yt).address,
            "https://www.youtube.com/feeds/videos.xml?channel_id=UCcontoh_123"
        );
        let mut tag = social(SocialKind::Mastodon);
        tag.instance = Some("https://fedi.contoh.invalid/".into());
        tag.tag = Some("#lapas".into());
        let source = Source::of_social(&tag);
        assert_eq!(
            source.address_with(Some("1135")),
            "https://fedi.contoh.invalid/api/v1/timelines/tag/lapas?limit=40&min_id=1135"
        );
        assert_eq!(source.label, "Mastodon #lapas di fedi.contoh.invalid");
        let mut bsky = social(SocialKind::Bluesky);
        bsky.query = Some("lapas kabur".into());
        assert_eq!(
            Source::of_social(&bsky).address_with(Some("2026-11-20T02:00:01Z")),
            "https://public.api.bsky.app/xrpc/app.bsky.feed.searchPosts?q=lapas+kabur&sort=latest&limit=50&since=2026-11-20T02%3A00%3A01Z"
        );
        let mut tg = social(SocialKind::Telegram);
        tg.channel = Some("kanal_uji".into());
        let source = Source::of_social(&tg);
        assert_eq!(source.address, "https://t.me/s/kanal_uji");
        // Telegram has no cursor: the address stays.
        assert_eq!(source.address_with(Some("9")), source.address);
        assert_eq!(host_of("https://T.me:443/s/x"), "t.me:443");
    }

    #[tokio::test]
    async fn one_host_is_asked_at_most_once_per_interval() {
        let gate = HostGate {
            interval: Duration::from_millis(150),
            next: Mutex::new(HashMap::new()),
        };
        let start = tokio::time::Instant::now();
        gate.turn("a.example").await;
        gate.turn("b.example").await;
        assert!(start.elapsed() < Duration::from_millis(100));
        gate.turn("a.example").await;
        gate.turn("a.example").await;
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
