-- +goose Up
-- Credentials of more than one kind: admin tokens and function-route API
-- keys. scopes is space-separated; the times are Unix nanoseconds (UTC).
ALTER TABLE credentials ADD COLUMN kind TEXT NOT NULL DEFAULT 'admin';
ALTER TABLE credentials ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE credentials ADD COLUMN expires_at BIGINT;
ALTER TABLE credentials ADD COLUMN last_used_at BIGINT;

-- +goose Down
ALTER TABLE credentials DROP COLUMN last_used_at;
ALTER TABLE credentials DROP COLUMN expires_at;
ALTER TABLE credentials DROP COLUMN scopes;
ALTER TABLE credentials DROP COLUMN kind;
