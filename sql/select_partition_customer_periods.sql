-- The period summaries of one partition ($tenant_id, $environment, $period): the
-- `customer_periods` BI feed.
-- Unordered: the caller sorts (`flows.outputs.PARTITION_ORDER`).
SELECT p.* EXCLUDE (updated_run_id)
FROM customer_periods AS p
WHERE p.tenant_id = $tenant_id AND p.environment = $environment AND p.period = $period;
