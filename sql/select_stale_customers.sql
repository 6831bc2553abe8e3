-- Customers with at least one period up to $max_period whose latest checkpoint is missing or no
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
)
SELECT DISTINCT tenant_id, environment, customer_id
FROM eligible
WHERE fingerprint IS NULL
   OR tree_size <> deltas_verified
   OR c_opening <> opening_balance
   OR c_credits <> credits
   OR c_debits <> debits
   OR previous IS DISTINCT FROM expected_previous;
