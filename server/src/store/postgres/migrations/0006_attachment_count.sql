-- The attachment count (附件张数) a document declares: how many sheets should
-- follow its cover. NULL when none was declared.

ALTER TABLE documents ADD COLUMN attachment_count INTEGER;
