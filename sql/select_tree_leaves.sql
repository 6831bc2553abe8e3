-- The verified deltas of the staged trees (staged_trees: tree_no, tenant_id, environment,
-- customer_id, period, from_index, to_index), from leaf index from_index on and, when to_index
-- is not NULL, before it; each with its tree's number: what their Merkle roots are built from.
-- Unordered: the caller sorts by tree number and leaf index (`flows.fingerprints.tree_leaves`),
-- which takes a third of the time DuckDB's sort of these wide rows by four texts took.
SELECT
    t.tree_no, d.tenant_id, d.environment, d.customer_id, d.period, d.delta_id, d.leaf_index,
    d.amount, d.reason, d.reference_id, d.metadata, d.occurred_at AS occurred_at_utc, d.salt
FROM deltas AS d
JOIN staged_trees AS t
    ON d.tenant_id = t.tenant_id AND d.environment = t.environment
    AND d.customer_id = t.customer_id AND d.period = t.period
WHERE d.status = 'verified' AND d.leaf_index >= t.from_index
  AND (t.to_index IS NULL OR d.leaf_index < t.to_index);
