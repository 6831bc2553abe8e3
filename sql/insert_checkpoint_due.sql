-- Mark the staged customers (staged_due) as possibly due for new checkpoint versions.
INSERT INTO checkpoint_due
SELECT DISTINCT s.tenant_id, s.environment, s.customer_id
FROM staged_due AS s
WHERE NOT EXISTS (
    SELECT 1 FROM checkpoint_due AS d
    WHERE d.tenant_id = s.tenant_id AND d.environment = s.environment
      AND d.customer_id = s.customer_id
);
