-- Customers a run's events touched (any outcome). Grain: (tenant_id, environment, customer_id).
SELECT DISTINCT tenant_id, environment, customer_id
FROM delta_events
WHERE run_id = $run_id;
