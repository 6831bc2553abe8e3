-- How many leaves each named tree has (staged_trees: tenant_id, environment, customer_id,
-- period): its verified deltas. New leaves are appended after them.
SELECT d.tenant_id, d.environment, d.customer_id, d.period, count(*) AS tree_size
FROM deltas AS d
SEMI JOIN staged_trees AS t
    ON d.tenant_id = t.tenant_id AND d.environment = t.environment
    AND d.customer_id = t.customer_id AND d.period = t.period
WHERE d.status = 'verified'
GROUP BY ALL;
