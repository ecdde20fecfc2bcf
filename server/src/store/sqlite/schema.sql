-- Embedded metadata schema. Version 1.
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    -- Space-separated TokenScope names; source systems likewise (NULL: all).
    scopes TEXT NOT NULL DEFAULT '',
    source_systems TEXT,
    -- A rotated-out secret works until then.
    expires_at TEXT
);
CREATE TABLE IF NOT EXISTS enrollment_codes (
    code_hash TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    version TEXT,
    enrolled_at TEXT NOT NULL,
    last_seen_at TEXT,
    revoked_at TEXT,
    queue_pages INTEGER,
    queue_bytes INTEGER,
    quarantined INTEGER
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS schemes (
    name TEXT PRIMARY KEY,
    org TEXT,
    doc_type TEXT,
    mode TEXT NOT NULL,
    rules TEXT,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY,
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
    -- Sheets the submitter declared attached (附件张数); NULL: none declared.
    attachment_count INTEGER,
    UNIQUE (source_system, doc_no)
);
CREATE INDEX IF NOT EXISTS documents_by_doc_no ON documents (doc_no);
CREATE INDEX IF NOT EXISTS documents_by_status ON documents (status, updated_at);
CREATE TABLE IF NOT EXISTS packets (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    site TEXT NOT NULL,
    cover_code TEXT,
    state TEXT NOT NULL,
    sealed_page_count INTEGER,
    -- The seal said: nothing after the cover sheet.
    empty INTEGER NOT NULL DEFAULT 0,
    document_id INTEGER REFERENCES documents (id),
    reason TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    -- The desk's packet sequence (scan order per agent); NULL from older agents.
    desk_seq INTEGER,
    -- Why the first page, which looked like a cover, was not one (its QR
    -- signature failed); the packet stays unmatched with it.
    cover_problem TEXT
);
CREATE INDEX IF NOT EXISTS packets_by_state ON packets (state, created_at);
CREATE INDEX IF NOT EXISTS packets_by_cover ON packets (cover_code);
-- A page as delivered by an agent; its bytes are the blob named by sha256.
CREATE TABLE IF NOT EXISTS pages (
    capture_id TEXT PRIMARY KEY,
    packet_id TEXT NOT NULL REFERENCES packets (id),
    page_index INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    source_name TEXT NOT NULL,
    barcodes TEXT NOT NULL,
    blank INTEGER NOT NULL,
    stored_at TEXT NOT NULL,
    -- Retention removed the bytes (see retention.rs); the row stays.
    purged_at TEXT,
    purge_reason TEXT,
    UNIQUE (packet_id, page_index)
);
-- A document's images. Replaced images (a rescan) are kept as evidence.
CREATE TABLE IF NOT EXISTS images (
    id INTEGER PRIMARY KEY,
    document_id INTEGER NOT NULL REFERENCES documents (id),
    page_no INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    content_type TEXT NOT NULL,
    blank INTEGER NOT NULL DEFAULT 0,
    barcodes TEXT NOT NULL DEFAULT '[]',
    packet_id TEXT,
    capture_id TEXT,
    created_at TEXT NOT NULL,
    replaced_at TEXT,
    -- Retention removed the bytes: when and why; the row and SHA-256 stay.
    purged_at TEXT,
    purge_reason TEXT
);
CREATE INDEX IF NOT EXISTS images_by_document ON images (document_id, replaced_at, page_no);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    document_id INTEGER,
    action TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT,
    reason TEXT,
    -- Hash chain: hash = sha256(prev_hash, canonical row); see audit.rs.
    prev_hash TEXT,
    hash TEXT
);
CREATE INDEX IF NOT EXISTS audit_by_document ON audit (document_id, id);
CREATE TABLE IF NOT EXISTS webhooks (
    source_system TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    -- Kept in the clear: it is the HMAC key, needed to sign every delivery.
    secret TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
-- Durable outbox: an event row is written in the transaction of its status change.
CREATE TABLE IF NOT EXISTS webhook_outbox (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    document_id INTEGER NOT NULL REFERENCES documents (id),
    source_system TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON webhook_outbox (next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS outbox_by_document ON webhook_outbox (document_id, id);
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id INTEGER PRIMARY KEY,
    outbox_id INTEGER NOT NULL REFERENCES webhook_outbox (id),
    document_id INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at TEXT NOT NULL,
    url TEXT NOT NULL,
    http_status INTEGER,
    error TEXT,
    delivered INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS deliveries_by_document ON webhook_deliveries (document_id, id);
-- VAT invoices named by the QR codes on a document's current images.
CREATE TABLE IF NOT EXISTS invoices (
    image_id INTEGER PRIMARY KEY REFERENCES images (id),
    document_id INTEGER NOT NULL REFERENCES documents (id),
    invoice_code TEXT NOT NULL,
    invoice_number TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invoices_by_key ON invoices (invoice_code, invoice_number);
CREATE INDEX IF NOT EXISTS invoices_by_document ON invoices (document_id);

-- ── Sign-off desk (server/src/web): staff users and their browser sessions ──
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- signoff | clerk | admin
    role TEXT NOT NULL,
    -- A clerk's site; the desk opens filtered to it.
    site TEXT,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);
-- Only the SHA-256 of the cookie value is kept, like API tokens.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
-- The queue's site filter and a document's site look packets up by document.
CREATE INDEX IF NOT EXISTS packets_by_document ON packets (document_id, created_at);
-- The queue's counts per organisation and document type read only these.
CREATE INDEX IF NOT EXISTS documents_by_status_org ON documents (status, org);
CREATE INDEX IF NOT EXISTS documents_by_status_type ON documents (status, doc_type);

-- ── Retention of image bytes (server/src/retention.rs) ──
-- Is a blob still referenced? These answer it.
CREATE INDEX IF NOT EXISTS images_by_sha256 ON images (sha256);
CREATE INDEX IF NOT EXISTS pages_by_sha256 ON pages (sha256);
-- Blobs nothing live referenced when marked; swept after a grace period.
CREATE TABLE IF NOT EXISTS blob_deletions (
    sha256 TEXT PRIMARY KEY,
    marked_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS blob_deletions_by_age ON blob_deletions (marked_at);
