-- What the inbox's files held when they were last hashed, so a run does not read and hash the
-- whole inbox again to find the few new files (the way git's index trusts a file's stat data).
-- Grain: one row per file of an inbox. Only rows whose file was older than the moment it was
-- read by a safe margin are kept: a file rewritten within its timestamp's resolution of being
-- read could otherwise keep a stale hash.
CREATE TABLE IF NOT EXISTS inbox_hashes (
    inbox     VARCHAR NOT NULL,    -- the inbox: its absolute folder or its s3:// prefix
    path      VARCHAR NOT NULL,    -- below the inbox
    bytes     BIGINT NOT NULL,
    mtime_ns  BIGINT NOT NULL,
    sha256    VARCHAR NOT NULL,
    PRIMARY KEY (inbox, path)
);
