-- The periods in which one customer has accepted deltas (any status), from the deltas rather
-- than the summaries: a run that died before its summaries left deltas without them.
SELECT DISTINCT period
FROM deltas
WHERE tenant_id = $tenant_id AND environment = $environment AND customer_id = $customer_id;
