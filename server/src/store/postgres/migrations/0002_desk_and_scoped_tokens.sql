-- Scoped API tokens with a rotation overlap, empty packets, the sign-off
-- desk's users and sessions, and change notifications for live updates.

ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT '';
ALTER TABLE api_tokens ADD COLUMN source_systems TEXT;
-- A rotated-out secret works until then.
ALTER TABLE api_tokens ADD COLUMN expires_at TEXT;
UPDATE api_tokens SET scopes = CASE role WHEN 'admin' THEN 'admin'
    ELSE 'status read write decide packets webhooks' END;

-- The seal said: nothing after the cover sheet.
ALTER TABLE packets ADD COLUMN empty BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE users (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    -- signoff | clerk | admin
    role TEXT NOT NULL,
    -- A clerk's site.
    site TEXT,
    -- Argon2id PHC string.
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    disabled_at TEXT
);
-- Only the SHA-256 of the cookie value is kept, like API tokens.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id),
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
-- The queue's site column reads a document's newest packet.
DROP INDEX packets_by_document;
CREATE INDEX packets_by_document ON packets (document_id, created_at);
CREATE INDEX documents_by_status_org ON documents (status, org);
CREATE INDEX documents_by_status_type ON documents (status, doc_type);

-- Every replica's sign-off desks hear of every committed change: a row
-- trigger queues a notification, which PostgreSQL delivers to listeners only
-- when (and if) the transaction commits, once per distinct payload. The
-- payload names the schema so that databases shared by several
-- installations (or tests) keep their announcements apart.
CREATE FUNCTION imc_announce_change() RETURNS trigger AS $$
DECLARE
    what TEXT;
BEGIN
    IF TG_TABLE_NAME = 'documents' THEN
        what := 'd' || (CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
    ELSIF TG_TABLE_NAME = 'packets' THEN
        what := 'p';
    ELSE
        what := 'a';
    END IF;
    PERFORM pg_notify('imc_changes', current_schema() || ' ' || what);
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER documents_announce AFTER INSERT OR UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION imc_announce_change();
CREATE TRIGGER packets_announce AFTER INSERT OR UPDATE OR DELETE ON packets
    FOR EACH ROW EXECUTE FUNCTION imc_announce_change();
CREATE TRIGGER agents_announce AFTER INSERT OR UPDATE OR DELETE ON agents
    FOR EACH ROW EXECUTE FUNCTION imc_announce_change();
