-- Every period up to $max_period of the staged customers (staged_customers), with its summary
-- and its latest checkpoint if any: the input of a checkpointing pass.
SELECT
    p.tenant_id, p.environment, p.customer_id, p.period,
    p.deltas_verified AS tree_size,
    p.opening_balance, p.credits, p.debits, p.closing_balance,
    c.version AS latest_version,
    c.fingerprint AS latest_fingerprint,
    c.tree_size AS latest_tree_size,
    c.root AS latest_root,
    c.opening_balance AS latest_opening_balance,
    c.credits AS latest_credits,
    c.debits AS latest_debits,
    c.previous AS latest_previous
FROM customer_periods AS p
SEMI JOIN staged_customers AS s
    ON p.tenant_id = s.tenant_id AND p.environment = s.environment
    AND p.customer_id = s.customer_id
LEFT JOIN latest_checkpoints AS c
    USING (tenant_id, environment, customer_id, period)
WHERE p.period <= $max_period
ORDER BY p.tenant_id, p.environment, p.customer_id, p.period;
