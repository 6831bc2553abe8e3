-- The customers a nightly checkpoint stage up to $max_period has to look at: those marked due
-- since the last complete stage, and those with a period above the one it reached
-- (`checkpoint_coverage`) and up to $max_period; every customer with a period up to
-- $max_period when no stage has completed, or when $everyone. A superset of the stale
-- customers, which select_stale_customers picks out. Grain: (tenant_id, environment,
-- customer_id).
SELECT tenant_id, environment, customer_id
FROM checkpoint_due
UNION
SELECT tenant_id, environment, customer_id
FROM customer_periods
WHERE period <= $max_period
  AND ($everyone OR period > coalesce((SELECT max(max_period) FROM checkpoint_coverage), ''));
