-- The verified deltas of one customer ($tenant_id, $environment, $customer_id), optionally of
-- one period ($period, NULL for all), as leaves in tree order.
SELECT
    tenant_id, environment, customer_id, period, delta_id, leaf_index, amount, reason,
    reference_id, metadata, occurred_at AS occurred_at_utc, salt
FROM deltas
WHERE tenant_id = $tenant_id
  AND environment = $environment
  AND customer_id = $customer_id
  AND ($period IS NULL OR period = $period)
  AND status = 'verified'
ORDER BY period, leaf_index;
