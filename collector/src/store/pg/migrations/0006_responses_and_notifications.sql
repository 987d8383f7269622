-- PASOPATI Edge collector store on PostgreSQL, schema version 6: the units' official responses
-- to stories (collector/src/store/responses.rs), a numbered register like `publications`, and
-- the notification outbox.

CREATE TABLE official_responses (n bigint PRIMARY KEY, record bytea NOT NULL);

-- The notification outbox (collector/src/store/notifications.rs): each message under its id;
-- the notifier's cursor and the id counter are in `meta`.
CREATE TABLE notifications (n bigint PRIMARY KEY, record bytea NOT NULL);
