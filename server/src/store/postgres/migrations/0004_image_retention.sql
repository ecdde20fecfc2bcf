-- Retention of image bytes: purged image and page rows keep their metadata
-- and SHA-256; blobs nothing live references wait in blob_deletions for the
-- sweep (see docs/ARCHITECTURE.md, "Image bytes are deleted only when").

ALTER TABLE images ADD COLUMN purged_at TEXT;
ALTER TABLE images ADD COLUMN purge_reason TEXT;
ALTER TABLE pages ADD COLUMN purged_at TEXT;
ALTER TABLE pages ADD COLUMN purge_reason TEXT;
CREATE INDEX images_by_sha256 ON images (sha256);
CREATE INDEX pages_by_sha256 ON pages (sha256);
CREATE TABLE blob_deletions (
    sha256 TEXT PRIMARY KEY,
    marked_at TEXT NOT NULL
);
CREATE INDEX blob_deletions_by_age ON blob_deletions (marked_at);
