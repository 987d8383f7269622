//! The collector's media desk: media items imported from files or polled from feeds go into the
//! store (identity data masked), and one live analysis engine places them, together with the
//! site reports the agents send, into duplicates and stories.
//!
//! The engine lives in memory. It is built on first use from its last snapshot
//! (`snapshot.rs`, written every few minutes and at shutdown) and the media items and reports
//! stored after it, or, without a usable snapshot, by replaying the stored media items in
//! arrival order and then the stored reports (latest revisions); from then on every import and
//! every stored batch is placed as it arrives. Placements recorded with an item are those of
//! its arrival; a replay after a restart may place an item that arrived between reports a
//! little differently, since reports are replayed after the media.
//!
//! The engagement of social posts (shares, replies, likes, views) is kept beside the items, in
//! its own table, and in memory for the spikes, which weigh social posts by it. A post polled
//! again updates its engagement even though the item itself is stored only once.

use crate::config::AnalysisSettings;
use crate::store::{
    AlertRecord, NewAlert, RecordedEdit, Store, StoreError, StoredMedia, StoredReport,
};
use pasopati_analysis::batch::{StoryDetail, StoryResult};
use pasopati_analysis::edits::StoryEdit;
use pasopati_analysis::social::Engagement;
use pasopati_analysis::{Engine, MediaItem, SiteReport};
use pasopati_common::pii::{PiiConfig, PiiGuard};
use pasopati_common::Timestamp;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

pub mod placer;
mod snapshot;
pub use snapshot::{keep_snapshots, SnapshotWriteError, SNAPSHOT_FILE};

/// What an import did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct ImportOutcome {
    /// New items stored.
    pub added: u64,
    /// Items whose id was stored already (skipped).
    pub known: u64,
    /// New items that are duplicates of an earlier item (same URL, same text, or a copy).
    pub duplicates: u64,
}

/// An analyst's edit to stories that was refused, or could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("no story `{0}` is listed now (a story merged into another is listed under that one)")]
    NoStory(String),
    #[error("a story cannot be merged into itself (`{0}`)")]
    SameStory(String),
    #[error("`{doc}` is not an item or report of story `{story}`")]
    NotInStory { story: String, doc: String },
    #[error("name the items or reports to split out of `{0}`, and leave at least one in it")]
    NothingLeft(String),
    #[error("there is no story edit number {0}")]
    NoEdit(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The media desk.
pub struct Newsroom {
    store: Arc<Store>,
    settings: AnalysisSettings,
    guard: PiiGuard,
    engine: Mutex<Option<Engine>>,
    /// The engagement of social posts by item id, read from the store with the replay.
    engagement: Mutex<HashMap<String, Engagement>>,
    /// Stories as last computed, for the edits generation then.
    stories_cache: Cached<u64, Vec<StoryResult>>,
    /// Insights as last computed, for the coverage days then.
    insights_cache: Cached<i64, serde_json::Value>,
    /// Moved on by every analyst's edit, so listed stories show it at once.
    edits_generation: AtomicU64,
    /// The arrival number the next media item to place will have: every stored item before it
    /// is placed.
    media_next: AtomicU64,
    /// Which report arrivals are placed (see [`PlacedReports`]).
    placed_reports: Mutex<PlacedReports>,
    /// How many documents the last rebuild placed (the rest came from the snapshot).
    rebuilt_documents: AtomicUsize,
    /// Raised when reports are stored, for the placer.
    stored_signal: pasopati_common::task::Wakeup,
    /// Whether this collector leads the media desk: polls the sources and records the risk
    /// days. Always on a store of its own; on a shared store, the one collector holding the
    /// database's lock (`crate::cluster::lead_media_desk`).
    leading: std::sync::atomic::AtomicBool,
}

/// The report arrivals placed: every arrival below `below`, and those in `above`. Batches are
/// handed over by concurrent sessions, so arrivals are placed a little out of order; a snapshot
/// is tagged with `below` only, so that a report committed but not yet placed when it was
/// written is placed after a restart.
#[derive(Debug, Default)]
struct PlacedReports {
    below: u64,
    above: std::collections::BTreeSet<u64>,
}

impl PlacedReports {
    fn mark(&mut self, arrival: u64) {
        if arrival >= self.below {
            self.above.insert(arrival);
        }
        while self.above.remove(&self.below) {
            self.below += 1;
        }
    }
}

/// A value as last computed: (documents placed then, what else it was computed for, when,
/// the value).
type Cached<K, V> = Mutex<Option<(usize, K, std::time::Instant, Arc<V>)>>;

/// How long computed stories and insights serve while new documents arrive. Nothing is
/// recomputed while nothing new arrived.
const CACHE_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The value `cache` holds for `key` while the engine still has `documents` placed (or for
/// [`CACHE_FOR`] while documents arrive); otherwise `compute`'s, kept in `cache`. `what` names
/// the cache in the error of a poisoned lock.
fn cached<K: PartialEq, V>(
    cache: &Cached<K, V>,
    what: &str,
    documents: usize,
    key: K,
    compute: impl FnOnce() -> Result<V, StoreError>,
) -> Result<Arc<V>, StoreError> {
    let mut cache = cache
        .lock()
        .map_err(|_| StoreError::Storage(format!("the {what} cache was poisoned")))?;
    if let Some((n, k, at, value)) = cache.as_ref() {
        if *k == key && (*n == documents || at.elapsed() < CACHE_FOR) {
            return Ok(value.clone());
        }
    }
    let value = Arc::new(compute()?);
    *cache = Some((documents, key, std::time::Instant::now(), value.clone()));
    Ok(value)
}

impl Newsroom {
    pub fn new(store: Arc<Store>, pii: &PiiConfig, settings: &AnalysisSettings) -> Newsroom {
        Newsroom {
            settings: settings.clone(),
            guard: PiiGuard::new(pii),
            engine: Mutex::new(None),
            engagement: Mutex::new(HashMap::new()),
            stories_cache: Mutex::new(None),
            insights_cache: Mutex::new(None),
            edits_generation: AtomicU64::new(0),
            media_next: AtomicU64::new(0),
            placed_reports: Mutex::new(PlacedReports::default()),
            rebuilt_documents: AtomicUsize::new(0),
            stored_signal: pasopati_common::task::Wakeup::default(),
            // On a shared store nobody leads until the database's lock says so: starting
            // as leader would let a second collector raise alerts in the moment before its
            // lead check first runs.
            leading: std::sync::atomic::AtomicBool::new(!store.is_postgres()),
            store,
        }
    }

    /// Whether this collector leads the media desk (see the field).
    pub fn leads(&self) -> bool {
        self.leading.load(Ordering::SeqCst)
    }

    /// Takes or gives up the lead of the media desk.
    pub fn set_leading(&self, leading: bool) {
        self.leading.store(leading, Ordering::SeqCst);
    }

    /// Places the media items stored from `from` up to (not including) `to`, or to the end,
    /// in arrival order, with their engagement as stored; moves `media_next` past them.
    /// Items this engine placed as it imported them are past `media_next` already; the ones
    /// placed here were stored by another collector on a shared store, which this one follows
    /// so that every instance's analysis holds every item.
    fn place_stored_media(
        &self,
        engine: &mut Engine,
        from: u64,
        to: Option<u64>,
    ) -> Result<usize, StoreError> {
        let mut after = from;
        let mut total = 0;
        while to.is_none_or(|to| after < to) {
            let page = self.store.media(after, 1_000)?;
            let mut placed_any = false;
            for m in page.iter().filter(|m| to.is_none_or(|to| m.arrival < to)) {
                let engagement = self.store.engagement(&m.id)?.unwrap_or_default();
                if engagement.is_known() {
                    self.engagement_map()?.insert(m.id.clone(), engagement);
                }
                engine.add_item(&item_of(m, engagement));
                after = m.arrival + 1;
                total += 1;
                placed_any = true;
            }
            if !placed_any {
                break;
            }
        }
        if to.is_none() {
            self.media_next.fetch_max(after, Ordering::SeqCst);
        }
        Ok(total)
    }

    /// Places the media items other collectors stored since this engine's last, if the engine
    /// runs (its replay places them otherwise). Blocking.
    pub fn follow_stored_media(&self) -> Result<usize, StoreError> {
        let mut slot = self.engine.lock().map_err(|_| {
            StoreError::Storage("the analysis engine was poisoned by a panic".into())
        })?;
        let Some(engine) = slot.as_mut() else {
            return Ok(0);
        };
        let from = self.media_next.load(Ordering::SeqCst);
        self.place_stored_media(engine, from, None)
    }

    /// The analysts' edits that apply, oldest first.
    fn active_edits(&self) -> Result<Vec<StoryEdit>, StoreError> {
        Ok(self
            .store
            .story_edits()?
            .into_iter()
            .filter(|e| e.active())
            .map(|e| e.edit)
            .collect())
    }

    /// Says that an analyst's edit was recorded or undone: stories are listed anew.
    pub fn edits_changed(&self) {
        self.edits_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    fn with_engine<T>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut slot = self.engine.lock().map_err(|_| {
            StoreError::Storage("the analysis engine was poisoned by a panic".into())
        })?;
        if slot.is_none() {
            *slot = Some(self.replay()?);
        }
        match slot.as_mut() {
            Some(engine) => f(engine),
            None => Err(StoreError::Storage("the analysis engine is missing".into())),
        }
    }

    fn replay(&self) -> Result<Engine, StoreError> {
        let (mut engine, media_from, mut placed) = match self.restore() {
            Some(restored) => restored,
            None => (
                Engine::with_defaults(self.settings.engine()),
                0,
                PlacedReports::default(),
            ),
        };
        let restored = engine.len();
        let engagement = self.store.engagement_all()?;
        let mut after = media_from;
        loop {
            let page = self.store.media(after, 10_000)?;
            let Some(last) = page.last().map(|m| m.arrival) else {
                break;
            };
            for m in page {
                let known = engagement.get(&m.id).copied().unwrap_or_default();
                engine.add_item(&item_of(&m, known));
            }
            after = last + 1;
        }
        self.media_next.store(after, Ordering::SeqCst);
        let mut newest = placed.below as i64 - 1;
        let since = crate::store::ReportQuery {
            after_arrival: Some(placed.below),
            ..Default::default()
        };
        for r in self.store.reports(&since)? {
            newest = newest.max(r.arrival as i64);
            if !placed.above.contains(&r.arrival) {
                engine.add_report(&report_of(&r));
            }
        }
        // Everything the store held is placed now.
        placed.below = placed.below.max((newest + 1).max(0) as u64);
        placed.above.retain(|a| *a >= placed.below);
        if let Ok(mut slot) = self.placed_reports.lock() {
            *slot = placed;
        }
        self.rebuilt_documents
            .store(engine.len() - restored, Ordering::SeqCst);
        *self.engagement_map()? = engagement;
        tracing::info!(
            docs = engine.len(),
            from_snapshot = restored,
            stories = engine.story_count(),
            "analysis engine rebuilt from the store"
        );
        Ok(engine)
    }

    fn engagement_map(
        &self,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<String, Engagement>>, StoreError> {
        self.engagement
            .lock()
            .map_err(|_| StoreError::Storage("the engagement table was poisoned".into()))
    }

    /// Masks, places and stores media items; items whose id is stored already are skipped,
    /// but their engagement, when given, is recorded (a post read again has new counts).
    pub fn import(&self, items: Vec<MediaItem>) -> Result<ImportOutcome, StoreError> {
        self.with_engine(|engine| {
            let engaged: Vec<(String, Engagement)> = items
                .iter()
                .filter(|i| i.engagement.is_known())
                .map(|i| (i.id.clone(), i.engagement))
                .collect();
            self.store.put_engagement(&engaged)?;
            {
                let mut map = self.engagement_map()?;
                for (id, e) in &engaged {
                    let old = map.get(id).copied().unwrap_or_default();
                    map.insert(
                        id.clone(),
                        Engagement {
                            shares: e.shares.or(old.shares),
                            replies: e.replies.or(old.replies),
                            likes: e.likes.or(old.likes),
                            views: e.views.or(old.views),
                        },
                    );
                }
            }
            // What other collectors stored first is placed first, as they placed it.
            let from = self.media_next.load(Ordering::SeqCst);
            self.place_stored_media(engine, from, None)?;
            let placed_before = self.media_next.load(Ordering::SeqCst);
            let mut outcome = ImportOutcome::default();
            let mut fresh = Vec::new();
            // Ids stored already, then each id of this import as it is taken.
            let mut seen = self
                .store
                .known_media(items.iter().map(|i| i.id.as_str()))?;
            for mut item in items {
                if !seen.insert(item.id.clone()) {
                    outcome.known += 1;
                    continue;
                }
                item.title = pasopati_analysis::media::mask(&self.guard, &item.title);
                item.text = pasopati_analysis::media::mask(&self.guard, &item.text);
                fresh.push(item);
            }
            let placements: Vec<_> = fresh.iter().map(|item| engine.add_item(item)).collect();
            let ids: Vec<String> = fresh.iter().map(|i| i.id.clone()).collect();
            let now = Timestamp::now().0;
            let (mut first, mut next) = (None, None);
            let added = self.store.add_media(&ids, |i, arrival| {
                first.get_or_insert(arrival);
                next = Some(arrival + 1);
                let (item, p) = (&fresh[i], &placements[i]);
                StoredMedia {
                    arrival,
                    id: item.id.clone(),
                    url: item.url.clone(),
                    normalized_url: p.normalized_url.clone(),
                    source: item.source.clone(),
                    title: item.title.clone(),
                    text: item.text.clone(),
                    published_at: item.published_at.0,
                    social: item.social,
                    imported_at: now,
                    duplicate_of: p.duplicate_of.clone(),
                    story: p.story.clone(),
                    upt: p.upt.clone(),
                    kanwil: p.kanwil.clone(),
                    sentiment: p.sentiment,
                    topic: p.topic.clone(),
                    category: p.category.clone(),
                }
            })?;
            // Items another collector stored between this engine's catching up and this
            // commit took the numbers before ours: placed now, after ours.
            if let Some(first) = first.filter(|f| *f > placed_before) {
                self.place_stored_media(engine, placed_before, Some(first))?;
            }
            if let Some(next) = next {
                self.media_next.fetch_max(next, Ordering::SeqCst);
            }
            for (i, was_added) in added.iter().enumerate() {
                if *was_added {
                    outcome.added += 1;
                    if placements[i].duplicate_of.is_some() {
                        outcome.duplicates += 1;
                    }
                } else {
                    outcome.known += 1;
                }
            }
            Ok(outcome)
        })
    }

    /// Places newly stored site reports, if the engine is running (otherwise its replay will).
    /// Blocking: it waits for a replay in progress, so call it off the async workers.
    pub fn add_reports(&self, reports: &[StoredReport]) {
        if let Ok(mut slot) = self.engine.lock() {
            if let Some(engine) = slot.as_mut() {
                if let Ok(mut placed) = self.placed_reports.lock() {
                    // Not what the replay or the placer placed already (the replay moves
                    // `below` past everything it read).
                    for r in reports
                        .iter()
                        .filter(|r| r.arrival >= placed.below && !placed.above.contains(&r.arrival))
                    {
                        engine.add_report(&report_of(r));
                    }
                    for r in reports {
                        placed.mark(r.arrival);
                    }
                }
            }
        }
    }

    /// How many documents the last rebuild of the engine placed itself (the others came from
    /// its snapshot).
    pub fn rebuilt_documents(&self) -> usize {
        self.rebuilt_documents.load(Ordering::SeqCst)
    }

    /// How many media items and reports the engine has placed (building it if needed).
    pub fn documents(&self) -> Result<usize, StoreError> {
        self.with_engine(|engine| Ok(engine.len()))
    }

    /// The stories of everything placed so far, with the analysts' edits (recomputed at most
    /// every 10 seconds while documents arrive, and at once after an edit).
    pub fn stories(&self) -> Result<Arc<Vec<StoryResult>>, StoreError> {
        let generation = self
            .edits_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        self.with_engine(|engine| {
            cached(
                &self.stories_cache,
                "story",
                engine.len(),
                generation,
                || {
                    let edits = self.active_edits()?;
                    let (stories, _) = pasopati_analysis::batch::story_results_with(engine, &edits);
                    Ok(stories)
                },
            )
        })
    }

    /// One story with each item and report and why it is there; `None` if no story has this
    /// id (now: it may have been merged into another).
    pub fn story(&self, id: &str) -> Result<Option<StoryDetail>, StoreError> {
        let edits = self.active_edits()?;
        self.with_engine(|engine| Ok(pasopati_analysis::batch::story_detail(engine, &edits, id)))
    }

    /// Records an analyst's merge: every item and report of `from` is shown in `into`.
    /// Returns the edit's number.
    pub fn merge_stories(
        &self,
        from: &str,
        into: &str,
        note: &str,
        actor: &str,
    ) -> Result<u64, EditError> {
        let (from, into) = (from.trim(), into.trim());
        if from == into {
            return Err(EditError::SameStory(from.to_owned()));
        }
        let listed = self.stories()?;
        for id in [from, into] {
            if !listed.iter().any(|s| s.id == id) {
                return Err(EditError::NoStory(id.to_owned()));
            }
        }
        let edit = StoryEdit::Merge {
            from: from.to_owned(),
            into: into.to_owned(),
        };
        self.record(edit, note, actor)
    }

    /// Records an analyst's split: the items and reports `docs` (with their copies) leave
    /// `story` for a story of their own, titled `title` (or the story's title, marked as
    /// split, when empty). Returns the edit's number; the new story's id is
    /// `pisah-<number>`.
    pub fn split_story(
        &self,
        story: &str,
        docs: &[String],
        title: &str,
        note: &str,
        actor: &str,
    ) -> Result<u64, EditError> {
        let story = story.trim();
        let Some(detail) = self.story(story)? else {
            return Err(EditError::NoStory(story.to_owned()));
        };
        let docs: Vec<String> = docs
            .iter()
            .map(|d| d.trim().to_owned())
            .filter(|d| !d.is_empty())
            .collect();
        if let Some(stranger) = docs
            .iter()
            .find(|d| !detail.documents.iter().any(|x| &x.id == *d))
        {
            return Err(EditError::NotInStory {
                story: story.to_owned(),
                doc: stranger.clone(),
            });
        }
        let moving = |x: &pasopati_analysis::batch::StoryDocument| {
            docs.contains(&x.id) || x.duplicate_of.as_ref().is_some_and(|o| docs.contains(o))
        };
        if docs.is_empty() || detail.documents.iter().all(moving) {
            return Err(EditError::NothingLeft(story.to_owned()));
        }
        let title = match title.trim() {
            "" => format!("{} (dipisah)", detail.story.title),
            t => t.chars().take(300).collect(),
        };
        let edit = StoryEdit::Split {
            story: story.to_owned(),
            id: String::new(),
            title: pasopati_analysis::media::mask(&self.guard, &title),
            docs,
        };
        self.record(edit, note, actor)
    }

    /// Undoes an analyst's edit by its number; it stays in the record, marked undone.
    pub fn undo_edit(&self, number: u64, actor: &str) -> Result<RecordedEdit, EditError> {
        let undone = self
            .store
            .undo_story_edit(number, actor, Timestamp::now())?
            .ok_or(EditError::NoEdit(number))?;
        self.edits_changed();
        Ok(undone)
    }

    /// Every analyst's edit, oldest first, undone ones included.
    pub fn edits(&self) -> Result<Vec<RecordedEdit>, StoreError> {
        self.store.story_edits()
    }

    fn record(&self, edit: StoryEdit, note: &str, actor: &str) -> Result<u64, EditError> {
        let note = pasopati_analysis::media::mask(&self.guard, note.trim());
        let note: String = note.chars().take(500).collect();
        let number = self
            .store
            .add_story_edit(edit, &note, actor, Timestamp::now())?;
        self.edits_changed();
        Ok(number)
    }

    /// The risk scores at `clock` (see `pasopati_analysis::risk`); `claims` counts open
    /// unverified claims by unit.
    pub fn risk_at(
        &self,
        config: &pasopati_analysis::risk::RiskConfig,
        clock: i64,
        claims: &std::collections::HashMap<String, u32>,
    ) -> Result<Vec<pasopati_analysis::risk::RiskScore>, StoreError> {
        self.with_engine(|engine| {
            Ok(pasopati_analysis::risk::scores_at(
                engine, config, clock, claims,
            ))
        })
    }

    /// Trends, spikes and coverage, as one JSON object; `coverage_days` overrides the
    /// configured coverage period.
    pub fn insights(
        &self,
        coverage_days: Option<i64>,
    ) -> Result<Arc<serde_json::Value>, StoreError> {
        let coverage_days = coverage_days.unwrap_or(i64::from(self.settings.coverage_days));
        let spikes = self.settings.spikes();
        self.with_engine(|engine| {
            cached(&self.insights_cache, "insight", engine.len(), coverage_days, || {
                // The center's own clock, never a document's label: one report or feed item
                // dated years ahead must not move Cakupan, Tren or the spikes.
                let clock = Timestamp::now().0;
                let engagement = self.engagement_map()?;
                Ok(serde_json::json!({
                    "trends": pasopati_analysis::insight::trends_at(engine, clock),
                    "alerts": pasopati_analysis::insight::spikes_weighed_at(engine, &spikes, clock, &engagement),
                    "coverage": pasopati_analysis::insight::coverage_at(engine, coverage_days, clock),
                }))
            })
        })
    }
}

impl Newsroom {
    /// Records the spike alerts that hold now in the store, each once by its key
    /// (`store/alerts.rs`), and returns those recorded by this call. Only the collector
    /// leading the media desk records; the others return nothing, and every collector's live
    /// event stream relays what was recorded (`web::watch`).
    pub fn raise_alerts(&self, now: Timestamp) -> Result<Vec<AlertRecord>, StoreError> {
        if !self.leads() {
            return Ok(Vec::new());
        }
        let insights = self.insights(None)?;
        let holding = insights["alerts"].as_array().cloned().unwrap_or_default();
        self.store.record_alerts(&alerts_to_record(holding, now.0))
    }
}

/// How often the media desk's leader looks for alerts to record.
pub const ALERT_CHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Records the alerts that hold (`Newsroom::raise_alerts`) every [`ALERT_CHECK`] until
/// `shutdown`, whether or not this collector serves a dashboard: the others' event streams
/// relay what the leader records.
pub async fn keep_alerts(newsroom: Arc<Newsroom>, shutdown: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(ALERT_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let n = newsroom.clone();
        match tokio::task::spawn_blocking(move || n.raise_alerts(Timestamp::now())).await {
            Ok(Ok(new)) if !new.is_empty() => tracing::info!(alerts = new.len(), "alerts raised"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!("cannot record the media desk's alerts: {e}"),
            Err(e) => tracing::warn!("the alert check stopped: {e}"),
        }
    }
}

/// What a spike alert (as the analysis gives it, JSON) is about, stable while it holds:
/// `kind:series:period`. It is the alert's `id` in the API and the event stream, and its key
/// in the store.
pub(crate) fn alert_key(alert: &serde_json::Value) -> String {
    format!(
        "{}:{}:{}",
        alert["kind"].as_str().unwrap_or_default(),
        alert["series"].as_str().unwrap_or_default(),
        alert["period"].as_str().unwrap_or_default()
    )
}

/// The alerts the analysis gives (its `insights`' `alerts`) as records to keep, raised at
/// `now`, each keyed by [`alert_key`], the key also its `id`.
fn alerts_to_record(holding: Vec<serde_json::Value>, now: i64) -> Vec<NewAlert> {
    holding
        .into_iter()
        .map(|mut alert| {
            let key = alert_key(&alert);
            alert["id"] = serde_json::Value::String(key.clone());
            NewAlert {
                key,
                raised_at: now,
                json: alert.to_string(),
            }
        })
        .collect()
}

fn item_of(m: &StoredMedia, engagement: Engagement) -> MediaItem {
    MediaItem {
        id: m.id.clone(),
        url: m.url.clone(),
        source: m.source.clone(),
        title: m.title.clone(),
        text: m.text.clone(),
        published_at: Timestamp(m.published_at),
        social: m.social,
        engagement,
    }
}

fn report_of(r: &StoredReport) -> SiteReport {
    SiteReport {
        id: r.report.id.to_string(),
        site_id: r.site.to_string(),
        category: r.report.category.clone(),
        title: r.report.title.clone(),
        body: r.report.body.clone(),
        occurred_at: r.report.occurred_at,
        urgent: r.report.priority == pasopati_common::Priority::Urgent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{apply, batch, site, store, T0};
    use pasopati_common::Epoch;

    #[test]
    fn reports_already_replayed_are_not_placed_twice() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let first = apply(&store, &site(), Epoch(1), &batch(1, 3), Timestamp(T0 + 10));
        let crate::store::BatchOutcome::Stored { stored, .. } = first else {
            panic!("not stored")
        };
        let newsroom = Newsroom::new(
            store.clone(),
            &PiiConfig::default(),
            &AnalysisSettings::default(),
        );
        let placed = |n: &Newsroom| -> usize { n.documents().unwrap() };
        // The first use replays the store: three reports.
        assert_eq!(placed(&newsroom), 3);
        // The same reports handed over again (a batch stored while the replay read them).
        newsroom.add_reports(&stored);
        let second = apply(&store, &site(), Epoch(1), &batch(4, 2), Timestamp(T0 + 20));
        let crate::store::BatchOutcome::Stored { stored, .. } = second else {
            panic!("not stored")
        };
        newsroom.add_reports(&stored);
        // Five, each once.
        assert_eq!(placed(&newsroom), 5);
    }

    fn media(from: usize, n: usize) -> Vec<MediaItem> {
        (from..from + n)
            .map(|i| MediaItem {
                id: format!("berita-{i}"),
                url: format!("https://uji.example/{i}"),
                source: "uji.example".into(),
                title: format!("Razia di Lapas Kelas IIA Palu temukan {i} ponsel"),
                text: format!("Petugas Lapas Kelas IIA Palu menemukan {i} ponsel dalam razia."),
                published_at: Timestamp(T0 + i as i64 * 60_000),
                social: false,
                engagement: Default::default(),
            })
            .collect()
    }

    fn stored_reports(outcome: crate::store::BatchOutcome) -> Vec<StoredReport> {
        let crate::store::BatchOutcome::Stored { stored, .. } = outcome else {
            panic!("not stored")
        };
        stored
    }

    /// Stores the site's reports `from..from + n` as one batch, and returns them.
    fn stored_batch(store: &Store, from: u64, n: u64) -> Vec<StoredReport> {
        stored_reports(apply(
            store,
            &site(),
            Epoch(1),
            &batch(from, n),
            Timestamp(T0),
        ))
    }

    /// A restart reads the snapshot and places only what was stored after it, including a
    /// batch stored before the snapshot but handed over after it (placed out of order), and
    /// ends with the same stories as a rebuild from nothing.
    #[test]
    fn the_placer_reads_stored_reports_back_once_whoever_else_placed_them() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let newsroom = Newsroom::new(
            store.clone(),
            &PiiConfig::default(),
            &AnalysisSettings::default(),
        );
        let batch_of = |from, n| stored_batch(&store, from, n);
        // Before the engine runs, the placer leaves everything to its replay.
        batch_of(1, 3);
        assert_eq!(newsroom.place_stored().unwrap(), 0);
        assert_eq!(newsroom.documents().unwrap(), 3);
        // Stored after: the placer places them, a second look finds nothing.
        let second = batch_of(4, 300);
        assert_eq!(newsroom.place_stored().unwrap(), 300);
        assert_eq!(newsroom.place_stored().unwrap(), 0);
        // Handed over as well (a released quarantine takes that way): not placed again.
        newsroom.add_reports(&second);
        // Handed over first, then read back by the placer: not placed again either.
        let third = batch_of(304, 2);
        newsroom.add_reports(&third);
        assert_eq!(newsroom.place_stored().unwrap(), 0);
        assert_eq!(newsroom.documents().unwrap(), 3 + 300 + 2);
    }

    /// Two collectors' desks on one store: each places what the other stored, once, and an
    /// import places what the other stored before its own items.
    #[test]
    fn each_desk_follows_the_media_another_stored_once() {
        let (_dir, store) = store();
        let store = Arc::new(store);
        let settings = AnalysisSettings::default();
        let leader = Newsroom::new(store.clone(), &PiiConfig::default(), &settings);
        let other = Newsroom::new(store.clone(), &PiiConfig::default(), &settings);
        assert_eq!(
            (leader.documents().unwrap(), other.documents().unwrap()),
            (0, 0)
        );
        leader.import(media(0, 4)).unwrap();
        assert_eq!(other.follow_stored_media().unwrap(), 4);
        assert_eq!(other.follow_stored_media().unwrap(), 0, "placed once");
        assert_eq!(
            leader.follow_stored_media().unwrap(),
            0,
            "its own are placed"
        );
        // The leader stores more; the other imports before it looked: those first, then its own.
        leader.import(media(4, 3)).unwrap();
        let outcome = other.import(media(7, 2)).unwrap();
        assert_eq!(outcome.added, 2);
        assert_eq!(other.documents().unwrap(), 9);
        assert_eq!(leader.follow_stored_media().unwrap(), 2);
        assert_eq!(leader.documents().unwrap(), 9);
        let ids = |n: &Newsroom| {
            let mut ids: Vec<Vec<String>> = n
                .stories()
                .unwrap()
                .iter()
                .map(|s| s.items.clone())
                .collect();
            ids.sort();
            ids
        };
        assert_eq!(ids(&leader), ids(&other));
    }

    #[test]
    fn a_restart_places_only_what_came_after_the_snapshot() {
        let (dir, store) = store();
        let store = Arc::new(store);
        let settings = AnalysisSettings::default();
        let newsroom = Newsroom::new(store.clone(), &PiiConfig::default(), &settings);
        newsroom.import(media(0, 6)).unwrap();
        let batch_of = |from, n| stored_batch(&store, from, n);
        let first = batch_of(1, 3);
        let late = batch_of(4, 2);
        let third = batch_of(6, 2);
        // The first and third batches are placed; the second is still on its way.
        newsroom.add_reports(&first);
        newsroom.add_reports(&third);
        assert_eq!(newsroom.documents().unwrap(), 6 + 3 + 2);
        assert_eq!(newsroom.write_snapshot(0).unwrap(), Some(11));
        // Nothing new: nothing written.
        assert_eq!(newsroom.write_snapshot(11).unwrap(), None);
        newsroom.add_reports(&late);
        newsroom.import(media(6, 2)).unwrap();
        drop(newsroom);

        let restarted = Newsroom::new(store.clone(), &PiiConfig::default(), &settings);
        // The snapshot's 11, the late batch and the two new items: the third batch, placed
        // before the late one, is not placed again.
        assert_eq!(restarted.documents().unwrap(), 11 + 2 + 2);
        assert_eq!(restarted.rebuilt_documents(), 2 + 2);
        let from_snapshot = restarted.stories().unwrap();

        std::fs::remove_file(dir.path().join(SNAPSHOT_FILE)).unwrap();
        let rebuilt = Newsroom::new(store, &PiiConfig::default(), &settings);
        assert_eq!(rebuilt.rebuilt_documents(), 0, "not built yet");
        rebuilt.documents().unwrap();
        assert_eq!(rebuilt.rebuilt_documents(), 6 + 2 + 7);
        let ids = |s: &[StoryResult]| -> Vec<Vec<String>> {
            let mut v: Vec<Vec<String>> = s.iter().map(|x| x.items.clone()).collect();
            v.sort();
            v
        };
        assert_eq!(ids(&from_snapshot), ids(&rebuilt.stories().unwrap()));
    }

    #[test]
    fn a_snapshot_ahead_of_its_store_is_not_used() {
        let (dir, store) = store();
        let settings = AnalysisSettings::default();
        let newsroom = Newsroom::new(Arc::new(store), &PiiConfig::default(), &settings);
        newsroom.import(media(0, 4)).unwrap();
        newsroom.write_snapshot(0).unwrap();
        // Another store (or this one from an older backup) with the snapshot beside it.
        let (other_dir, other) = crate::store::fixtures::store();
        std::fs::copy(
            dir.path().join(SNAPSHOT_FILE),
            other_dir.path().join(SNAPSHOT_FILE),
        )
        .unwrap();
        let other = Newsroom::new(Arc::new(other), &PiiConfig::default(), &settings);
        other.import(media(10, 2)).unwrap();
        // Its own two items, not the snapshot's four as well.
        assert_eq!(other.documents().unwrap(), 2);
    }

    #[test]
    fn a_damaged_snapshot_means_a_rebuild_not_an_error() {
        let (dir, store) = store();
        let store = Arc::new(store);
        let settings = AnalysisSettings::default();
        let newsroom = Newsroom::new(store.clone(), &PiiConfig::default(), &settings);
        newsroom.import(media(0, 3)).unwrap();
        newsroom.write_snapshot(0).unwrap();
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let half = bytes.len() / 2;
        bytes.truncate(half);
        std::fs::write(&path, bytes).unwrap();
        let restarted = Newsroom::new(store, &PiiConfig::default(), &settings);
        assert_eq!(restarted.documents().unwrap(), 3);
        assert_eq!(restarted.rebuilt_documents(), 3);
    }
}
