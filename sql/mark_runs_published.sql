-- Record that a publication ($publication_id) covered the staged runs.
UPDATE runs
SET published_at = $published_at, publication_id = $publication_id
WHERE run_id IN (SELECT run_id FROM staged_runs);
