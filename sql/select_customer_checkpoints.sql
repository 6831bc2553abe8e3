-- Every checkpoint version of one customer ($tenant_id, $environment, $customer_id), optionally
-- of one period ($period, NULL for all), newest first, with whether it is the latest version.
SELECT
    c.*,
    c.version = max(c.version) OVER (PARTITION BY c.period) AS is_latest
FROM checkpoints AS c
WHERE c.tenant_id = $tenant_id
  AND c.environment = $environment
  AND c.customer_id = $customer_id
  AND ($period IS NULL OR c.period = $period)
ORDER BY c.created_at DESC, c.period DESC, c.version DESC;
