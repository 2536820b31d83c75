-- +goose Up
-- Two-person approvals. A version a deploy policy says needs approval is
-- stored pending and never served until a second person approves it.
-- approval_status: '' (no approval needed), pending, approved, rejected or
-- expired; approval: the request and the decision (JSON).
ALTER TABLE versions ADD COLUMN approval_status TEXT NOT NULL DEFAULT '';
ALTER TABLE versions ADD COLUMN approval TEXT NOT NULL DEFAULT '';
CREATE INDEX versions_pending ON versions (approval_status) WHERE approval_status = 'pending';

-- +goose Down
DROP INDEX versions_pending;
ALTER TABLE versions DROP COLUMN approval;
ALTER TABLE versions DROP COLUMN approval_status;
