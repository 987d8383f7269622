-- PASOPATI Edge collector store on PostgreSQL, schema version 6: the units' official responses
-- to stories (collector/src/store/responses.rs), a numbered register like `publications`.

CREATE TABLE official_responses (n bigint PRIMARY KEY, record bytea NOT NULL);
