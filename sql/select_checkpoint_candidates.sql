-- Every period up to $max_period of the staged customers (staged_customers), and from
-- $open_period on those with a checkpoint already, up to the first without one (an open month
-- checkpointed on request, or a later one a run with a later date checkpointed: their chain is
-- kept whole; re-linking a later month across an open month that has data but no checkpoint
-- broke it, its opening balance counting a month its `previous` skipped), with its summary and its latest checkpoint if any (and that version's compact range,
-- when it was kept): the input of a checkpointing pass. The staged customers' checkpoints are picked before the window
-- (not through the latest_checkpoints view), so a pass reads its own customers' checkpoints,
-- not every checkpoint ever made.
WITH latest AS (
    SELECT
        c.tenant_id, c.environment, c.customer_id, c.period, c.version, c.fingerprint,
        c.tree_size, c.root, c.opening_balance, c.credits, c.debits, c.previous
    FROM checkpoints AS c
    SEMI JOIN staged_customers AS s
        ON c.tenant_id = s.tenant_id AND c.environment = s.environment
        AND c.customer_id = s.customer_id
    QUALIFY c.version = max(c.version) OVER (
        PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
    )
)
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
    c.previous AS latest_previous,
    r.compact_range AS latest_compact_range
FROM customer_periods AS p
SEMI JOIN staged_customers AS s
    ON p.tenant_id = s.tenant_id AND p.environment = s.environment
    AND p.customer_id = s.customer_id
LEFT JOIN latest AS c
    USING (tenant_id, environment, customer_id, period)
LEFT JOIN compact_ranges AS r
    ON r.fingerprint = c.fingerprint
-- A period from $open_period on is kept current while every period from there to it has a
-- checkpoint: then each `previous` and `openingBalance` can follow a change before it.
QUALIFY p.period <= $max_period OR (p.period >= $open_period AND bool_and(
    c.fingerprint IS NOT NULL OR p.period < $open_period
) OVER (
    PARTITION BY p.tenant_id, p.environment, p.customer_id ORDER BY p.period
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
))
ORDER BY p.tenant_id, p.environment, p.customer_id, p.period;
