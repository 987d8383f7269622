-- PASOPATI Edge collector store on PostgreSQL, schema version 3: the report index, what the
-- dashboard's report lists filter, count and search by, in the database itself (issue 16), so
-- that every collector on it shares one (collector/src/store/pg/search.rs).
--
-- One row per report: its latest stored revision, with the words of its title and body as
-- PostgreSQL's `indonesian` text search configuration (Snowball stemmer) reads them, under a
-- GIN index. It is derived from `revisions` after the commit, never in the ingest transaction
-- (computing the words there cost most of a report's time when measured): a feeder takes
-- arrivals in order and moves meta.report_index_next with them, in one transaction; a query
-- takes the index and, for arrivals at or past that mark, the revisions themselves, so it is
-- exact the moment a batch commits. A quarantined report released later is put in by the
-- release's own transaction.

CREATE TABLE report_index (
    report_id bytea PRIMARY KEY,
    arrival bigint NOT NULL UNIQUE,
    revision bigint NOT NULL,
    site text COLLATE "C" NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    occurred_at bigint NOT NULL,
    words tsvector NOT NULL
);
CREATE INDEX report_index_words ON report_index USING gin (words);
CREATE INDEX report_index_site ON report_index (site, arrival);
CREATE INDEX report_index_category ON report_index (category, arrival);
CREATE INDEX report_index_priority ON report_index (priority, arrival);
CREATE INDEX report_index_occurred ON report_index (occurred_at);

INSERT INTO meta (key, value) VALUES ('report_index_next', 0);
