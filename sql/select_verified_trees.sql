-- Every tree of the warehouse: the (tenant, environment, customer, period) with a verified delta.
SELECT DISTINCT tenant_id, environment, customer_id, period
FROM deltas
WHERE status = 'verified';
