-- One page of the customers of ($tenant_id, $environment), optionally those whose id contains
-- $search (case-insensitive), with totals from their period summaries. Grain: customer.
WITH customers AS (
    SELECT
        customer_id,
        sum(deltas_total)::BIGINT AS deltas_total,
        sum(deltas_verified)::BIGINT AS deltas_verified,
        sum(deltas_pending)::BIGINT AS deltas_pending,
        sum(deltas_failed)::BIGINT AS deltas_failed,
        sum(credits) AS credits,
        sum(debits) AS debits,
        arg_max(closing_balance, period) AS balance,
        min(first_activity_at) AS first_activity_at,
        max(last_activity_at) AS last_activity_at,
        count(*) AS periods,
        max(period) AS last_period
    FROM customer_periods
    WHERE tenant_id = $tenant_id
      AND environment = $environment
      AND ($search IS NULL OR contains(lower(customer_id), lower($search)))
      AND ($customer_id IS NULL OR customer_id = $customer_id)
    GROUP BY customer_id
),
-- Every version of a period names it, so the newest period of any version is that of the
-- latest ones: no window over versions (latest_checkpoints) is needed, and one customer's
-- checkpoints are all that one customer's detail reads.
checkpointed AS (
    SELECT customer_id, max(period) AS last_checkpoint_period
    FROM checkpoints
    WHERE tenant_id = $tenant_id
      AND environment = $environment
      AND ($customer_id IS NULL OR customer_id = $customer_id)
    GROUP BY customer_id
)
SELECT c.*, k.last_checkpoint_period
FROM customers AS c
LEFT JOIN checkpointed AS k USING (customer_id)
ORDER BY c.customer_id
LIMIT $limit OFFSET $offset;
