-- PASOPATI Edge collector store on PostgreSQL, schema version 4: attachments' bytes, so that
-- every collector on the database can serve a photo or document whichever one received it
-- (collector/src/attachments.rs). Each collector keeps a copy in its data directory, made on
-- first use; this table holds the one every copy comes from. Written before the attachment is
-- recorded and acknowledged, like the file itself.

CREATE TABLE attachment_bytes (
    hash bytea PRIMARY KEY,
    bytes bytea NOT NULL
);
