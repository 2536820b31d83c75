-- +goose Up
-- The vault: envelope-encrypted secrets and KV buckets, what master-key
-- rotation needs to find (key_id beside every sealed value), and how
-- functions use their grants. sealed columns hold the encoded envelope
-- (package secrets) as opaque bytes; key_id names the key-encryption key that
-- wraps its data key. Times are Unix nanoseconds (UTC). Text keys are
-- compared byte-wise (PostgreSQL: the columns need COLLATE "C").

-- One row per secret; current_version is the version readers get.
CREATE TABLE secrets (
    namespace       TEXT    NOT NULL,
    name            TEXT    NOT NULL,
    current_version INTEGER NOT NULL,
    created_at      BIGINT  NOT NULL,
    updated_at      BIGINT  NOT NULL, -- when the current version was created
    PRIMARY KEY (namespace, name)
);

-- Every version of a secret, 1, 2, 3, ... without gaps. A version stops
-- being current with retires_at set; once destroyed, sealed is NULL and
-- destroyed_at is set (the row stays for history).
CREATE TABLE secret_versions (
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    key_id       TEXT    NOT NULL,
    sealed       BLOB,             -- NULL once destroyed
    created_at   BIGINT  NOT NULL,
    created_by   TEXT    NOT NULL,
    retires_at   BIGINT,           -- NULL while current
    destroyed_at BIGINT,           -- NULL while the bytes are kept
    PRIMARY KEY (namespace, name, version),
    FOREIGN KEY (namespace, name) REFERENCES secrets (namespace, name) ON DELETE CASCADE
);

CREATE INDEX secret_versions_retires ON secret_versions (retires_at) WHERE destroyed_at IS NULL;
CREATE INDEX secret_versions_key_id ON secret_versions (key_id) WHERE destroyed_at IS NULL;

-- The last version number of each deleted secret, so that a secret created
-- again under the same name continues the numbering: the version is bound
-- into the sealed value, and a reused number would let a ciphertext of the
-- deleted secret (from a backup) open as the new one.
CREATE TABLE secret_deleted (
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    last_version INTEGER NOT NULL,
    PRIMARY KEY (namespace, name)
);

-- The live (or expired but not yet swept) value of each KV key. size is the
-- plaintext size, counted against the bucket's quota while the entry is live
-- (expires_at NULL or after now).
CREATE TABLE kv_entries (
    namespace  TEXT    NOT NULL,
    bucket     TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    key_id     TEXT    NOT NULL,
    sealed     BLOB    NOT NULL,
    size       BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL,
    expires_at BIGINT,            -- NULL: never expires
    PRIMARY KEY (namespace, bucket, key)
);

CREATE INDEX kv_entries_expires ON kv_entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX kv_entries_key_id ON kv_entries (key_id);

-- The last version ever given to a KV key. It outlives the entry (delete,
-- expiry), so a version number is never given twice to one key: the version
-- is bound into the sealed value, and a reused number would let an old
-- ciphertext be put back in place of the new one.
CREATE TABLE kv_versions (
    namespace    TEXT    NOT NULL,
    bucket       TEXT    NOT NULL,
    key          TEXT    NOT NULL,
    last_version INTEGER NOT NULL,
    PRIMARY KEY (namespace, bucket, key)
);

-- One row per KV write, for data-change triggers. op is set, delete or
-- expire; function and function_version name a writing function, actor an
-- operator ("system" for expiry).
CREATE TABLE kv_changes (
    id               INTEGER PRIMARY KEY AUTOINCREMENT, -- never reused, strictly increasing
    namespace        TEXT    NOT NULL,
    bucket           TEXT    NOT NULL,
    key              TEXT    NOT NULL,
    version          INTEGER NOT NULL,
    op               TEXT    NOT NULL,
    function         TEXT    NOT NULL DEFAULT '',
    function_version INTEGER NOT NULL DEFAULT 0,
    actor            TEXT    NOT NULL DEFAULT '',
    changed_at       BIGINT  NOT NULL
);

CREATE INDEX kv_changes_bucket ON kv_changes (namespace, bucket, id);

-- First and last use of each grant of each function version, per mode.
CREATE TABLE grant_uses (
    namespace  TEXT    NOT NULL,
    function   TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT    NOT NULL, -- secret, kv or egress
    target     TEXT    NOT NULL, -- secret name, bucket or origin as granted
    mode       TEXT    NOT NULL, -- read, write or use
    first_used BIGINT  NOT NULL,
    last_used  BIGINT  NOT NULL,
    use_count  BIGINT  NOT NULL,
    PRIMARY KEY (namespace, function, version, kind, target, mode)
);

-- Totals of each function's outgoing calls per origin.
CREATE TABLE egress_stats (
    namespace   TEXT   NOT NULL,
    function    TEXT   NOT NULL,
    origin      TEXT   NOT NULL,
    calls       BIGINT NOT NULL,
    errors      BIGINT NOT NULL,
    bytes_out   BIGINT NOT NULL,
    bytes_in    BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL, -- total
    first_at    BIGINT NOT NULL,
    last_at     BIGINT NOT NULL,
    PRIMARY KEY (namespace, function, origin)
);

-- The key that wraps a sealed TOTP seed; '' while totp_secret is stored as
-- given (or empty).
ALTER TABLE users ADD COLUMN totp_key_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE users DROP COLUMN totp_key_id;
DROP TABLE egress_stats;
DROP TABLE grant_uses;
DROP TABLE kv_changes;
DROP TABLE kv_versions;
DROP TABLE kv_entries;
DROP TABLE secret_deleted;
DROP TABLE secret_versions;
DROP TABLE secrets;
