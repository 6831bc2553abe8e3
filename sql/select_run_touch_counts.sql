-- How many customers and customer-periods a run's events touched.
SELECT
    count(DISTINCT (tenant_id, environment, customer_id)) AS customers,
    count(DISTINCT (tenant_id, environment, customer_id, period)) AS customer_periods
FROM delta_events
WHERE run_id = $run_id;
