-- PASOPATI Edge collector store on PostgreSQL, schema version 1 (issue 16).
--
-- Applied once by the migration runner (collector/src/store/pg/mod.rs), in one transaction, and
-- recorded with its SHA-256 in schema_migrations. Until the PostgreSQL backend is first released
-- this file may still change (a database made from an earlier text is refused by checksum and
-- must be made anew); from that release on, every change is a new numbered file.
--
-- Times are milliseconds since the Unix epoch (bigint), as the redb store keeps them; u64
-- counters are bigint. Records that are read whole and never queried by their fields stay bytea
-- holding the same bincode as the redb store, so both backends round-trip them byte for byte.

-- Key columns of text are compared byte by byte (COLLATE "C"), as the redb store orders them,
-- whatever the database's locale.

-- Counters and single numbers by name: next_arrival, audit_count, the registers' numbers, and
-- the counts of stored, quarantined and shown reports (moved in the transactions that change
-- them, since counting millions of rows is not free).
CREATE TABLE meta (
    key text COLLATE "C" PRIMARY KEY,
    value bigint NOT NULL
);
INSERT INTO meta (key, value) VALUES
    ('next_arrival', 0), ('audit_count', 0),
    ('stored_count', 0), ('quarantined_count', 0), ('shown_count', 0);

CREATE TABLE sites (
    id text COLLATE "C" PRIMARY KEY,
    status text NOT NULL CHECK (status IN ('pending', 'active', 'revoked')),
    kanwil text NOT NULL,
    -- The whole SiteRecord (bincode); the columns above are what queries and row locks need.
    record bytea NOT NULL
);
CREATE INDEX sites_by_kanwil ON sites (kanwil);

-- Enrollment tokens by the SHA-256 of their secret.
CREATE TABLE tokens (
    secret_hash bytea PRIMARY KEY,
    site text COLLATE "C" NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX tokens_by_site ON tokens (site);

-- High-water mark per (site, epoch), moved in the same transaction as the reports.
CREATE TABLE hwm (
    site text COLLATE "C" NOT NULL,
    epoch bigint NOT NULL,
    hwm bigint NOT NULL,
    PRIMARY KEY (site, epoch)
);

-- Every revision the collector received, stored or quarantined; arrival numbers are dense and
-- in commit order (one locked counter row, meta.next_arrival), as in the redb store.
CREATE TABLE revisions (
    arrival bigint PRIMARY KEY,
    site text COLLATE "C" NOT NULL,
    epoch bigint NOT NULL,
    seq bigint NOT NULL,
    report_id bytea NOT NULL,
    revision bigint NOT NULL,
    category text NOT NULL,
    priority text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    occurred_at bigint NOT NULL,
    received_at bigint NOT NULL,
    content_hash bytea NOT NULL,
    -- The whole StoredReport (bincode).
    record bytea NOT NULL,
    -- NULL: stored. Otherwise the PII findings that hold it in quarantine (bincode).
    findings bytea,
    -- The revision shown for its report id (the highest clean one).
    is_latest boolean NOT NULL DEFAULT false,
    UNIQUE (report_id, revision)
);
-- No text-search column here: computing it (to_tsvector with the Snowball stemmer, a GIN
-- insert) in the ingest transaction cost 120 of 130 µs per report when measured, so the report
-- search index is derived after the commit, like every other index (ARCHITECTURE, invariant 15).
CREATE UNIQUE INDEX revisions_latest ON revisions (report_id) WHERE is_latest;
CREATE INDEX revisions_newest ON revisions (arrival DESC) WHERE is_latest;
CREATE INDEX revisions_site_newest ON revisions (site, arrival DESC) WHERE is_latest;
CREATE INDEX revisions_quarantined ON revisions (arrival) WHERE findings IS NOT NULL;

-- Reports released from quarantine that the report index has not taken yet: it follows
-- arrivals, and a released report keeps its old one.
CREATE TABLE index_late (
    arrival bigint PRIMARY KEY
);

-- (site, epoch, seq) -> arrival, for replays.
CREATE TABLE positions (
    site text COLLATE "C" NOT NULL,
    epoch bigint NOT NULL,
    seq bigint NOT NULL,
    arrival bigint NOT NULL,
    PRIMARY KEY (site, epoch, seq)
);

-- The site that filed a report id: no other site may revise it.
CREATE TABLE owners (
    report_id bytea PRIMARY KEY,
    site text NOT NULL
);

-- The verdict on a position refused or quarantined, kept until the site has heard it.
CREATE TABLE verdicts (
    site text COLLATE "C" NOT NULL,
    epoch bigint NOT NULL,
    seq bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (site, epoch, seq)
);

CREATE TABLE gaps (
    site text COLLATE "C" NOT NULL,
    epoch bigint NOT NULL,
    from_seq bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (site, epoch, from_seq)
);

CREATE TABLE rejections (
    n bigint PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE heartbeats (
    site text COLLATE "C" NOT NULL,
    at bigint NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (site, at)
);

CREATE TABLE attachments_expected (
    site text COLLATE "C" NOT NULL,
    hash bytea NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (site, hash)
);

CREATE TABLE attachments (
    hash bytea PRIMARY KEY,
    record bytea NOT NULL
);

CREATE TABLE media (
    n bigint PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    record bytea NOT NULL
);

-- The numbered registers: claims, publications, analysts' story edits.
CREATE TABLE claims (n bigint PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE publications (n bigint PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE story_edits (n bigint PRIMARY KEY, record bytea NOT NULL);

CREATE TABLE users (
    username text COLLATE "C" PRIMARY KEY,
    record bytea NOT NULL
);

-- API tokens by the SHA-256 of their secret.
CREATE TABLE api_tokens (
    hash bytea PRIMARY KEY,
    username text COLLATE "C" NOT NULL,
    -- NULL for a token made before tokens expired (moved from an older redb store).
    info bytea
);

-- Dashboard sessions by the SHA-256 of their id: in the store, so that a user is not logged out
-- when the instance that served the login dies.
CREATE TABLE sessions (
    hash bytea PRIMARY KEY,
    username text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    record bytea NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (username);

CREATE TABLE media_engagement (id text COLLATE "C" PRIMARY KEY, record bytea NOT NULL);
CREATE TABLE source_health (key text COLLATE "C" PRIMARY KEY, record bytea NOT NULL);

CREATE TABLE risk (
    day bigint NOT NULL,
    unit text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (day, unit)
);
CREATE TABLE risk_days (day bigint PRIMARY KEY, n bigint NOT NULL);

-- The hash-chained audit log: appended only.
CREATE TABLE audit (
    seq bigint PRIMARY KEY,
    at bigint NOT NULL,
    actor text NOT NULL,
    action text NOT NULL,
    subject text NOT NULL,
    details text NOT NULL,
    prev_hash bytea NOT NULL,
    hash bytea NOT NULL
);
CREATE FUNCTION audit_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_is_append_only();
