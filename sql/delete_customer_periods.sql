-- Drop the summaries of the staged customers (staged_customers) from their from_period on
-- (all of them when it is NULL) before their fresh ones are inserted.
DELETE FROM customer_periods AS p
WHERE EXISTS (
    SELECT 1 FROM staged_customers AS c
    WHERE p.tenant_id = c.tenant_id AND p.environment = c.environment
      AND p.customer_id = c.customer_id
      AND (c.from_period IS NULL OR p.period >= c.from_period)
);
