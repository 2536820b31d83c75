-- warden's initial schema.
--
-- Portable on purpose: the PostgreSQL implementation uses the same tables,
-- columns and indexes. Types map one to one (BLOB -> bytea, the events id
-- becomes BIGINT GENERATED ALWAYS AS IDENTITY); every timestamp is a BIGINT
-- holding Unix nanoseconds in UTC; version numbers are INTEGER, sizes BIGINT.

-- +goose Up
CREATE TABLE artifacts (
    digest     TEXT   NOT NULL PRIMARY KEY, -- sha256 of data, lowercase hex
    size       BIGINT NOT NULL,
    data       BLOB   NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE functions (
    namespace      TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    active_version INTEGER NOT NULL DEFAULT 0, -- 0: no version active yet
    created_at     BIGINT  NOT NULL,
    updated_at     BIGINT  NOT NULL,
    PRIMARY KEY (namespace, name)
);

CREATE TABLE versions (
    namespace       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    version         INTEGER NOT NULL,
    digest          TEXT    NOT NULL,
    artifact_digest TEXT    NOT NULL REFERENCES artifacts (digest),
    artifact_size   BIGINT  NOT NULL,
    manifest        BLOB    NOT NULL,
    created_at      BIGINT  NOT NULL,
    created_by      TEXT    NOT NULL,
    PRIMARY KEY (namespace, name, version),
    FOREIGN KEY (namespace, name) REFERENCES functions (namespace, name) ON DELETE CASCADE
);

CREATE INDEX versions_artifact_digest ON versions (artifact_digest);

CREATE TABLE credentials (
    id         TEXT   NOT NULL PRIMARY KEY,
    hash       BLOB   NOT NULL,
    name       TEXT   NOT NULL,
    role       TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT -- NULL while the credential is valid
);

CREATE TABLE events (
    id         INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, strictly increasing
    time       BIGINT  NOT NULL,
    type       TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    namespace  TEXT    NOT NULL DEFAULT '',
    function   TEXT    NOT NULL DEFAULT '',
    request_id TEXT    NOT NULL DEFAULT '',
    body       TEXT    NOT NULL -- the event as JSON (events.Event), without its id
);

CREATE INDEX events_time ON events (time);
CREATE INDEX events_type ON events (type, id);

-- +goose Down
DROP TABLE events;
DROP TABLE credentials;
DROP TABLE versions;
DROP TABLE functions;
DROP TABLE artifacts;
