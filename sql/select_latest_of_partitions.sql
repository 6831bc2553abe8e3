-- The latest checkpoint of every customer in the staged partitions (staged_partitions): the
-- batch checkpoint exports.
SELECT *
FROM latest_checkpoints AS c
SEMI JOIN staged_partitions AS s
    ON c.tenant_id = s.tenant_id AND c.environment = s.environment AND c.period = s.period
ORDER BY c.tenant_id, c.environment, c.period, c.customer_id;
