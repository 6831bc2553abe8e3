-- The deltas of the staged partitions (staged_partitions: tenant_id, environment, period), one
-- row per delta with its current status: the `deltas` BI feed, and with its salt the leaves of
-- the partition's receipts. Salts and run ids stay in the warehouse (the feed drops the salt):
-- the feed is a function of the data alone.
SELECT
    d.tenant_id, d.environment, d.period, d.customer_id, d.delta_id, d.amount, d.reason,
    d.reference_id, d.metadata, d.occurred_at, d.status, d.leaf_index, d.salt
FROM deltas AS d
SEMI JOIN staged_partitions AS s
    ON d.tenant_id = s.tenant_id AND d.environment = s.environment AND d.period = s.period
ORDER BY d.tenant_id, d.environment, d.period, d.customer_id, d.occurred_at, d.delta_id;
