-- +goose Up
-- Signed deploys (warden trust, warden sign). trusted_keys: the public keys
-- each namespace trusts; a revoked key keeps its row. signing_modes: a
-- namespace's mode when an admin set one. versions.signature: how the
-- version's signature was checked at deploy (JSON, '' for versions deployed
-- before signing existed); versions.envelope: the DSSE envelope as sent.
CREATE TABLE trusted_keys (
    namespace  TEXT   NOT NULL,
    id         TEXT   NOT NULL,
    name       TEXT   NOT NULL,
    algorithm  TEXT   NOT NULL,
    pem        BLOB   NOT NULL,
    added_by   TEXT   NOT NULL,
    added_at   BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT,
    revoked_by TEXT   NOT NULL DEFAULT '',
    PRIMARY KEY (namespace, id)
);

CREATE TABLE signing_modes (
    namespace TEXT   NOT NULL PRIMARY KEY,
    mode      TEXT   NOT NULL CHECK (mode IN ('enforce', 'warn')),
    set_by    TEXT   NOT NULL,
    set_at    BIGINT NOT NULL
);

ALTER TABLE versions ADD COLUMN signature TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN envelope BLOB;

-- +goose Down
ALTER TABLE versions DROP COLUMN envelope;
ALTER TABLE versions DROP COLUMN signature;
DROP TABLE signing_modes;
DROP TABLE trusted_keys;
