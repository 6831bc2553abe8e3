-- Aggregate totals of ($tenant_id, $environment): customers, deltas by status, money, and how
-- many closed customer-periods (before $open_period) have an up-to-date latest checkpoint.
SELECT
    count(DISTINCT p.customer_id) AS customers,
    coalesce(sum(p.deltas_total)::BIGINT, 0) AS deltas_total,
    coalesce(sum(p.deltas_verified)::BIGINT, 0) AS deltas_verified,
    coalesce(sum(p.deltas_pending)::BIGINT, 0) AS deltas_pending,
    coalesce(sum(p.deltas_failed)::BIGINT, 0) AS deltas_failed,
    coalesce(sum(p.credits), 0) AS credits,
    coalesce(sum(p.debits), 0) AS debits,
    count(*) AS customer_periods,
    count(*) FILTER (WHERE p.period < $open_period) AS closed_customer_periods,
    count(c.fingerprint) FILTER (WHERE p.period < $open_period) AS checkpointed,
    count(c.fingerprint) FILTER (
        WHERE c.tree_size <> p.deltas_verified OR c.opening_balance <> p.opening_balance
           OR c.credits <> p.credits OR c.debits <> p.debits
    ) AS checkpoints_behind,
    max(c.created_at) AS last_checkpoint_at
FROM customer_periods AS p
LEFT JOIN latest_checkpoints AS c USING (tenant_id, environment, customer_id, period)
WHERE p.tenant_id = $tenant_id AND p.environment = $environment;
