-- +goose Up
-- Deploy scanning and policy. versions.scan: the scan report of the
-- version's module and manifest (JSON, '' before scanning existed);
-- versions.sbom: its CycloneDX SBOM. advisories: the imported vulnerability
-- database, one OSV entry per row. findings: what scans and vulnerability
-- matching found per version, with first- and last-seen times; a finding
-- no longer found is resolved, not deleted. policies: each namespace's Rego
-- deploy policy.
ALTER TABLE versions ADD COLUMN scan TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN sbom BLOB;

CREATE TABLE advisories (
    id          TEXT   NOT NULL PRIMARY KEY,
    modified    BIGINT NOT NULL,
    imported_at BIGINT NOT NULL,
    raw         BLOB   NOT NULL
);

CREATE TABLE findings (
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    version     INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    rule        TEXT    NOT NULL,
    severity    TEXT    NOT NULL,
    message     TEXT    NOT NULL,
    location    TEXT    NOT NULL DEFAULT '',
    module      TEXT    NOT NULL DEFAULT '',
    found       TEXT    NOT NULL DEFAULT '',
    fixed       TEXT    NOT NULL DEFAULT '',
    aliases     TEXT    NOT NULL DEFAULT '',
    first_seen  BIGINT  NOT NULL,
    last_seen   BIGINT  NOT NULL,
    resolved_at BIGINT,
    PRIMARY KEY (namespace, name, version, fingerprint)
);
CREATE INDEX findings_open ON findings (namespace, name, resolved_at);

CREATE TABLE policies (
    namespace TEXT   NOT NULL PRIMARY KEY,
    source    BLOB   NOT NULL,
    digest    TEXT   NOT NULL,
    set_by    TEXT   NOT NULL,
    set_at    BIGINT NOT NULL
);

-- +goose Down
DROP TABLE policies;
DROP INDEX findings_open;
DROP TABLE findings;
DROP TABLE advisories;
ALTER TABLE versions DROP COLUMN sbom;
ALTER TABLE versions DROP COLUMN scan;
