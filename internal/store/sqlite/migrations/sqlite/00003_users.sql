-- +goose Up
-- Operator accounts. password_hash is an argon2id PHC string; totp_secret is
-- the base32 TOTP seed as given (stored unencrypted until the secret store's
-- master key exists; see docs/security.md). mfa_enrolled is 0 or 1. Times
-- are Unix nanoseconds (UTC); locked_until is NULL while not locked.
CREATE TABLE users (
    name            TEXT    NOT NULL PRIMARY KEY,
    role            TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    totp_secret     TEXT    NOT NULL DEFAULT '',
    mfa_enrolled    INTEGER NOT NULL DEFAULT 0,
    totp_last_step  BIGINT  NOT NULL DEFAULT 0,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    BIGINT,
    created_at      BIGINT  NOT NULL
);

-- +goose Down
DROP TABLE users;
