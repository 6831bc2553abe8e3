-- The verified deltas of the staged trees (staged_trees: tenant_id, environment, customer_id,
-- period), sorted by tree and leaf index: what their Merkle roots are built from.
SELECT
    d.tenant_id, d.environment, d.customer_id, d.period, d.delta_id, d.leaf_index, d.amount,
    d.reason, d.reference_id, d.metadata, d.occurred_at AS occurred_at_utc, d.salt
FROM deltas AS d
SEMI JOIN staged_trees AS t
    ON d.tenant_id = t.tenant_id AND d.environment = t.environment
    AND d.customer_id = t.customer_id AND d.period = t.period
WHERE d.status = 'verified'
ORDER BY d.tenant_id, d.environment, d.customer_id, d.period, d.leaf_index;
