-- The latest checkpoint of each staged customer-period (staged_customer_periods): receipts.
SELECT *
FROM latest_checkpoints AS c
SEMI JOIN staged_customer_periods AS s
    ON c.tenant_id = s.tenant_id AND c.environment = s.environment
    AND c.customer_id = s.customer_id AND c.period = s.period
ORDER BY c.tenant_id, c.environment, c.customer_id, c.period;
