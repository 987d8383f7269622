-- PASOPATI Edge collector store on PostgreSQL, schema version 9: the alerts the media desk
-- raised (collector/src/store/alerts.rs), each once by its key, numbered in commit order (the
-- writer holds a lock on the table while it numbers), so every collector's live event stream
-- reads the same alerts after its cursor.

CREATE TABLE alerts (
    number bigint PRIMARY KEY,
    key text NOT NULL UNIQUE,
    raised_at bigint NOT NULL,
    record text NOT NULL
);
