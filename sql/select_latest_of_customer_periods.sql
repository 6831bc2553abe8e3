-- The latest checkpoint of each staged customer-period (staged_customer_periods): receipts.
-- Filtered before the window (not through the latest_checkpoints view), so a run reads the
-- checkpoints it publishes, not every checkpoint ever made.
SELECT c.*
FROM checkpoints AS c
SEMI JOIN staged_customer_periods AS s
    ON c.tenant_id = s.tenant_id AND c.environment = s.environment
    AND c.customer_id = s.customer_id AND c.period = s.period
QUALIFY c.version = max(c.version) OVER (
    PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
)
ORDER BY c.tenant_id, c.environment, c.customer_id, c.period;
