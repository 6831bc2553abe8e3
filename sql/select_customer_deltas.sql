-- Every delta of the staged customers (staged_customers: tenant_id, environment, customer_id,
-- from_period) in from_period or later (every period when from_period is NULL): what their
-- period summaries are computed from. Grain: one row per delta.
SELECT d.tenant_id, d.environment, d.customer_id, d.period, d.amount, d.status,
       d.occurred_at AS occurred_at_utc
FROM deltas AS d
SEMI JOIN staged_customers AS c
    ON d.tenant_id = c.tenant_id AND d.environment = c.environment
    AND d.customer_id = c.customer_id
    AND (c.from_period IS NULL OR d.period >= c.from_period);
