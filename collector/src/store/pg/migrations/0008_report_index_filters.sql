-- PASOPATI Edge collector store on PostgreSQL, schema version 8: indexes that keep the
-- dashboard's filtered report lists as fast at ten million reports as at one (issue 16;
-- measured with bench-dashboard, figures in TESTING.md).
--
-- Each answers a filter the dashboard combines often by reading only its matches, from the
-- index alone where it can (collector/src/store/pg/search.rs counts without the table):
--   a Kanwil's or a site's reports of one priority (a regional user's urgent reports),
--   a site's reports in a time range, and the reports of one priority in a time range
--   (Ringkasan's urgent reports today).
-- The words' GIN index also holds the category (btree_gin), so that a search with a category
-- intersects the two inside one index scan instead of building a bitmap of each.
--
-- btree_gin is one of PostgreSQL's own extensions (in Debian's postgresql package) and is
-- trusted: the database's owner may create it without being a superuser. On a large store the
-- indexes take minutes to build; the collector applies this at start, before it serves.

CREATE EXTENSION IF NOT EXISTS btree_gin;

CREATE INDEX report_index_words_category ON report_index USING gin (words, category);
DROP INDEX report_index_words;
CREATE INDEX report_index_site_priority ON report_index (site, priority, arrival);
CREATE INDEX report_index_site_occurred ON report_index (site, occurred_at);
CREATE INDEX report_index_priority_occurred ON report_index (priority, occurred_at);
