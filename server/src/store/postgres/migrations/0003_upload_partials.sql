-- Partial uploads shared by the replicas, so an agent that reconnects to
-- another replica resumes there. A partial is never a page: pages are only
-- recorded from whole bytes that hashed to the offered SHA-256.
CREATE TABLE upload_partials (
    capture_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    -- Bytes 0..durable are held in upload_parts, contiguous.
    durable BIGINT NOT NULL DEFAULT 0,
    touched_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX upload_partials_touched ON upload_partials (touched_at);

CREATE TABLE upload_parts (
    capture_id TEXT NOT NULL REFERENCES upload_partials (capture_id) ON DELETE CASCADE,
    start_offset BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (capture_id, start_offset)
);
