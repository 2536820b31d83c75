-- +goose Up
-- A version its policy denies when evaluated again (after a vulnerability
-- import or a policy change) can be quarantined: its routes answer 503.
-- quarantine: the reason, '' when the version is not quarantined.
ALTER TABLE versions ADD COLUMN quarantine TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE versions DROP COLUMN quarantine;
