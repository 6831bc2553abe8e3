-- Record a batch's files (staged_ingested_files) so their content is never ingested again.
INSERT INTO ingested_files BY NAME
SELECT
    sha256, path, file_order, bytes, rows_read, rows_accepted, rows_duplicate,
    rows_quarantined, outcome, run_id, ingested_at
FROM staged_ingested_files;
