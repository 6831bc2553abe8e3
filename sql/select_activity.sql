-- The deltas of the staged customer-periods (staged_customer_periods): their activity exports.
SELECT
    d.tenant_id, d.environment, d.customer_id, d.period, d.delta_id, d.occurred_at, d.amount,
    d.status, d.reason, d.reference_id, d.metadata, d.leaf_index
FROM deltas AS d
SEMI JOIN staged_customer_periods AS s
    ON d.tenant_id = s.tenant_id AND d.environment = s.environment
    AND d.customer_id = s.customer_id AND d.period = s.period
ORDER BY d.tenant_id, d.environment, d.customer_id, d.period, d.occurred_at, d.delta_id;
