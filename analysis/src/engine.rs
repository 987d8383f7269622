//! The incremental engine: each media item or site report is tagged, scored and placed (as a
//! duplicate of an earlier item, into an existing story, or as a new story) when it arrives,
//! without recomputing anything already placed.
//!
//! Duplicates, in order of evidence:
//! 1. the same normalised URL;
//! 2. the same content (hash of the normalised words);
//! 3. a near-duplicate: SimHash within 3 bits *and* the same units (or none named by one side)
//!    *and* the same figures (the numbers of one are all in the other) *and* published within
//!    two windows of each other. The last two conditions keep template look-alikes (another
//!    date, other figures, another unit) apart even when their wording is almost the same.
//!
//! A duplicate joins its original's story and points to the original (the earliest copy seen).
//!
//! Stories: an item or report joins the best-scoring story that (a) was active within the
//! window (72 h) of its time, (b) names a common unit, or has no unit where the item has none,
//! (c) has a compatible category (`topic::compatible`), and (d) is similar enough: the share of
//! the item's terms, weighted by inverse document frequency, that the story's vocabulary holds
//! is at least 0.10 when a unit is shared and 0.40 otherwise. Candidate stories come from the
//! units an item names and from its four rarest terms, so scoring never scans all stories.

use crate::figures::Figure;
use crate::gazetteer::{Ambiguous, Gazetteer};
use crate::sentiment::Lexicon;
use crate::simhash::{simhash, SimIndex, NEAR_DUPLICATE_BITS};
use crate::text::{
    content_of, content_tokens, hash64, is_number, strip_boilerplate, NormalizeOptions,
};
use crate::topic;
use crate::url::normalize_url;
use pasopati_protocol::Timestamp;
use serde::Serialize;
use std::collections::HashMap;

/// How the engine decides.
#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    /// How far apart in time two pieces of one story may be.
    pub window_ms: i64,
    /// Least similarity to join a story that names a unit the item names.
    pub min_similarity_same_unit: f64,
    /// Least similarity to join a story when no unit is shared (one side names none).
    pub min_similarity_no_unit: f64,
    pub normalize: NormalizeOptions,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            window_ms: 72 * 3_600_000,
            min_similarity_same_unit: 0.10,
            min_similarity_no_unit: 0.40,
            normalize: NormalizeOptions::default(),
        }
    }
}

/// A media item as it arrives.
#[derive(Clone, Debug, PartialEq, Eq, bincode::Encode, bincode::Decode)]
pub struct MediaItem {
    pub id: String,
    pub url: String,
    pub source: String,
    pub title: String,
    pub text: String,
    pub published_at: Timestamp,
    /// A social-media post rather than a news article (spikes are hourly for these).
    pub social: bool,
}

/// A site report as the analysis sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteReport {
    pub id: String,
    pub site_id: String,
    pub category: String,
    pub title: String,
    pub body: String,
    pub occurred_at: Timestamp,
}

/// Where an item or report was placed and what was found in it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Placement {
    pub id: String,
    /// Empty for a report.
    pub normalized_url: String,
    pub duplicate_of: Option<String>,
    pub story: String,
    pub upt: Vec<String>,
    pub kanwil: Vec<String>,
    pub ambiguous: Vec<Ambiguous>,
    pub sentiment: f64,
    pub topic: String,
    pub category: String,
}

/// Words every item about corrections uses; they say nothing about which event.
const DOMAIN_STOPWORDS: &[&str] = &[
    "lapas",
    "rutan",
    "lpka",
    "bapas",
    "kelas",
    "klas",
    "lembaga",
    "pemasyarakatan",
    "warga",
    "binaan",
    "wbp",
    "narapidana",
    "napi",
    "tahanan",
    "petugas",
    "kepala",
    "kalapas",
    "karutan",
    "ditjenpas",
    "kanwil",
    "kemenkumham",
    "kemenimipas",
    "iia",
    "iib",
    "ii",
    "iii",
    "i",
];

/// Least similarity at a shared unit for items whose categories differ.
const CROSS_CATEGORY_SIMILARITY: f64 = 0.30;
/// How many terms a story keeps (the most frequent).
const STORY_TERMS: usize = 96;
/// How many tokens of an item are read for its terms (title and lead carry the event).
const ITEM_TOKENS: usize = 160;
/// How many of an item's rarest terms index its story.
const KEY_TERMS: usize = 4;

/// One placed item or report.
#[derive(Clone, Debug)]
pub(crate) struct Doc {
    pub id: String,
    pub report: bool,
    pub time: i64,
    pub source: u32,
    pub social: bool,
    pub story: u32,
    pub duplicate_of: Option<u32>,
    pub upt: Vec<u16>,
    pub kanwil: Vec<u8>,
    pub category: &'static str,
    pub topic: &'static str,
    pub sentiment: f32,
    /// Numbers of the text, sorted, for the near-duplicate check.
    pub numbers: Vec<u64>,
    pub figures: Vec<Figure>,
    /// The document's rarest terms when it arrived, for top terms.
    pub key_terms: Vec<u32>,
}

/// A story: items and reports about one real-world event.
#[derive(Clone, Debug)]
pub(crate) struct Story {
    pub id: String,
    pub title: String,
    pub first: i64,
    pub last: i64,
    pub upt: Vec<u16>,
    pub category: &'static str,
    /// (term, count), sorted by term, at most `STORY_TERMS`.
    pub terms: Vec<(u32, u32)>,
    pub docs: Vec<u32>,
}

/// The engine.
pub struct Engine {
    pub(crate) config: EngineConfig,
    pub(crate) gazetteer: Gazetteer,
    lexicon: Lexicon,
    vocab: HashMap<String, u32>,
    pub(crate) terms: Vec<String>,
    df: Vec<u32>,
    seen: u32,
    pub(crate) docs: Vec<Doc>,
    pub(crate) stories: Vec<Story>,
    pub(crate) sources: Vec<String>,
    source_ids: HashMap<String, u32>,
    upt_ids: HashMap<String, u16>,
    pub(crate) kanwils: Vec<String>,
    by_url: HashMap<String, u32>,
    by_content: HashMap<u64, u32>,
    sim: SimIndex,
    sim_docs: Vec<u32>,
    by_unit: HashMap<u16, Vec<u32>>,
    by_term: HashMap<u32, Vec<u32>>,
    by_id: HashMap<String, u32>,
    /// The latest time placed, and how many documents since the last compaction.
    newest: i64,
    since_compaction: u32,
}

/// Documents between compactions of stories too old to take new items.
const COMPACT_EVERY: u32 = 4096;

impl Engine {
    pub fn new(config: EngineConfig, gazetteer: Gazetteer, lexicon: Lexicon) -> Engine {
        let upt_ids = gazetteer
            .upts()
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id.clone(), i as u16))
            .collect();
        let kanwils = gazetteer.kanwil_names();
        Engine {
            config,
            gazetteer,
            lexicon,
            vocab: HashMap::new(),
            terms: Vec::new(),
            df: Vec::new(),
            seen: 0,
            docs: Vec::new(),
            stories: Vec::new(),
            sources: Vec::new(),
            source_ids: HashMap::new(),
            upt_ids,
            kanwils,
            by_url: HashMap::new(),
            by_content: HashMap::new(),
            sim: SimIndex::default(),
            sim_docs: Vec::new(),
            by_unit: HashMap::new(),
            by_term: HashMap::new(),
            by_id: HashMap::new(),
            newest: i64::MIN,
            since_compaction: 0,
        }
    }

    /// Frees the vocabulary of stories that ended more than two windows before the newest
    /// document: no item within the window of the newest can join them. An item arriving much
    /// later than it was published (an old article imported today) starts its own story.
    fn compact(&mut self) {
        self.since_compaction += 1;
        if self.since_compaction < COMPACT_EVERY {
            return;
        }
        self.since_compaction = 0;
        let horizon = self.newest.saturating_sub(2 * self.config.window_ms);
        for story in &mut self.stories {
            if story.last < horizon && !story.terms.is_empty() {
                story.terms = Vec::new();
            }
        }
        let stories = &self.stories;
        for list in self.by_unit.values_mut().chain(self.by_term.values_mut()) {
            list.retain(|&s| stories[s as usize].last >= horizon);
        }
        self.by_unit.retain(|_, l| !l.is_empty());
        self.by_term.retain(|_, l| !l.is_empty());
    }

    /// An engine with the shipped gazetteer and lexicon.
    pub fn with_defaults(config: EngineConfig) -> Engine {
        Engine::new(
            config,
            Gazetteer::builtin().clone(),
            Lexicon::builtin().clone(),
        )
    }

    /// How many items and reports were placed.
    pub fn len(&self) -> usize {
        self.docs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.docs.is_empty()
    }

    /// How many stories there are.
    pub fn story_count(&self) -> usize {
        self.stories.len()
    }

    /// The near-duplicate index, for measuring it.
    pub fn simhash_index(&self) -> &SimIndex {
        &self.sim
    }

    /// Places a media item.
    pub fn add_item(&mut self, item: &MediaItem) -> Placement {
        let text = format!("{}\n{}", item.title, item.text);
        let normalized_url = normalize_url(&item.url);
        let source = self.intern_source(&item.source);
        let prepared = self.prepare(&text, &item.text, None);
        let time = item.published_at.0;
        let doc_index = self.docs.len() as u32;
        // 1 and 2: the same URL or the same content.
        let mut duplicate_of = None;
        if !item.url.trim().is_empty() {
            if let Some(&d) = self.by_url.get(&normalized_url) {
                duplicate_of = Some(self.original(d));
            }
        }
        if duplicate_of.is_none() {
            if let Some(&d) = self.by_content.get(&prepared.content_hash) {
                duplicate_of = Some(self.original(d));
            }
        }
        // 3: a near-duplicate with the same units and figures.
        if duplicate_of.is_none() {
            duplicate_of = self
                .sim
                .near(prepared.simhash, NEAR_DUPLICATE_BITS)
                .into_iter()
                .map(|(n, d)| (self.sim_docs[n as usize], d))
                .filter(|&(doc, _)| self.near_duplicate_compatible(doc, &prepared, time))
                .min_by_key(|&(doc, d)| (d, doc))
                .map(|(doc, _)| self.original(doc));
        }
        let story = match duplicate_of {
            Some(original) => self.docs[original as usize].story,
            None => self.place_in_story(&prepared, time, &item.title, &item.id),
        };
        if !item.url.trim().is_empty() {
            self.by_url
                .entry(normalized_url.clone())
                .or_insert(doc_index);
        }
        self.by_content
            .entry(prepared.content_hash)
            .or_insert(doc_index);
        let n = self.sim.insert(prepared.simhash);
        debug_assert_eq!(n as usize, self.sim_docs.len());
        self.sim_docs.push(doc_index);
        self.finish(
            prepared,
            item.id.clone(),
            false,
            time,
            source,
            item.social,
            story,
            duplicate_of,
            normalized_url,
        )
    }

    /// Places a site report. Its site id, when it is a gazetteer id, is one of its units.
    pub fn add_report(&mut self, report: &SiteReport) -> Placement {
        let text = format!("{}\n{}", report.title, report.body);
        let source = self.intern_source(&format!("laporan:{}", report.site_id));
        let site_unit = self.upt_ids.get(&report.site_id).copied();
        let mut prepared = self.prepare(&text, &report.body, site_unit);
        // The category the site chose is authoritative.
        if let Some(c) = pasopati_protocol::taxonomy::Taxonomy::builtin().get(&report.category) {
            prepared.category = c.id.as_str();
        }
        let time = report.occurred_at.0;
        let story = self.place_in_story(&prepared, time, &report.title, &report.id);
        self.finish(
            prepared,
            report.id.clone(),
            true,
            time,
            source,
            false,
            story,
            None,
            String::new(),
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish(
        &mut self,
        prepared: Prepared,
        id: String,
        report: bool,
        time: i64,
        source: u32,
        social: bool,
        story: u32,
        duplicate_of: Option<u32>,
        normalized_url: String,
    ) -> Placement {
        let doc_index = self.docs.len() as u32;
        let placement = Placement {
            id: id.clone(),
            normalized_url,
            duplicate_of: duplicate_of.map(|d| self.docs[d as usize].id.clone()),
            story: self.stories[story as usize].id.clone(),
            upt: prepared
                .upt
                .iter()
                .map(|&u| self.gazetteer.upts()[u as usize].id.clone())
                .collect(),
            kanwil: prepared
                .kanwil
                .iter()
                .map(|&k| self.kanwils[k as usize].clone())
                .collect(),
            ambiguous: prepared.ambiguous.clone(),
            sentiment: prepared.sentiment as f64,
            topic: prepared.topic.to_owned(),
            category: prepared.category.to_owned(),
        };
        self.by_id.entry(id.clone()).or_insert(doc_index);
        self.newest = self.newest.max(time);
        self.docs.push(Doc {
            id,
            report,
            time,
            source,
            social,
            story,
            duplicate_of,
            upt: prepared.upt,
            kanwil: prepared.kanwil,
            category: prepared.category,
            topic: prepared.topic,
            sentiment: prepared.sentiment,
            numbers: prepared.numbers,
            figures: prepared.figures,
            key_terms: prepared.key_terms,
        });
        self.stories[story as usize].docs.push(doc_index);
        self.compact();
        placement
    }

    fn original(&self, doc: u32) -> u32 {
        self.docs[doc as usize].duplicate_of.unwrap_or(doc)
    }

    fn intern_source(&mut self, source: &str) -> u32 {
        let key = source.trim().to_lowercase();
        if let Some(&id) = self.source_ids.get(&key) {
            return id;
        }
        let id = self.sources.len() as u32;
        self.sources.push(key.clone());
        self.source_ids.insert(key, id);
        id
    }

    fn term_id(&mut self, term: &str) -> u32 {
        if let Some(&id) = self.vocab.get(term) {
            return id;
        }
        let id = self.terms.len() as u32;
        self.terms.push(term.to_owned());
        self.vocab.insert(term.to_owned(), id);
        self.df.push(0);
        id
    }

    pub(crate) fn idf(&self, term: u32) -> f64 {
        let df = self.df.get(term as usize).copied().unwrap_or(0) as f64;
        ((self.seen as f64 + 1.0) / (df + 1.0)).ln() + 1.0
    }

    fn prepare(&mut self, text: &str, body: &str, site_unit: Option<u16>) -> Prepared {
        let all_words = crate::text::words(text);
        let tags = self.gazetteer.tag_words(&all_words);
        let mut upt: Vec<u16> = tags
            .upt
            .iter()
            .filter_map(|id| self.upt_ids.get(id).copied())
            .collect();
        if let Some(u) = site_unit {
            if !upt.contains(&u) {
                upt.push(u);
            }
        }
        upt.sort_unstable();
        let mut kanwil: Vec<u8> = tags
            .kanwil
            .iter()
            .filter_map(|k| self.kanwils.iter().position(|x| x == k).map(|p| p as u8))
            .collect();
        if let Some(u) = site_unit {
            let k = &self.gazetteer.upts()[u as usize].kanwil;
            if let Some(p) = self.kanwils.iter().position(|x| x == k) {
                kanwil.push(p as u8);
            }
        }
        kanwil.sort_unstable();
        kanwil.dedup();
        let (topic, category) = topic::classify_words(&all_words);
        let sentiment = self.lexicon.score_words(&all_words) as f32;
        let figures = crate::figures::figures_of(&all_words);
        let tokens = content_of(all_words, self.config.normalize);
        let mut numbers: Vec<u64> = tokens
            .iter()
            .filter(|t| is_number(t) && t.len() <= 9)
            .filter_map(|t| t.parse().ok())
            // Years label a date, not a figure of the event.
            .filter(|n| !(1990..=2100).contains(n))
            .collect();
        numbers.sort_unstable();
        numbers.dedup();
        // Fingerprints of the body without the portal's furniture: a syndicated copy keeps the
        // body and changes the title, the footer and the "read also" links.
        let body_tokens = content_tokens(&strip_boilerplate(body), self.config.normalize);
        let body_tokens = if body_tokens.is_empty() {
            &tokens
        } else {
            &body_tokens
        };
        let content_hash = hash64(body_tokens.join(" ").as_bytes());
        let simhash = simhash(body_tokens);
        // Terms: unique, without the domain's everyday words, from the head of the text.
        let mut term_ids: Vec<u32> = Vec::new();
        for t in tokens.iter().take(ITEM_TOKENS) {
            if DOMAIN_STOPWORDS.contains(&t.as_str()) || t.chars().count() < 3 && !is_number(t) {
                continue;
            }
            let id = self.term_id(t);
            if !term_ids.contains(&id) {
                term_ids.push(id);
            }
        }
        self.seen += 1;
        for &t in &term_ids {
            self.df[t as usize] += 1;
        }
        let mut by_rarity: Vec<(u32, f64)> = term_ids
            .iter()
            .filter(|&&t| !is_number(&self.terms[t as usize]))
            .map(|&t| (t, self.idf(t)))
            .collect();
        by_rarity.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let key_terms = by_rarity.iter().take(KEY_TERMS).map(|(t, _)| *t).collect();
        Prepared {
            upt,
            kanwil,
            ambiguous: tags.ambiguous,
            numbers,
            figures,
            content_hash,
            simhash,
            term_ids,
            key_terms,
            sentiment,
            topic,
            category,
        }
    }

    fn near_duplicate_compatible(&self, doc: u32, p: &Prepared, time: i64) -> bool {
        let d = &self.docs[doc as usize];
        let units_ok = d.upt.is_empty() || p.upt.is_empty() || d.upt == p.upt;
        let (short, long) = if d.numbers.len() <= p.numbers.len() {
            (&d.numbers, &p.numbers)
        } else {
            (&p.numbers, &d.numbers)
        };
        let figures_ok = short.iter().all(|n| long.binary_search(n).is_ok());
        let time_ok = (d.time - time).abs() <= 2 * self.config.window_ms;
        units_ok && figures_ok && time_ok
    }

    /// Scores candidate stories and joins the best one that qualifies, or starts a story.
    fn place_in_story(&mut self, p: &Prepared, time: i64, title: &str, id: &str) -> u32 {
        let window = self.config.window_ms;
        let mut candidates: Vec<u32> = Vec::new();
        for u in &p.upt {
            if let Some(list) = self.by_unit.get(u) {
                candidates.extend(list.iter().copied());
            }
        }
        for t in &p.key_terms {
            if let Some(list) = self.by_term.get(t) {
                candidates.extend(list.iter().copied());
            }
        }
        candidates.sort_unstable();
        candidates.dedup();
        let total: f64 = p.term_ids.iter().map(|&t| self.idf(t)).sum();
        let mut best: Option<(u32, f64)> = None;
        for s in candidates {
            let story = &self.stories[s as usize];
            if time < story.first - window || time > story.last + window || story.terms.is_empty() {
                continue;
            }
            let shares_unit = p.upt.iter().any(|u| story.upt.contains(u));
            if !shares_unit && !p.upt.is_empty() && !story.upt.is_empty() {
                continue;
            }
            let threshold = if shares_unit {
                self.config.min_similarity_same_unit
            } else {
                self.config.min_similarity_no_unit
            };
            let held: f64 = p
                .term_ids
                .iter()
                .filter(|t| story.terms.binary_search_by_key(*t, |(x, _)| *x).is_ok())
                .map(|&t| self.idf(t))
                .sum();
            let score = if total > 0.0 { held / total } else { 0.0 };
            // Categories from keywords can differ for one event (a minister's visit that looks
            // at the clinic); a close match at the same unit overrides them.
            let close_at_unit = shares_unit && score >= CROSS_CATEGORY_SIMILARITY;
            if !(topic::compatible(story.category, p.category) || close_at_unit) {
                continue;
            }
            if score >= threshold && best.is_none_or(|(_, b)| score > b) {
                best = Some((s, score));
            }
        }
        let story = match best {
            Some((s, _)) => s,
            None => {
                let s = self.stories.len() as u32;
                self.stories.push(Story {
                    id: format!("story-{id}"),
                    title: title.trim().to_owned(),
                    first: time,
                    last: time,
                    upt: Vec::new(),
                    category: p.category,
                    terms: Vec::new(),
                    docs: Vec::new(),
                });
                s
            }
        };
        self.absorb(story, p, time);
        story
    }

    /// Adds an item's units, terms and time to a story and indexes the story under them.
    fn absorb(&mut self, s: u32, p: &Prepared, time: i64) {
        let window = self.config.window_ms;
        let story = &mut self.stories[s as usize];
        story.first = story.first.min(time);
        story.last = story.last.max(time);
        if story.category == "humas" {
            story.category = p.category;
        }
        for u in &p.upt {
            if !story.upt.contains(u) {
                story.upt.push(*u);
            }
        }
        story.upt.sort_unstable();
        for &t in &p.term_ids {
            match story.terms.binary_search_by_key(&t, |(x, _)| *x) {
                Ok(i) => story.terms[i].1 += 1,
                Err(i) => story.terms.insert(i, (t, 1)),
            }
        }
        if story.terms.len() > STORY_TERMS {
            // Keep the most frequent terms (ties: the lower term id, i.e. seen first).
            let mut ranked = story.terms.clone();
            ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            ranked.truncate(STORY_TERMS);
            ranked.sort_by_key(|(t, _)| *t);
            story.terms = ranked;
        }
        let last = story.last;
        let stories = &self.stories;
        let keep = |list: &mut Vec<u32>| {
            if !list.contains(&s) {
                list.push(s);
            }
            // Stories that ended more than a window before this one cannot take new items
            // of this time; drop them from the index once it grows.
            if list.len() > 64 {
                list.retain(|&x| stories[x as usize].last + 2 * window >= last);
            }
        };
        for u in &p.upt {
            keep(self.by_unit.entry(*u).or_default());
        }
        for t in &p.key_terms {
            keep(self.by_term.entry(*t).or_default());
        }
    }

    /// The placement of an item or report by id.
    pub fn doc_index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).map(|&i| i as usize)
    }
}

/// An item or report read and scored, before placement.
struct Prepared {
    upt: Vec<u16>,
    kanwil: Vec<u8>,
    ambiguous: Vec<Ambiguous>,
    numbers: Vec<u64>,
    figures: Vec<Figure>,
    content_hash: u64,
    simhash: u64,
    term_ids: Vec<u32>,
    key_terms: Vec<u32>,
    sentiment: f32,
    topic: &'static str,
    category: &'static str,
}
