-- Every checkpoint version of the staged partitions, with whether it is the latest: the
-- `checkpoints` BI feed.
SELECT
    c.tenant_id, c.environment, c.period, c.customer_id, c.version, c.checkpoint_id,
    c.fingerprint, c.tree_size, c.root, c.opening_balance, c.credits, c.debits,
    c.closing_balance, c.previous, c.supersedes, c.body, c.signature, c.kid, c.created_at,
    c.version = max(c.version) OVER (
        PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
    ) AS is_latest
FROM checkpoints AS c
SEMI JOIN staged_partitions AS s
    ON c.tenant_id = s.tenant_id AND c.environment = s.environment AND c.period = s.period
ORDER BY c.tenant_id, c.environment, c.period, c.customer_id, c.version;
