-- Customer-periods the staged runs (staged_runs: run_id) ingested events for.
SELECT DISTINCT tenant_id, environment, customer_id, period
FROM delta_events
WHERE run_id IN (SELECT run_id FROM staged_runs);
