-- PASOPATI Edge collector store on PostgreSQL, schema version 2: the progress of
-- `pasopati-collector store migrate`, which moves a redb store into this database
-- (collector/src/store/pg/import.rs). One row per table being copied: how many of the source's
-- rows, in its key order, are in already. Each chunk of rows and its progress row are written in
-- one transaction, so a move stopped anywhere goes on from its last chunk.

CREATE TABLE store_import (
    tbl text COLLATE "C" PRIMARY KEY,
    -- Which redb store is being moved (the SHA-256 of its collector's CA certificate): a
    -- second store is never moved into a database half-filled from another.
    source text NOT NULL,
    copied bigint NOT NULL,
    done boolean NOT NULL
);
