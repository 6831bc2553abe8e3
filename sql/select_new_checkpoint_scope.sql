-- Customer-periods that got a new checkpoint version in the staged runs.
SELECT DISTINCT tenant_id, environment, customer_id, period
FROM checkpoints
WHERE run_id IN (SELECT run_id FROM staged_runs);
