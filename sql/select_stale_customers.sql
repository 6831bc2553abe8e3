-- Of the staged customers (staged_customers), those with at least one period up to
-- $max_period, or from $open_period on with a checkpoint already up to the first without
-- one (an open month checkpointed on request, or later ones), whose latest checkpoint is missing or no longer matches: its tree grew, its
-- balances moved, or the checkpoint of the period before it has a newer version than the one
-- it names. Only these customers are recomputed.
WITH latest AS (
    -- The staged customers' latest versions only: the `latest_checkpoints` window over every
    -- customer's versions was most of this query when a day's run staged a tenth of them.
    SELECT c.*
    FROM checkpoints AS c
    SEMI JOIN staged_customers AS s
        ON c.tenant_id = s.tenant_id AND c.environment = s.environment
        AND c.customer_id = s.customer_id
    QUALIFY c.version = max(c.version) OVER (
        PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
    )
),
eligible AS (
    SELECT
        p.tenant_id, p.environment, p.customer_id, p.period, p.deltas_verified,
        p.opening_balance, p.credits, p.debits,
        c.fingerprint, c.tree_size, c.previous,
        c.opening_balance AS c_opening, c.credits AS c_credits, c.debits AS c_debits,
        lag(c.fingerprint) OVER (
            PARTITION BY p.tenant_id, p.environment, p.customer_id ORDER BY p.period
        ) AS expected_previous
    FROM customer_periods AS p
    SEMI JOIN staged_customers AS s
        ON p.tenant_id = s.tenant_id AND p.environment = s.environment
        AND p.customer_id = s.customer_id
    LEFT JOIN latest AS c
        ON p.tenant_id = c.tenant_id AND p.environment = c.environment
        AND p.customer_id = c.customer_id AND p.period = c.period
    -- From $open_period on, up to the first period without a checkpoint (see
    -- select_checkpoint_candidates.sql). The eligible periods are a prefix of the customer's,
    -- so `lag` over them all is `lag` over the eligible ones.
    QUALIFY p.period <= $max_period OR (p.period >= $open_period AND bool_and(
        c.fingerprint IS NOT NULL OR p.period < $open_period
    ) OVER (
        PARTITION BY p.tenant_id, p.environment, p.customer_id ORDER BY p.period
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    ))
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
