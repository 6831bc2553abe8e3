-- The ingested-files ledger: a file whose content (SHA-256) is here is never ingested again.
-- Grain: file content. file_order is the file's place in the ingest order (paths sorted per run).
CREATE TABLE IF NOT EXISTS ingested_files (
    sha256            VARCHAR PRIMARY KEY,
    path              VARCHAR NOT NULL,
    file_order        BIGINT NOT NULL,
    bytes             BIGINT NOT NULL,
    rows_read         BIGINT NOT NULL,
    rows_accepted     BIGINT NOT NULL,
    rows_duplicate    BIGINT NOT NULL,
    rows_quarantined  BIGINT NOT NULL,
    outcome           VARCHAR NOT NULL,    -- ingested | quarantined (unreadable as a whole)
    run_id            VARCHAR NOT NULL,
    ingested_at       TIMESTAMP NOT NULL
);
