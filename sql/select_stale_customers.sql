-- Customers (all, or the one named by $tenant_id, $environment, $customer_id) with at least one
-- period up to $max_period whose latest checkpoint is missing or no
-- longer matches: its tree grew, its balances moved, or the checkpoint of the period before it
-- has a newer version than the one it names. Only these customers are recomputed.
WITH eligible AS (
    SELECT
        p.tenant_id, p.environment, p.customer_id, p.period, p.deltas_verified,
        p.opening_balance, p.credits, p.debits,
        c.fingerprint, c.tree_size, c.previous,
        c.opening_balance AS c_opening, c.credits AS c_credits, c.debits AS c_debits,
        lag(c.fingerprint) OVER (
            PARTITION BY p.tenant_id, p.environment, p.customer_id ORDER BY p.period
        ) AS expected_previous
    FROM customer_periods AS p
    LEFT JOIN latest_checkpoints AS c
        USING (tenant_id, environment, customer_id, period)
    WHERE p.period <= $max_period
      AND ($tenant_id IS NULL OR p.tenant_id = $tenant_id)
      AND ($environment IS NULL OR p.environment = $environment)
      AND ($customer_id IS NULL OR p.customer_id = $customer_id)
)
-- With the leaves a checkpoint pass hashes and holds for it (`leaves`): those of its periods
-- whose tree grew; a period whose balances or chain alone moved keeps its root. In customer
-- order, so that passes are the same from run to run.
SELECT
    tenant_id, environment, customer_id,
    coalesce(sum(deltas_verified) FILTER (
        WHERE deltas_verified > 0 AND tree_size IS DISTINCT FROM deltas_verified
    ), 0)::BIGINT AS leaves
FROM eligible
GROUP BY tenant_id, environment, customer_id
HAVING bool_or(
    fingerprint IS NULL
    OR tree_size <> deltas_verified
    OR c_opening <> opening_balance
    OR c_credits <> credits
    OR c_debits <> debits
    OR previous IS DISTINCT FROM expected_previous
)
ORDER BY tenant_id, environment, customer_id;
