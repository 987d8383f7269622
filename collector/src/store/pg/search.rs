//! The report index on PostgreSQL: the dashboard's report lists, counts and searches, answered
//! by the database every collector on it shares (the redb store's counterpart is the tantivy
//! index of `crate::report_index`, which answers the same [`ReportFilter`]).
//!
//! `report_index` holds each report's latest stored revision with what lists filter by, and its
//! words as PostgreSQL's `indonesian` text search configuration (a Snowball stemmer) reads
//! them, under a GIN index (schema version 3). It is derived after the commit: the feeder
//! ([`PgStore::feed_report_index`]) takes arrivals in order and moves
//! `meta.report_index_next` with them in one transaction. A query reads, in one snapshot, the
//! index below that mark and the revisions at or past it (the tail, a second's worth while the
//! feeder keeps up), leaving out of the index whatever the tail has a newer revision of; so it
//! is exact the moment a batch commits. A report released from quarantine is put in by the
//! release's transaction.

use super::store::{big, col, counter, dec, unbig, PgStore};
use crate::report_index::ReportFilter;
use crate::store::{StoreError, StoredReport};
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, IsolationLevel};

/// Puts the latest revisions among arrivals `$1 <= arrival < $2` into the index, replacing an
/// older revision of the same report. Also what a release runs for its one arrival.
pub(super) const INDEX_REVISIONS: &str = "INSERT INTO report_index (report_id, arrival,
         revision, site, category, priority, occurred_at, words)
     SELECT report_id, arrival, revision, site, category, priority, occurred_at,
            to_tsvector('indonesian', title || ' ' || body)
     FROM revisions WHERE arrival >= $1 AND arrival < $2 AND is_latest
     ON CONFLICT (report_id) DO UPDATE SET arrival = excluded.arrival,
         revision = excluded.revision, site = excluded.site, category = excluded.category,
         priority = excluded.priority, occurred_at = excluded.occurred_at, words = excluded.words
     WHERE report_index.revision <= excluded.revision";

/// A statement's text and its parameters, built together.
#[derive(Default)]
struct Sql {
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Adds a parameter; returns its placeholder.
    fn arg(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

impl PgStore {
    /// Takes the next `limit` arrivals into the report index (fewer if the store holds fewer).
    /// Returns how many reports went in and whether the index has caught up with the store.
    /// Collectors sharing the store take turns on the mark's row.
    pub fn feed_report_index(&self, limit: u64) -> Result<(u64, bool), StoreError> {
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c.transaction().await?;
            let next = txn
                .query_one(
                    "SELECT value FROM meta WHERE key = 'report_index_next' FOR UPDATE",
                    &[],
                )
                .await?;
            let next = unbig(col(&next, 0)?)?;
            let end = counter(&txn, "next_arrival", 0).await?;
            let to = end.min(next.saturating_add(limit));
            let mut taken = 0;
            if to > next {
                taken = txn
                    .execute(INDEX_REVISIONS, &[&big(next), &big(to)])
                    .await?;
                txn.execute(
                    "UPDATE meta SET value = $1 WHERE key = 'report_index_next'",
                    &[&big(to)],
                )
                .await?;
            }
            // Releases put themselves in; the redb store's late list is not needed here.
            txn.execute("DELETE FROM index_late WHERE arrival < $1", &[&big(to)])
                .await?;
            txn.commit().await?;
            Ok((taken, to == end))
        })
    }

    /// The first arrival the report index has not taken (below it, every stored report is in).
    pub fn report_index_mark(&self) -> Result<u64, StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            counter(&*c, "report_index_next", 0).await
        })
    }

    /// The bytes on disk of the report index (table and indexes) and of the whole database.
    pub fn report_index_and_database_bytes(&self) -> Result<(u64, u64), StoreError> {
        self.run(async {
            let c = self.pool.get().await?;
            let row = c
                .query_one(
                    "SELECT pg_total_relation_size('report_index'),
                            pg_database_size(current_database())",
                    &[],
                )
                .await?;
            Ok((unbig(col(&row, 0)?)?, unbig(col(&row, 1)?)?))
        })
    }

    /// The reports matching `filter` at their latest revision, newest first: `limit` of them
    /// after skipping `offset`, with how many match in all and whether that is a lower bound
    /// (more than [`ReportFilter::count_bound`] in the index: the count stops there).
    pub fn find_reports(
        &self,
        filter: &ReportFilter,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<StoredReport>, usize, bool), StoreError> {
        let mut sql = Sql::default();
        let mut conds: Vec<(String, String)> = Vec::new();
        let mut both = |column: &str, op: &str, placeholder: String| {
            conds.push((
                format!("i.{column} {op} {placeholder}"),
                format!("t.{column} {op} {placeholder}"),
            ));
        };
        if let Some(c) = &filter.category {
            both("category", "=", sql.arg(c.clone()));
        }
        if let Some(sites) = &filter.sites {
            // One site as an equality: PostgreSQL 15 reads an index in order only for that,
            // so a site's newest reports come from (site, arrival) backwards; `= ANY` of one
            // site scanned all arrivals backwards instead (132 ms at ten million, measured).
            match sites.first().filter(|_| sites.len() == 1) {
                Some(one) => both("site", "=", sql.arg(one.clone())),
                None => both(
                    "site",
                    "= ANY",
                    format!("({})", sql.arg(sites.iter().cloned().collect::<Vec<_>>())),
                ),
            }
        }
        if let Some(p) = &filter.priority {
            both("priority", "=", sql.arg(p.clone()));
        }
        if let Some(t) = filter.occurred_since {
            both("occurred_at", ">=", sql.arg(t));
        }
        if let Some(t) = filter.occurred_until {
            both("occurred_at", "<=", sql.arg(t));
        }
        // Words only where the lists' own reading of the text finds some (a search of stop
        // words alone filters nothing, on either backend).
        let text = filter.search_text();
        if !filter.words.is_empty() {
            let q = format!("plainto_tsquery('indonesian', {})", sql.arg(text));
            conds.push((
                format!("i.words @@ {q}"),
                format!("to_tsvector('indonesian', t.title || ' ' || t.body) @@ {q}"),
            ));
        }
        let next = sql.arg(0i64);
        let next_at = sql.params.len() - 1;
        let (limit_p, offset_p) = (sql.arg(big(limit as u64)), sql.arg(big(offset as u64)));
        let window = sql.arg(big(limit.saturating_add(offset) as u64));
        let counted_to = filter.count_bound();
        let bound = sql.arg(big(counted_to as u64 + 1));
        let and = |side: fn(&(String, String)) -> &String| -> String {
            conds.iter().map(|c| format!(" AND {}", side(c))).collect()
        };
        let (on_index, on_tail) = (and(|c| &c.0), and(|c| &c.1));
        // The index's matches are counted up to the bound only, and the page takes its newest
        // matches first: a search whose words are in most reports stops early on both, where
        // counting them all reads every match (628 ms at a million, measured).
        //
        // Both read the index alone where they can, so that PostgreSQL answers them from its
        // indexes without visiting the table (an index-only scan): the indexed rows matching
        // the filter, less those a newer revision in the tail shadows, found by their arrival.
        // That is the same set as "below the mark and not in the tail", because a row at or
        // past the mark (a release puts its own in) is always of a report the tail holds.
        // Asking the table for the mark and the report id of each match instead cost a random
        // page read per match: a second for 10,000 matches at ten million reports (measured).
        let query = format!(
            "WITH tail AS MATERIALIZED (
                 SELECT arrival, report_id, site, category, priority, occurred_at, title, body
                 FROM revisions WHERE arrival >= {next} AND is_latest),
             shadowed AS MATERIALIZED (
                 SELECT i.arrival FROM report_index i JOIN tail USING (report_id)
                 WHERE true{on_index})
             SELECT
                 (SELECT count(*) FROM (SELECT FROM report_index i WHERE true{on_index}
                     LIMIT {bound} + (SELECT count(*) FROM shadowed)) counted)
                   - (SELECT count(*) FROM shadowed),
                 (SELECT count(*) FROM tail t WHERE true{on_tail}),
                 ARRAY(SELECT arrival FROM (
                     (SELECT i.arrival FROM report_index i
                      WHERE i.arrival NOT IN (SELECT arrival FROM shadowed){on_index}
                      ORDER BY i.arrival DESC LIMIT {window})
                     UNION ALL
                     (SELECT t.arrival FROM tail t WHERE true{on_tail})
                 ) page ORDER BY arrival DESC LIMIT {limit_p} OFFSET {offset_p})"
        );
        self.run(async {
            let mut c = self.pool.get().await?;
            let txn = c
                .build_transaction()
                .isolation_level(IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let mark = counter(&txn, "report_index_next", 0).await?;
            sql.params[next_at] = Box::new(big(mark));
            let row = txn.query_one(&query, &sql.refs()).await?;
            let indexed = unbig(col(&row, 0)?)? as usize;
            let tail = unbig(col(&row, 1)?)? as usize;
            let arrivals: Vec<i64> = col(&row, 2)?;
            let rows = txn
                .query(
                    "SELECT record FROM revisions WHERE arrival = ANY($1) ORDER BY arrival DESC",
                    &[&arrivals],
                )
                .await?;
            let reports = rows
                .iter()
                .map(|r| dec::<StoredReport>(col::<&[u8]>(r, 0)?))
                .collect::<Result<Vec<_>, _>>()?;
            txn.commit().await?;
            let at_least = indexed > counted_to;
            Ok((reports, indexed.min(counted_to) + tail, at_least))
        })
    }
}

/// Puts a released revision into the report index in the release's transaction, if it is the
/// one shown now.
pub(super) async fn index_released(c: &impl GenericClient, arrival: u64) -> Result<(), StoreError> {
    c.execute(
        INDEX_REVISIONS,
        &[&big(arrival), &big(arrival.saturating_add(1))],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report_index::{COUNT_BOUND, WORD_COUNT_BOUND};
    use crate::store::fixtures::{apply, report, site, T0};
    use crate::store::pg::PgOptions;
    use crate::store::{Store, StoreLocation};
    use pasopati_common::frame::Batch;
    use pasopati_common::{Epoch, Timestamp};

    fn store(test: &str) -> Option<(tempfile::TempDir, Store)> {
        let url = match pasopati_common::pgtest::fresh_database() {
            Ok(url) => url,
            Err(e) => {
                pasopati_common::pgtest::skip_or_fail(test, &e.to_string());
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let options = PgOptions {
            url,
            ..PgOptions::default()
        };
        let s = Store::open_at(&StoreLocation::Postgres(options), dir.path()).unwrap();
        let (dir, s) = crate::store::fixtures::with_site(dir, s);
        Some((dir, s))
    }

    fn titled(n: u64, title: &str) -> pasopati_common::Report {
        let mut r = report(n);
        r.title = title.into();
        r
    }

    fn search(s: &Store, text: &str) -> (Vec<u64>, usize) {
        let filter = ReportFilter {
            words: crate::report_index::stems(text),
            text: text.into(),
            ..ReportFilter::default()
        };
        let (reports, total, _) = s
            .as_postgres()
            .unwrap()
            .find_reports(&filter, 0, 10)
            .unwrap();
        (reports.iter().map(|r| r.arrival).collect(), total)
    }

    /// A list matching more than its bound counts up to it and says so (a search with words
    /// sooner than a list without); the page is still the newest matches, and a rarer search
    /// is counted exactly.
    #[test]
    fn a_search_matching_more_than_the_bound_says_at_least() {
        let test = "a_search_matching_more_than_the_bound_says_at_least";
        let Some((_dir, s)) = store(test) else { return };
        let n = COUNT_BOUND as u64 + 40;
        for first in (1..=n).step_by(1_000) {
            let count = 1_000.min(n + 1 - first);
            apply(
                &s,
                &site(),
                Epoch(1),
                &pasopati_common::fixtures::batch(first, count),
                Timestamp(T0),
            );
        }
        let pg = s.as_postgres().unwrap();
        while !pg.feed_report_index(5_000).unwrap().1 {}
        // Ten more in the tail, past the index's mark.
        apply(
            &s,
            &site(),
            Epoch(1),
            &pasopati_common::fixtures::batch(n + 1, 10),
            Timestamp(T0),
        );
        let filter = |text: &str| ReportFilter {
            words: crate::report_index::stems(text),
            text: text.into(),
            ..ReportFilter::default()
        };
        let (page, total, at_least) = pg.find_reports(&filter("laporan"), 0, 5).unwrap();
        assert!(at_least);
        assert_eq!(total, WORD_COUNT_BOUND + 10);
        let newest: Vec<u64> = page.iter().map(|r| r.arrival).collect();
        assert_eq!(newest, [n + 9, n + 8, n + 7, n + 6, n + 5]);
        // Without words, the count goes on to the larger bound.
        let humas = ReportFilter {
            category: Some("humas".into()),
            ..ReportFilter::default()
        };
        let (page, total, at_least) = pg.find_reports(&humas, 0, 2).unwrap();
        assert_eq!((total, at_least), (COUNT_BOUND + 10, true));
        assert_eq!(page[0].arrival, n + 9);
        let (_, total, at_least) = pg.find_reports(&filter("laporan 7"), 0, 5).unwrap();
        assert_eq!(
            (total, at_least),
            (1, false),
            "only report 7 has the word 7"
        );
        // A word in no report: counted exactly.
        let (page, total, at_least) = pg.find_reports(&filter("kebakaran"), 0, 5).unwrap();
        assert_eq!((page.len(), total, at_least), (0, 0, false));
    }

    /// A revision in the tail of a report the index holds is counted and listed once, in the
    /// tail's place, by the count and the page alike (they leave the indexed row out by its
    /// arrival, so PostgreSQL can answer from its indexes).
    #[test]
    fn a_revision_past_the_mark_replaces_its_indexed_report_in_counts_and_pages() {
        let test = "a_revision_past_the_mark_replaces_its_indexed_report_in_counts_and_pages";
        let Some((_dir, s)) = store(test) else { return };
        apply(
            &s,
            &site(),
            Epoch(1),
            &pasopati_common::fixtures::batch(1, 5),
            Timestamp(T0),
        );
        let pg = s.as_postgres().unwrap();
        assert_eq!(pg.feed_report_index(100).unwrap(), (5, true));
        let mut revised = report(2);
        revised.revision = 1;
        revised.priority = pasopati_common::Priority::Urgent;
        let revision = Batch {
            first_seq: 6,
            reports: vec![revised],
        };
        apply(&s, &site(), Epoch(1), &revision, Timestamp(T0));
        let arrivals = |f: &ReportFilter| {
            let (page, total, at_least) = pg.find_reports(f, 0, 10).unwrap();
            assert!(!at_least);
            (page.iter().map(|r| r.arrival).collect::<Vec<_>>(), total)
        };
        let all = ReportFilter {
            sites: Some([site().to_string()].into()),
            ..ReportFilter::default()
        };
        assert_eq!(arrivals(&all), (vec![5, 4, 3, 2, 0], 5));
        let urgent = ReportFilter {
            priority: Some("urgent".into()),
            ..all.clone()
        };
        assert_eq!(arrivals(&urgent), (vec![5], 1));
        let normal = ReportFilter {
            priority: Some("normal".into()),
            ..all
        };
        assert_eq!(arrivals(&normal), (vec![4, 3, 2, 0], 4));
        // Once the feeder takes the revision, the same answers come from the index alone.
        assert_eq!(pg.feed_report_index(100).unwrap(), (1, true));
        assert_eq!(arrivals(&urgent), (vec![5], 1));
        assert_eq!(arrivals(&normal), (vec![4, 3, 2, 0], 4));
    }

    /// Words are matched as PostgreSQL's Indonesian stemmer reads them ("membina" finds
    /// "pembinaan"), through the GIN index below the feeder's mark and in the revisions past
    /// it alike.
    #[test]
    fn searches_stem_indonesian_words_in_the_index_and_the_tail_alike() {
        let test = "searches_stem_indonesian_words_in_the_index_and_the_tail_alike";
        let Some((_dir, s)) = store(test) else { return };
        let first = Batch {
            first_seq: 1,
            reports: vec![
                titled(1, "Kegiatan pembinaan kemandirian warga binaan"),
                titled(2, "Razia kamar hunian blok A"),
            ],
        };
        apply(&s, &site(), Epoch(1), &first, Timestamp(T0));
        let pg = s.as_postgres().unwrap();
        assert_eq!(pg.feed_report_index(100).unwrap(), (2, true));
        let later = Batch {
            first_seq: 3,
            reports: vec![titled(3, "Pelatihan membina usaha mandiri")],
        };
        apply(&s, &site(), Epoch(1), &later, Timestamp(T0));
        // 0 and 1 are in the index, 2 only in the tail.
        assert_eq!(search(&s, "membina"), (vec![2, 0], 2));
        assert_eq!(search(&s, "razia"), (vec![1], 1));
        assert_eq!(pg.feed_report_index(100).unwrap(), (1, true));
        assert_eq!(search(&s, "membina"), (vec![2, 0], 2));
        // A newer revision in the tail hides the indexed one.
        let mut revised = titled(2, "Razia gabungan kamar hunian");
        revised.revision = 1;
        let revision = Batch {
            first_seq: 4,
            reports: vec![revised],
        };
        apply(&s, &site(), Epoch(1), &revision, Timestamp(T0));
        assert_eq!(search(&s, "razia"), (vec![3], 1));
        assert_eq!(search(&s, "gabungan"), (vec![3], 1));
        // The words go through the GIN index.
        let plan = pg
            .run(async {
                let c = pg.pool.get().await?;
                c.batch_execute("SET enable_seqscan = off").await?;
                let rows = c
                    .query(
                        "EXPLAIN SELECT arrival FROM report_index
                         WHERE words @@ plainto_tsquery('indonesian', 'membina')",
                        &[],
                    )
                    .await?;
                c.batch_execute("RESET enable_seqscan").await?;
                Ok(rows
                    .iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n"))
            })
            .unwrap();
        assert!(plan.contains("report_index_words"), "{plan}");
    }
}
