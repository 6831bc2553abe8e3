-- Every period of one customer with its summary and its latest checkpoint, newest first.
SELECT
    p.period, p.deltas_total, p.deltas_verified, p.deltas_pending, p.deltas_failed,
    p.opening_balance, p.credits, p.debits, p.closing_balance,
    p.first_activity_at, p.last_activity_at,
    c.checkpoint_id, c.fingerprint, c.version, c.tree_size, c.created_at AS checkpointed_at,
    c.fingerprint IS NOT NULL AND (c.tree_size <> p.deltas_verified
        OR c.opening_balance <> p.opening_balance OR c.credits <> p.credits
        OR c.debits <> p.debits) AS checkpoint_behind
FROM customer_periods AS p
LEFT JOIN latest_checkpoints AS c USING (tenant_id, environment, customer_id, period)
WHERE p.tenant_id = $tenant_id AND p.environment = $environment AND p.customer_id = $customer_id
ORDER BY p.period DESC;
