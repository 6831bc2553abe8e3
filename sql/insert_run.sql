-- Record that a run started.
INSERT INTO runs (run_id, kind, as_of, started_at, status)
VALUES ($run_id, $kind, $as_of, $started_at, 'running');
