-- The balance each staged customer (staged_customers) carries into its from_period: the closing
-- balance of its last summarised period before it, when it has one.
SELECT
    p.tenant_id, p.environment, p.customer_id,
    arg_max(p.closing_balance, p.period) AS carried_balance
FROM customer_periods AS p
JOIN staged_customers AS c
    ON p.tenant_id = c.tenant_id AND p.environment = c.environment
    AND p.customer_id = c.customer_id AND p.period < c.from_period
GROUP BY p.tenant_id, p.environment, p.customer_id;
