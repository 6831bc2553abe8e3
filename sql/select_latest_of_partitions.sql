-- The latest checkpoint of every customer in the staged partitions (staged_partitions): the
-- batch checkpoint exports. Filtered before the window (not through the latest_checkpoints
-- view), so a run reads the checkpoints it publishes, not every checkpoint ever made.
SELECT c.*
FROM checkpoints AS c
SEMI JOIN staged_partitions AS s
    ON c.tenant_id = s.tenant_id AND c.environment = s.environment AND c.period = s.period
QUALIFY c.version = max(c.version) OVER (
    PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
)
ORDER BY c.tenant_id, c.environment, c.period, c.customer_id;
