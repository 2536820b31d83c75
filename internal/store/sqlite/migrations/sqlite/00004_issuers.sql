-- +goose Up
-- Trusted JWT issuers (warden auth jwt add). jwks holds a key set given as
-- a file; jwks_url one fetched by URL; exactly one is non-empty.
CREATE TABLE issuers (
    name       TEXT   NOT NULL PRIMARY KEY,
    issuer     TEXT   NOT NULL,
    audience   TEXT   NOT NULL,
    jwks_url   TEXT   NOT NULL DEFAULT '',
    jwks       BLOB   NOT NULL,
    created_at BIGINT NOT NULL
);

-- +goose Down
DROP TABLE issuers;
