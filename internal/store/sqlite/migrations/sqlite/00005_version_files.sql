-- +goose Up
-- Files a version carries besides its module (JSON schemas of its routes):
-- a JSON object from the path written in the manifest to the digest of the
-- content, which is stored in artifacts.
ALTER TABLE versions ADD COLUMN files TEXT NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE versions DROP COLUMN files;
