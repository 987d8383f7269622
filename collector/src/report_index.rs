//! The report index: what makes the dashboard's report lists, counts and searches as fast at a
//! million reports as at a thousand.
//!
//! The store (redb) keeps the reports; this is a search index of their latest revisions, kept
//! beside it in `DATA_DIR/index/reports` with [tantivy]: the report's arrival number (the
//! lists' order), its site, category, priority and time, and the words of its title and body
//! as `pasopati_analysis::text` stems them. A list or a count asks the index for the matching
//! arrival numbers, newest first, and reads only the page's reports from the store.
//!
//! **The store stays the truth; the index follows it.** One thread (the feeder, spawned by the
//! daemon) reads stored reports back in arrival order, as the analysis placer does, and commits
//! them to the index with the last arrival it took (the *next* mark: the first arrival number not taken) in the commit's payload.
//! A query is exact all the same: it takes the newest committed view of the index and the
//! store's reports after that view's mark (the *tail*: a second's worth while the center keeps
//! up, everything while a new index is first built) and counts both, leaving out of the index
//! whatever the tail has a newer revision of. A report released from quarantine keeps its old
//! arrival number; the store lists it (`Store::late_for_index`) in the same transaction as the
//! release, until the feeder has taken it, and the query treats it as part of the tail.
//!
//! The index can always be thrown away: one that is missing, damaged or of another format is
//! rebuilt from the store, while queries fall back on the tail meanwhile.
//!
//! On a PostgreSQL store the index is a table of the database, shared by every collector on it,
//! with the words read by PostgreSQL's `indonesian` text search (`crate::store::pg::search`);
//! [`ReportIndex::find`] and the feeder hand the work to it, and the tantivy index is not used.

use crate::store::{Store, StoreError, StoredReport};
use pasopati_common::task::Pacer;
use pasopati_common::ReportId;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, INDEXED,
    STRING,
};
use tantivy::tokenizer::{TextAnalyzer, WhitespaceTokenizer};
use tantivy::{
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument, Term,
};
use tokio_util::sync::CancellationToken;

/// The index's format; an index of another format is rebuilt. Bump it with the schema or with
/// what goes into a document (the stemmer's rules included).
const FORMAT: u64 = 1;

/// The tokenizer of the words field: the text is stemmed before it reaches tantivy.
const WORDS_TOKENIZER: &str = "pasopati_stems";

/// Reports the feeder reads from the store at a time (a few in tests, so that a test's feed
/// commits in several steps).
#[cfg(not(test))]
const PAGE: usize = 2_048;
#[cfg(test)]
const PAGE: usize = 7;

/// The feeder commits at least this often while it has uncommitted reports...
const COMMIT_EVERY: Duration = Duration::from_secs(1);
/// ... and, once it has caught up, not more often than this (a commit writes a segment).
const COMMIT_AT_MOST_EVERY: Duration = Duration::from_millis(200);

/// How often the feeder looks at the store without being signalled.
const IDLE_LOOK: Duration = Duration::from_secs(1);

/// The indexing memory of the one writer thread.
const WRITER_MEMORY: usize = 50_000_000;

/// The feeder's scheduling priority (nice), as the analysis placer's.
const NICE: i32 = 10;

/// A report index failure.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("the report index in {dir} cannot be used: {message}. Stop the collector, delete that directory and start again: it is rebuilt from the store")]
    Index { dir: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a report list asks for. Empty fields match everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReportFilter {
    /// Stemmed words that must all be in the title or body.
    pub words: Vec<String>,
    /// The search as typed, which a PostgreSQL store reads with its own stemmer
    /// (`crate::store::pg::search`); empty: `words`, as they are.
    pub text: String,
    pub category: Option<String>,
    /// Only these sites (a site asked for, or the sites of a Kanwil); `Some` of an empty set
    /// matches nothing.
    pub sites: Option<BTreeSet<String>>,
    /// `urgent` or `normal`.
    pub priority: Option<String>,
    /// The report happened at or after this time (ms).
    pub occurred_since: Option<i64>,
    /// The report happened at or before this time (ms).
    pub occurred_until: Option<i64>,
}

/// The words of a report as the index and the filter compare them.
pub fn report_words(title: &str, body: &str) -> Vec<String> {
    stems(&format!("{title} {body}"))
}

/// The stemmed content words of a search text.
pub fn stems(text: &str) -> Vec<String> {
    pasopati_analysis::text::content_tokens(
        text,
        pasopati_analysis::text::NormalizeOptions { stem: true },
    )
}

impl ReportFilter {
    /// How far a PostgreSQL store counts this filter's matches before it says "more than".
    pub fn count_bound(&self) -> usize {
        if self.words.is_empty() {
            COUNT_BOUND
        } else {
            WORD_COUNT_BOUND
        }
    }

    /// The search as typed, or the words when none was typed.
    pub fn search_text(&self) -> String {
        if self.text.trim().is_empty() {
            self.words.join(" ")
        } else {
            self.text.clone()
        }
    }

    /// Whether `r` matches: the same question the index answers, asked of one report.
    pub fn matches(&self, r: &StoredReport) -> bool {
        self.category
            .as_ref()
            .is_none_or(|c| &r.report.category == c)
            && self
                .sites
                .as_ref()
                .is_none_or(|s| s.contains(r.site.as_str()))
            && self
                .priority
                .as_ref()
                .is_none_or(|p| r.report.priority.as_str() == p)
            && self
                .occurred_since
                .is_none_or(|t| r.report.occurred_at.0 >= t)
            && self
                .occurred_until
                .is_none_or(|t| r.report.occurred_at.0 <= t)
            && (self.words.is_empty() || {
                let text = report_words(&r.report.title, &r.report.body);
                self.words.iter().all(|w| text.contains(w))
            })
    }

    /// The index query: this filter, without the reports whose id is in `except`.
    fn query(&self, f: &Fields, except: &[ReportId]) -> Box<dyn Query> {
        let term = |field: Field, text: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(AllQuery))];
        if let Some(c) = &self.category {
            clauses.push((Occur::Must, term(f.category, c)));
        }
        if let Some(p) = &self.priority {
            clauses.push((Occur::Must, term(f.priority, p)));
        }
        if let Some(sites) = &self.sites {
            let terms = sites.iter().map(|s| Term::from_field_text(f.site, s));
            clauses.push((Occur::Must, Box::new(TermSetQuery::new(terms))));
        }
        for w in &self.words {
            clauses.push((Occur::Must, term(f.words, w)));
        }
        if self.occurred_since.is_some() || self.occurred_until.is_some() {
            let bound = |t: Option<i64>| match t {
                Some(t) => Bound::Included(Term::from_field_i64(f.occurred, t)),
                None => Bound::Unbounded,
            };
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    bound(self.occurred_since),
                    bound(self.occurred_until),
                )),
            ));
        }
        if !except.is_empty() {
            let terms = except.iter().map(|id| Term::from_field_bytes(f.id, &id.0));
            clauses.push((Occur::MustNot, Box::new(TermSetQuery::new(terms))));
        }
        Box::new(BooleanQuery::new(clauses))
    }
}

/// The index's fields.
#[derive(Clone, Copy, Debug)]
struct Fields {
    arrival: Field,
    id: Field,
    site: Field,
    category: Field,
    priority: Field,
    occurred: Field,
    words: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let numeric = NumericOptions::default().set_indexed().set_fast();
    let words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(WORDS_TOKENIZER)
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        arrival: b.add_u64_field("arrival", numeric.clone()),
        id: b.add_bytes_field("id", INDEXED),
        site: b.add_text_field("site", STRING),
        category: b.add_text_field("category", STRING),
        priority: b.add_text_field("priority", STRING),
        occurred: b.add_i64_field("occurred", numeric),
        words: b.add_text_field("words", words),
    };
    (b.build(), fields)
}

fn document(f: &Fields, r: &StoredReport) -> TantivyDocument {
    let mut d = TantivyDocument::default();
    d.add_u64(f.arrival, r.arrival);
    d.add_bytes(f.id, &r.report.id.0[..]);
    d.add_text(f.site, r.site.as_str());
    d.add_text(f.category, &r.report.category);
    d.add_text(f.priority, r.report.priority.as_str());
    d.add_i64(f.occurred, r.report.occurred_at.0);
    d.add_text(
        f.words,
        report_words(&r.report.title, &r.report.body).join(" "),
    );
    d
}

/// What a commit's payload says.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Payload {
    format: u64,
    next: u64,
}

/// A committed view of the index: every stored report with an arrival number below `next` is
/// in it at its latest revision as of the commit.
struct View {
    searcher: Searcher,
    next: u64,
}

/// The report index; see the module documentation.
pub struct ReportIndex {
    dir: PathBuf,
    index: Index,
    fields: Fields,
    reader: IndexReader,
    view: RwLock<Arc<View>>,
    signal: pasopati_common::task::Wakeup,
}

/// A page of reports and how many match in all.
#[derive(Debug, Default)]
pub struct Found {
    pub reports: Vec<StoredReport>,
    pub total: usize,
    /// `total` is a lower bound: a list on PostgreSQL stops counting past
    /// [`ReportFilter::count_bound`] (counting a million matches exactly there reads every one;
    /// tantivy counts them all).
    pub at_least: bool,
}

/// The most matches a PostgreSQL list counts one by one; past it, lists say "lebih dari".
pub const COUNT_BOUND: usize = 10_000;

/// The same for a PostgreSQL search with words. Its count reads the table for each match (a
/// GIN index cannot answer a count alone), so it stops sooner: 10,000 matches took a second at
/// ten million reports, 1,000 a tenth of that (measured with `bench-dashboard`).
pub const WORD_COUNT_BOUND: usize = 1_000;

/// How many match, as lists show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Total {
    pub count: usize,
    /// `count` is a lower bound (see [`Found::at_least`]).
    pub at_least: bool,
}

impl From<usize> for Total {
    fn from(count: usize) -> Total {
        Total {
            count,
            at_least: false,
        }
    }
}

impl std::fmt::Display for Total {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.at_least {
            write!(f, "lebih dari {}", self.count)
        } else {
            write!(f, "{}", self.count)
        }
    }
}

impl ReportIndex {
    /// Opens the index in `data_dir` (`index/reports`), making it, or making it anew if it is
    /// damaged or of another format.
    pub fn open(data_dir: &Path) -> Result<ReportIndex, IndexError> {
        let dir = data_dir.join("index").join("reports");
        match Self::open_dir(&dir) {
            Ok(index) => Ok(index),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "the report index cannot be used as it is; it is rebuilt from the store");
                let _ = std::fs::remove_dir_all(&dir);
                Self::open_dir(&dir)
            }
        }
    }

    fn open_dir(dir: &Path) -> Result<ReportIndex, IndexError> {
        let err = |message: String| IndexError::Index {
            dir: dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
        let (schema, fields) = schema();
        let exists = dir.join("meta.json").exists();
        let index = if exists {
            Index::open_in_dir(dir).map_err(|e| err(e.to_string()))?
        } else {
            Index::create_in_dir(dir, schema.clone()).map_err(|e| err(e.to_string()))?
        };
        if index.schema() != schema {
            return Err(err("its fields are not this version's".into()));
        }
        Self::with_index(index, fields, dir)
    }

    /// An index held in memory, for admin commands run without the daemon (they list no
    /// reports through it, and must not make files the daemon's user cannot write).
    pub fn in_memory() -> Result<ReportIndex, IndexError> {
        let (schema, fields) = schema();
        Self::with_index(Index::create_in_ram(schema), fields, Path::new("(memory)"))
    }

    fn with_index(index: Index, fields: Fields, dir: &Path) -> Result<ReportIndex, IndexError> {
        let err = |message: String| IndexError::Index {
            dir: dir.display().to_string(),
            message,
        };
        index.tokenizers().register(
            WORDS_TOKENIZER,
            TextAnalyzer::from(WhitespaceTokenizer::default()),
        );
        let next = match index.load_metas().map_err(|e| err(e.to_string()))?.payload {
            None => 0,
            Some(text) => {
                let payload: Payload =
                    serde_json::from_str(&text).map_err(|e| err(e.to_string()))?;
                if payload.format != FORMAT {
                    return Err(err(format!(
                        "it is of format {}, this version uses {FORMAT}",
                        payload.format
                    )));
                }
                payload.next
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(|e| err(e.to_string()))?;
        let view = RwLock::new(Arc::new(View {
            searcher: reader.searcher(),
            next,
        }));
        Ok(ReportIndex {
            dir: dir.to_owned(),
            index,
            fields,
            reader,
            view,
            signal: pasopati_common::task::Wakeup::default(),
        })
    }

    fn error(&self, e: impl std::fmt::Display) -> IndexError {
        IndexError::Index {
            dir: self.dir.display().to_string(),
            message: e.to_string(),
        }
    }

    fn view(&self) -> Arc<View> {
        match self.view.read() {
            Ok(v) => v.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The first arrival number the committed index has not taken.
    pub fn next_arrival(&self) -> u64 {
        self.view().next
    }

    /// Tells the feeder that reports were stored or released. Cheap and never blocking.
    pub fn reports_stored(&self) {
        self.signal.raise();
    }

    /// The reports matching `filter` at their latest revision, newest first: `limit` of them
    /// after skipping `offset`, with how many match in all. Reads the page's reports and the
    /// store's tail, never every report.
    pub fn find(
        &self,
        store: &Store,
        filter: &ReportFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Found, IndexError> {
        if *filter == ReportFilter::default() {
            // Everything, newest first (the default list): the store answers it by reading only
            // the page, and counts the shown reports without reading them.
            let total = store.shown_count()? as usize;
            let reports = store.newest_shown(offset, limit)?;
            return Ok(Found {
                reports,
                total,
                at_least: false,
            });
        }
        if let Some(pg) = store.as_postgres() {
            // The database holds the index every collector on it shares.
            let (reports, total, at_least) = pg.find_reports(filter, offset, limit)?;
            return Ok(Found {
                reports,
                total,
                at_least,
            });
        }
        // The released reports are read before the view is taken: the feeder forgets one only
        // after committing it, so whichever view this query then takes either holds it or
        // leaves it to this list. (Read after the view, a commit in between could hide it.)
        let released = store.late_for_index()?;
        let view = self.view();
        // The tail: reports the view does not hold yet, newest first.
        let mut tail_ids = Vec::new();
        let mut newer = Vec::new();
        let mut newer_matches = 0usize;
        let window = offset..offset.saturating_add(limit);
        store.newest_from(view.next, |r| {
            tail_ids.push(r.report.id);
            if filter.matches(&r) {
                if window.contains(&newer_matches) {
                    newer.push(r);
                }
                newer_matches += 1;
            }
        })?;
        // A released report the tail holds a newer revision of is no longer the one shown.
        let superseded: std::collections::HashSet<ReportId> = tail_ids.iter().copied().collect();
        let mut late = Vec::new();
        for r in released.into_iter().filter_map(|(_, r)| r) {
            if r.arrival < view.next && !superseded.contains(&r.report.id) {
                tail_ids.push(r.report.id);
                if filter.matches(&r) {
                    late.push(r);
                }
            }
        }
        late.sort_by_key(|r| std::cmp::Reverse(r.arrival));
        let query = filter.query(&self.fields, &tail_ids);
        let count = view
            .searcher
            .search(&*query, &Count)
            .map_err(|e| self.error(e))?;
        let total = newer_matches + late.len() + count;
        let mut page = newer;
        if page.len() < limit && offset + page.len() < total {
            // The rest of the window lies in the index and the late reports merged by arrival.
            let start = offset.saturating_sub(newer_matches);
            let end = (offset + limit).saturating_sub(newer_matches);
            let from = start.saturating_sub(late.len());
            let arrivals = self.arrivals(&view.searcher, &*query, from, end - from)?;
            // Where each lands in the merged order: its rank among the index's matches plus the
            // late reports above it, or for a late report, the index's matches above it plus
            // the late reports above it.
            let mut merged: Vec<(usize, Result<u64, StoredReport>)> = Vec::new();
            for (i, a) in arrivals.into_iter().enumerate() {
                let above = late.iter().filter(|r| r.arrival > a).count();
                merged.push((from + i + above, Ok(a)));
            }
            for (k, r) in late.into_iter().enumerate() {
                let above = self.count_above(&view.searcher, filter, &tail_ids, r.arrival)?;
                merged.push((above + k, Err(r)));
            }
            merged.retain(|(position, _)| (start..end).contains(position));
            merged.sort_by_key(|(position, _)| *position);
            let wanted: Vec<u64> = merged
                .iter()
                .filter_map(|(_, m)| m.as_ref().ok().copied())
                .collect();
            let mut read = store.reports_at(&wanted)?.into_iter();
            for (_, m) in merged {
                match m {
                    Ok(_) => page.extend(read.next().flatten()),
                    Err(r) => page.push(r),
                }
            }
        }
        Ok(Found {
            reports: page,
            total,
            at_least: false,
        })
    }

    /// The arrival numbers of the index's matches of `query`, newest first, `limit` of them
    /// after skipping `offset`.
    fn arrivals(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<u64>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let top = TopDocs::with_limit(limit)
            .and_offset(offset)
            .order_by_u64_field("arrival", Order::Desc);
        let found = searcher.search(query, &top).map_err(|e| self.error(e))?;
        Ok(found.into_iter().filter_map(|(a, _)| a).collect())
    }

    /// How many of the index's matches arrived after `arrival`.
    fn count_above(
        &self,
        searcher: &Searcher,
        filter: &ReportFilter,
        except: &[ReportId],
        arrival: u64,
    ) -> Result<usize, IndexError> {
        let query = BooleanQuery::new(vec![
            (Occur::Must, filter.query(&self.fields, except)),
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Excluded(Term::from_field_u64(self.fields.arrival, arrival)),
                    Bound::Unbounded,
                )),
            ),
        ]);
        searcher.search(&query, &Count).map_err(|e| self.error(e))
    }

    /// The index's one writer. It holds a lock file in the index directory until dropped.
    pub fn writer(&self) -> Result<IndexWriter<TantivyDocument>, IndexError> {
        self.index
            .writer_with_num_threads(1, WRITER_MEMORY)
            .map_err(|e| self.error(e))
    }

    /// Takes what the store holds beyond the index into it with `writer`, until the store has
    /// no more or `stop` says so (asked between pages, where the daemon's feeder also paces
    /// itself), committing at least every [`COMMIT_EVERY`] and at the end.
    /// Returns how many reports it took. Blocking; for the feeder thread and for tests.
    pub fn feed(
        &self,
        writer: &mut IndexWriter<TantivyDocument>,
        store: &Store,
        stop: &dyn Fn() -> bool,
    ) -> Result<usize, IndexError> {
        if let Some(pg) = store.as_postgres() {
            return feed_database(pg, stop);
        }
        let mut feeder = Feeder {
            index: self,
            writer,
            next: self.next_arrival(),
            uncommitted: 0,
            late: Vec::new(),
            last_commit: Instant::now(),
        };
        let mut total = 0;
        loop {
            let (taken, caught_up) = feeder.take_page(store)?;
            total += taken;
            if caught_up || stop() {
                feeder.commit(store)?;
                return Ok(total);
            }
            if feeder.last_commit.elapsed() >= COMMIT_EVERY {
                feeder.commit(store)?;
            }
        }
    }

    /// The first arrival the index in use has not taken: this one's, or on a PostgreSQL
    /// store, the database's.
    pub fn taken_through(&self, store: &Store) -> Result<u64, IndexError> {
        match store.as_postgres() {
            Some(pg) => Ok(pg.report_index_mark()?),
            None => Ok(self.next_arrival()),
        }
    }

    /// Takes everything the store holds beyond the index, with a writer of its own. For tests
    /// and tools; the daemon runs [`spawn_feeder`].
    pub fn catch_up(&self, store: &Store) -> Result<usize, IndexError> {
        let mut writer = self.writer()?;
        self.feed(&mut writer, store, &|| false)
    }
}

/// The feeder's work on a PostgreSQL store: the database's index takes the arrivals past its
/// mark, a page per transaction, until it has caught up or `stop` says so.
fn feed_database(
    pg: &crate::store::pg::PgStore,
    stop: &dyn Fn() -> bool,
) -> Result<usize, IndexError> {
    let mut total = 0;
    loop {
        let (taken, caught_up) = pg.feed_report_index(PAGE as u64)?;
        total += taken as usize;
        if caught_up || stop() {
            return Ok(total);
        }
    }
}

/// The feeder's state between commits.
struct Feeder<'a> {
    index: &'a ReportIndex,
    writer: &'a mut IndexWriter<TantivyDocument>,
    /// The first arrival not taken yet (committed or not).
    next: u64,
    uncommitted: usize,
    /// Released reports taken, to be forgotten by the store once committed.
    late: Vec<u64>,
    last_commit: Instant,
}

impl Feeder<'_> {
    fn put(&mut self, r: &StoredReport) -> Result<(), IndexError> {
        let f = &self.index.fields;
        self.writer
            .delete_term(Term::from_field_bytes(f.id, &r.report.id.0[..]));
        self.writer
            .add_document(document(f, r))
            .map_err(|e| self.index.error(e))?;
        self.uncommitted += 1;
        Ok(())
    }

    /// Takes the released reports not taken yet and a page of the store beyond `through`.
    /// Returns how many it took and whether the store has nothing more.
    fn take_page(&mut self, store: &Store) -> Result<(usize, bool), IndexError> {
        let mut taken = 0;
        for (arrival, report) in store.late_for_index()? {
            if self.late.contains(&arrival) {
                continue;
            }
            if let Some(r) = report {
                self.put(&r)?;
                taken += 1;
            }
            self.late.push(arrival);
        }
        let (page, next) = store.latest_from(self.next, PAGE)?;
        for r in &page {
            self.put(r)?;
        }
        taken += page.len();
        let caught_up = next == self.next;
        self.next = next;
        Ok((taken, caught_up && taken == 0))
    }

    fn commit(&mut self, store: &Store) -> Result<(), IndexError> {
        let committed = self.index.next_arrival();
        if self.uncommitted == 0 && self.next == committed && self.late.is_empty() {
            return Ok(());
        }
        let payload = serde_json::to_string(&Payload {
            format: FORMAT,
            next: self.next,
        })
        .map_err(|e| self.index.error(e))?;
        let mut prepared = self
            .writer
            .prepare_commit()
            .map_err(|e| self.index.error(e))?;
        prepared.set_payload(&payload);
        prepared.commit().map_err(|e| self.index.error(e))?;
        self.index
            .reader
            .reload()
            .map_err(|e| self.index.error(e))?;
        let view = Arc::new(View {
            searcher: self.index.reader.searcher(),
            next: self.next,
        });
        match self.index.view.write() {
            Ok(mut v) => *v = view,
            Err(poisoned) => *poisoned.into_inner() = view,
        }
        // Only now: until the commit, queries must still take them from the store.
        store.forget_late_for_index(&self.late)?;
        self.late.clear();
        self.uncommitted = 0;
        self.last_commit = Instant::now();
        Ok(())
    }
}

/// Runs the feeder on its own thread until `stop` is cancelled; join the handle to wait for it.
/// Between rounds it waits for a signal, but at least [`COMMIT_AT_MOST_EVERY`], so that a
/// steady stream of small batches makes a commit per interval and not one per batch.
pub fn spawn_feeder(
    index: Arc<ReportIndex>,
    store: Arc<Store>,
    stop: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("report-index".into())
        .spawn(move || {
            pasopati_common::task::lower_this_thread_priority(NICE);
            // Paced as the placer is, for the same reason.
            let pacer = Pacer::new(&index.signal, crate::newsroom::placer::SHARE_WHILE_STORING);
            let between_pages = || pacer.stop_or_pause(|| stop.is_cancelled());
            let mut failures = 0u32;
            let mut writer = None;
            while !stop.is_cancelled() {
                let started = Instant::now();
                pacer.resume();
                let round = match (store.as_postgres(), writer.as_mut()) {
                    (Some(pg), _) => feed_database(pg, &between_pages),
                    (None, Some(w)) => index.feed(w, &store, &between_pages),
                    (None, None) => index
                        .writer()
                        .and_then(|w| index.feed(writer.insert(w), &store, &between_pages)),
                };
                if let Err(e) = round {
                    // A failed writer is dropped (a new one starts from the last commit). The
                    // lock can be held for a moment by a collector of this process that is
                    // stopping; anything else is logged once a minute.
                    writer = None;
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(60) {
                        tracing::warn!(error = %e, "the report index could not take the latest reports; lists and searches read them from the store meanwhile");
                    }
                    std::thread::sleep(IDLE_LOOK);
                    continue;
                }
                failures = 0;
                // The round's last page, too, is followed by its pause (unless stopping).
                between_pages();
                if let Some(rest) = COMMIT_AT_MOST_EVERY.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
                index.signal.wait(IDLE_LOOK);
            }
        })
}

/// Wakes the feeder so that it sees `stop` at once.
pub fn wake(index: &ReportIndex) {
    index.signal.raise();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fixtures::{apply, report, site, store, T0};
    use crate::store::{SiteRecord, SiteStatus};
    use pasopati_common::fixtures::SimRng;
    use pasopati_common::frame::Batch;
    use pasopati_common::{Epoch, Priority, Report, SiteId, SiteType, Timestamp};

    const WORDS: [&str; 6] = [
        "razia",
        "panen",
        "kebakaran",
        "pelatihan",
        "kunjungan",
        "sidang",
    ];
    const CATEGORIES: [&str; 3] = ["humas", "keamanan_ketertiban", "layanan_kunjungan"];

    fn other_site() -> SiteId {
        SiteId::new("rutan-contoh").unwrap()
    }

    /// What the index must answer, read the slow way: every shown report, newest first.
    fn expected(
        s: &Store,
        filter: &ReportFilter,
        offset: usize,
        limit: usize,
    ) -> (Vec<u64>, usize) {
        let mut all = Vec::new();
        s.newest_from(0, |r| all.push(r)).unwrap();
        let matching: Vec<u64> = all
            .iter()
            .filter(|r| filter.matches(r))
            .map(|r| r.arrival)
            .collect();
        let page = matching.iter().skip(offset).take(limit).copied().collect();
        (page, matching.len())
    }

    fn random_report(rng: &mut SimRng, n: u64) -> Report {
        let mut r = report(n);
        r.category = CATEGORIES[rng.below(3) as usize].into();
        r.priority = if rng.chance(200) {
            Priority::Urgent
        } else {
            Priority::Normal
        };
        r.occurred_at = Timestamp(T0 + rng.below(10) as i64 * 86_400_000);
        r.filed_at = Timestamp(T0 + 15 * 86_400_000);
        let a = WORDS[rng.below(6) as usize];
        let b = WORDS[rng.below(6) as usize];
        r.title = format!("Kegiatan {a} di blok {n}");
        r.body = format!("Petugas melaporkan {b}.");
        r
    }

    fn random_filter(rng: &mut SimRng) -> ReportFilter {
        let mut f = ReportFilter::default();
        if rng.chance(300) {
            f.words.push(stems(WORDS[rng.below(6) as usize]).remove(0));
        }
        if rng.chance(100) {
            f.words.push(stems(WORDS[rng.below(6) as usize]).remove(0));
        }
        if rng.chance(300) {
            f.category = Some(CATEGORIES[rng.below(3) as usize].into());
        }
        if rng.chance(200) {
            f.priority = Some(["urgent", "normal"][rng.below(2) as usize].into());
        }
        if rng.chance(300) {
            let mut sites = BTreeSet::new();
            if rng.chance(500) {
                sites.insert(site().to_string());
            }
            if rng.chance(500) {
                sites.insert(other_site().to_string());
            }
            f.sites = Some(sites);
        }
        if rng.chance(200) {
            f.occurred_since = Some(T0 + rng.below(10) as i64 * 86_400_000);
        }
        if rng.chance(200) {
            f.occurred_until = Some(T0 + rng.below(10) as i64 * 86_400_000);
        }
        f
    }

    #[test]
    fn lists_and_counts_agree_with_reading_every_report_whatever_the_index_has_taken() {
        for seed in [7, 11, 99] {
            random_operations(seed);
        }
    }

    fn random_operations(seed: u64) {
        let (dir, s) = store();
        s.add_site(
            &SiteRecord::new(
                other_site(),
                "Rutan Contoh".into(),
                SiteType::Rutan,
                "Contoh".into(),
                SiteStatus::Active,
                Timestamp(0),
            ),
            "test",
        )
        .unwrap();
        let mut index = ReportIndex::open(dir.path()).unwrap();
        let mut writer = Some(index.writer().unwrap());
        let mut rng = SimRng::new(seed);
        let sites = [site(), other_site()];
        let mut next_seq = [1u64, 1u64];
        let mut next_id = 1u64;
        let mut shown: Vec<Report> = Vec::new();
        let now = Timestamp(T0 + 20 * 86_400_000);
        let (mut queries, mut releases, mut partial) = (0, 0, 0);
        for step in 0..600 {
            match rng.below(100) {
                // New reports from one site.
                0..=29 => {
                    let k = rng.below(2) as usize;
                    let n = 1 + rng.below(5);
                    let reports: Vec<Report> = (0..n)
                        .map(|_| {
                            next_id += 1;
                            random_report(&mut rng, next_id)
                        })
                        .collect();
                    shown.extend(reports.iter().cloned());
                    let b = Batch {
                        first_seq: next_seq[k],
                        reports,
                    };
                    apply(&s, &sites[k], Epoch(1), &b, now);
                    next_seq[k] += n;
                }
                // A new revision of a shown report, clean or carrying identity data (held in
                // quarantine, then sometimes released by an admin who judges it clean).
                30..=44 if !shown.is_empty() => {
                    let i = rng.below(shown.len() as u64) as usize;
                    let mut next = random_report(&mut rng, 0);
                    next.id = shown[i].id;
                    next.revision = shown[i].revision + 1;
                    let owner = usize::from(s.report(&next.id).unwrap().unwrap().site != site());
                    let quarantine = rng.chance(400);
                    if quarantine {
                        next.body = "Hubungi 081234567890".into();
                    }
                    let b = Batch {
                        first_seq: next_seq[owner],
                        reports: vec![next.clone()],
                    };
                    apply(&s, &sites[owner], Epoch(1), &b, now);
                    next_seq[owner] += 1;
                    let revision = next.revision;
                    if !quarantine || rng.chance(600) {
                        shown[i] = next;
                    }
                    if quarantine && shown[i].revision == revision {
                        let held = s.quarantine().unwrap();
                        let arrival = held.last().unwrap().report.arrival;
                        s.release_quarantined(arrival, "admin", "bukan data identitas", now)
                            .unwrap()
                            .unwrap();
                        releases += 1;
                    }
                }
                // The feeder takes part or all of what is new, or the index is reopened.
                45..=59 => {
                    let w = writer.as_mut().unwrap();
                    if rng.chance(500) {
                        index.feed(w, &s, &|| true).unwrap();
                        partial += 1;
                    } else {
                        index.feed(w, &s, &|| false).unwrap();
                    }
                }
                60..=62 => {
                    drop(writer.take());
                    index = ReportIndex::open(dir.path()).unwrap();
                    // A dropped writer's threads may hold the index's lock a moment longer.
                    let mut reopened = index.writer();
                    for _ in 0..200 {
                        if reopened.is_ok() {
                            break;
                        }
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        reopened = index.writer();
                    }
                    writer = Some(reopened.unwrap());
                }
                _ => {
                    let filter = random_filter(&mut rng);
                    let offset = rng.below(12) as usize;
                    let limit = 1 + rng.below(8) as usize;
                    let found = index.find(&s, &filter, offset, limit).unwrap();
                    let got: Vec<u64> = found.reports.iter().map(|r| r.arrival).collect();
                    let (want, total) = expected(&s, &filter, offset, limit);
                    assert_eq!(
                        (got, found.total),
                        (want, total),
                        "seed {seed} step {step}: {filter:?} offset {offset} limit {limit}, index from {}",
                        index.next_arrival()
                    );
                    queries += 1;
                }
            }
        }
        assert!(
            queries > 100 && releases > 3 && partial > 10,
            "{queries} {releases} {partial}"
        );
        // Every shown revision is what the lists show, once.
        let all = index.find(&s, &ReportFilter::default(), 0, 10_000).unwrap();
        assert_eq!(all.total, shown.len());
        index.catch_up(&s).ok();
    }

    #[test]
    fn a_report_released_from_quarantine_is_listed_in_its_place_before_the_index_takes_it() {
        let (dir, s) = store();
        let now = Timestamp(T0 + 10);
        apply(
            &s,
            &site(),
            Epoch(1),
            &pasopati_common::fixtures::batch(1, 10),
            now,
        );
        let mut held = report(3);
        held.revision = 1;
        held.body = "Hubungi 081234567890".into();
        let b = Batch {
            first_seq: 11,
            reports: vec![held],
        };
        apply(&s, &site(), Epoch(1), &b, now);
        let arrival = s.quarantine().unwrap()[0].report.arrival;
        apply(
            &s,
            &site(),
            Epoch(1),
            &pasopati_common::fixtures::batch(12, 10),
            now,
        );
        let index = ReportIndex::open(dir.path()).unwrap();
        index.catch_up(&s).unwrap();
        s.release_quarantined(arrival, "admin", "nomor kantor, bukan identitas", now)
            .unwrap()
            .unwrap();
        // Every fixture report is `humas`; a filter, so that the index answers (the empty filter
        // is answered by the store alone).
        let all = ReportFilter {
            category: Some("humas".into()),
            ..ReportFilter::default()
        };
        let check = |index: &ReportIndex| {
            for offset in 0..22 {
                let found = index.find(&s, &all, offset, 3).unwrap();
                let got: Vec<u64> = found.reports.iter().map(|r| r.arrival).collect();
                assert_eq!(
                    (got, found.total),
                    expected(&s, &all, offset, 3),
                    "offset {offset}"
                );
            }
        };
        // Released, not taken yet: in its place among the indexed ones, and its first
        // revision (indexed) no longer listed.
        assert_eq!(s.late_for_index().unwrap().len(), 1);
        check(&index);
        let page = index.find(&s, &all, 0, 100).unwrap();
        assert_eq!(page.total, 20);
        assert!(page.reports.iter().any(|r| r.arrival == arrival));
        index.catch_up(&s).unwrap();
        assert!(s.late_for_index().unwrap().is_empty());
        check(&index);
    }

    /// The tantivy index serves a redb store only (PostgreSQL keeps its own, in the database).
    #[test]
    fn an_index_of_another_format_or_damaged_is_built_again_from_the_store() {
        let (dir, s) = crate::store::fixtures::redb_store();
        apply(
            &s,
            &site(),
            Epoch(1),
            &pasopati_common::fixtures::batch(1, 20),
            Timestamp(T0),
        );
        let index = ReportIndex::open(dir.path()).unwrap();
        assert_eq!(index.catch_up(&s).unwrap(), 20);
        let next = index.next_arrival();
        drop(index);
        // Reopened: what was taken stays taken.
        let index = ReportIndex::open(dir.path()).unwrap();
        assert_eq!(index.next_arrival(), next);
        assert_eq!(index.catch_up(&s).unwrap(), 0);
        drop(index);
        // Damaged: built again, and the lists are right meanwhile and after.
        let meta = dir.path().join("index").join("reports").join("meta.json");
        std::fs::write(&meta, b"{ not json").unwrap();
        let index = ReportIndex::open(dir.path()).unwrap();
        assert_eq!(index.next_arrival(), 0);
        assert_eq!(
            index
                .find(&s, &ReportFilter::default(), 0, 5)
                .unwrap()
                .total,
            20
        );
        assert_eq!(index.catch_up(&s).unwrap(), 20);
        assert_eq!(
            index
                .find(&s, &ReportFilter::default(), 0, 5)
                .unwrap()
                .total,
            20
        );
    }
}
