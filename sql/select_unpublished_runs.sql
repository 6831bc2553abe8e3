-- Runs whose changes are not yet covered by a completed publication (a run killed while
-- publishing stays here until the next run publishes for it).
SELECT run_id FROM runs WHERE published_at IS NULL ORDER BY started_at, run_id;
