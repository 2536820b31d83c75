-- +goose Up
-- Event retention (store.PrunePolicy). class is the event's retention class
-- (events.ClassOf of its type: 'request' or 'audit'), recorded when it is
-- stored so that a later change of the classification never shortens the
-- retention of an event already kept. size estimates the bytes the row holds:
-- the JSON body, the indexed copies (type, outcome, namespace, function,
-- request_id) and 64 for the row header and index entries. event_totals keeps
-- the count and size per class, updated in the transactions that insert and
-- delete events, so the size of the log is known without a scan. Pruning
-- deletes in (class, time, id) order. events.id stays AUTOINCREMENT: a pruned
-- id is never given again (sqlite_sequence keeps the highest; PostgreSQL:
-- an identity column).
ALTER TABLE events ADD COLUMN class TEXT NOT NULL DEFAULT 'audit';
ALTER TABLE events ADD COLUMN size BIGINT NOT NULL DEFAULT 0;

-- Events stored before this migration, classified as events.ClassOf did
-- when it was written.
UPDATE events SET
    class = CASE
        WHEN type IN ('route.auth', 'request.invalid', 'function.trap', 'dlp.response',
                      'capability.denied', 'egress.request')
          OR (type >= 'limit.' AND type < 'limit/') THEN 'request'
        ELSE 'audit'
    END,
    size = length(CAST(body AS BLOB)) + length(CAST(type AS BLOB)) + length(CAST(outcome AS BLOB))
         + length(CAST(namespace AS BLOB)) + length(CAST(function AS BLOB))
         + length(CAST(request_id AS BLOB)) + 64;

CREATE INDEX events_class_time ON events (class, time, id);

CREATE TABLE event_totals (
    class  TEXT   NOT NULL PRIMARY KEY,
    events BIGINT NOT NULL,
    bytes  BIGINT NOT NULL
);

INSERT INTO event_totals (class, events, bytes)
    SELECT class, COUNT(*), SUM(size) FROM events GROUP BY class;

-- +goose Down
DROP TABLE event_totals;
DROP INDEX events_class_time;
ALTER TABLE events DROP COLUMN size;
ALTER TABLE events DROP COLUMN class;
