-- The newest runs first, with their summaries.
SELECT
    run_id, kind, as_of, started_at, finished_at, status, published_at, publication_id, summary
FROM runs
ORDER BY started_at DESC
LIMIT $limit;
