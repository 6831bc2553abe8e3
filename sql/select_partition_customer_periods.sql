-- The period summaries of the staged partitions: the `customer_periods` BI feed.
SELECT p.* EXCLUDE (updated_run_id)
FROM customer_periods AS p
SEMI JOIN staged_partitions AS s
    ON p.tenant_id = s.tenant_id AND p.environment = s.environment AND p.period = s.period
ORDER BY p.tenant_id, p.environment, p.period, p.customer_id;
