-- The deltas of one partition ($tenant_id, $environment, $period), one row per delta with its
-- current status: the `deltas` BI feed, and with its salt the leaves of the partition's
-- receipts. Salts and run ids stay in the warehouse (the feed drops the salt): the feed is a
-- function of the data alone.
-- Unordered: the caller sorts (`flows.outputs.PARTITION_ORDER`).
SELECT
    d.tenant_id, d.environment, d.period, d.customer_id, d.delta_id, d.amount, d.reason,
    d.reference_id, d.metadata, d.occurred_at, d.status, d.leaf_index, d.salt
FROM deltas AS d
WHERE d.tenant_id = $tenant_id AND d.environment = $environment AND d.period = $period;
