-- PASOPATI Edge collector store on PostgreSQL, schema version 7: the conditions each
-- notification rule has told and that still hold (collector/src/store/notifications.rs), written
-- in the same transaction as the messages that told them. The first unsent message's id is a
-- `meta` key, so the notifier reads only what it has still to send.

CREATE TABLE notify_active (name text PRIMARY KEY, keys bytea NOT NULL);
