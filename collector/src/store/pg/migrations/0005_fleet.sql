-- PASOPATI Edge collector store on PostgreSQL, schema version 5: running the fleet from the
-- center (collector/src/fleet/). `fleet` holds configuration layers, what each agent reports it
-- runs, releases and rollouts, each a JSON document under (kind, key), as the redb store's
-- `fleet` table does. `release_packages` holds each release's package, by its SHA-256, so that
-- every collector on the database can serve it whichever one it was added through.

CREATE TABLE fleet (
    kind text COLLATE "C" NOT NULL,
    key text COLLATE "C" NOT NULL,
    record bytea NOT NULL,
    PRIMARY KEY (kind, key)
);

CREATE TABLE release_packages (
    sha256 bytea PRIMARY KEY,
    bytes bytea NOT NULL
);
