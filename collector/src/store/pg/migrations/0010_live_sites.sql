-- PASOPATI Edge collector store on PostgreSQL, schema version 10: which sites have a live sync
-- session on which collector (collector/src/cluster.rs, `share_live_sites`), so that every
-- collector's dashboard, site list and notifications call a site online wherever its session
-- is. Each collector beats `alive_at` every second (the database's clock); the sites of a
-- collector that stopped beating for a few seconds are not counted.

CREATE TABLE collector_instances (
    instance text PRIMARY KEY,
    alive_at timestamptz NOT NULL
);

CREATE TABLE live_sites (
    instance text NOT NULL REFERENCES collector_instances ON DELETE CASCADE,
    site text NOT NULL,
    PRIMARY KEY (instance, site)
);
