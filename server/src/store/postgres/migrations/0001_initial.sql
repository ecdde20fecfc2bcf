-- The metadata schema, as SQLite has it (store/sqlite/schema.sql), in
-- PostgreSQL's types. Times are RFC 3339 UTC strings with milliseconds, as
-- on SQLite, so both backends return the same values and order them alike.
CREATE TABLE api_tokens (
    id BIGSERIAL PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE TABLE enrollment_codes (
    code_hash TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    used_by TEXT
);
CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    version TEXT,
    enrolled_at TEXT NOT NULL,
    last_seen_at TEXT,
    revoked_at TEXT,
    queue_pages BIGINT,
    queue_bytes BIGINT,
    quarantined BIGINT
);
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE schemes (
    name TEXT PRIMARY KEY,
    org TEXT,
    doc_type TEXT,
    mode TEXT NOT NULL,
    rules TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE documents (
    id BIGSERIAL PRIMARY KEY,
    source_system TEXT NOT NULL,
    doc_no TEXT NOT NULL,
    doc_type TEXT NOT NULL,
    org TEXT NOT NULL,
    cover_code TEXT NOT NULL UNIQUE,
    title TEXT,
    amount TEXT,
    submitter TEXT,
    metadata TEXT,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    reject_reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    UNIQUE (source_system, doc_no)
);
CREATE INDEX documents_by_doc_no ON documents (doc_no);
CREATE INDEX documents_by_status ON documents (status, updated_at);
CREATE TABLE packets (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    site TEXT NOT NULL,
    cover_code TEXT,
    state TEXT NOT NULL,
    sealed_page_count INTEGER,
    document_id BIGINT REFERENCES documents (id),
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX packets_by_state ON packets (state, created_at);
CREATE INDEX packets_by_cover ON packets (cover_code);
CREATE INDEX packets_by_document ON packets (document_id);
CREATE TABLE pages (
    capture_id TEXT PRIMARY KEY,
    packet_id TEXT NOT NULL REFERENCES packets (id),
    page_index INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    barcodes TEXT NOT NULL,
    blank BOOLEAN NOT NULL,
    stored_at TEXT NOT NULL,
    UNIQUE (packet_id, page_index)
);
CREATE TABLE images (
    id BIGSERIAL PRIMARY KEY,
    document_id BIGINT NOT NULL REFERENCES documents (id),
    page_no INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    content_type TEXT NOT NULL,
    blank BOOLEAN NOT NULL DEFAULT FALSE,
    barcodes TEXT NOT NULL DEFAULT '[]',
    packet_id TEXT,
    capture_id TEXT,
    created_at TEXT NOT NULL,
    replaced_at TEXT
);
CREATE INDEX images_by_document ON images (document_id, replaced_at, page_no);
-- Ids are given by the chain (previous id + 1) under the lock on the head row.
CREATE TABLE audit (
    id BIGINT PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    document_id BIGINT,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    reason TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_by_document ON audit (document_id, id);
-- The chain's head: one row, locked (FOR UPDATE) by every append, so rows
-- from concurrent transactions on any replica chain one after another.
CREATE TABLE audit_head (
    one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (one),
    id BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, hash)
VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE webhooks (
    source_system TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE webhook_outbox (
    id BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    document_id BIGINT NOT NULL REFERENCES documents (id),
    source_system TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX outbox_due ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX outbox_by_document ON webhook_outbox (document_id, id);
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    outbox_id BIGINT NOT NULL REFERENCES webhook_outbox (id),
    document_id BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    url TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    delivered BOOLEAN NOT NULL
);
CREATE INDEX deliveries_by_document ON webhook_deliveries (document_id, id);
CREATE TABLE invoices (
    image_id BIGINT PRIMARY KEY REFERENCES images (id),
    document_id BIGINT NOT NULL REFERENCES documents (id),
    invoice_code TEXT NOT NULL,
    invoice_number TEXT NOT NULL
);
CREATE INDEX invoices_by_key ON invoices (invoice_code, invoice_number);
CREATE INDEX invoices_by_document ON invoices (document_id);
