-- Every checkpoint version of one partition ($tenant_id, $environment, $period), with whether
-- it is the latest and its consistency proof from the version it supersedes: the `checkpoints`
-- BI feed, where an auditor with the outputs alone can check that each version extends the last.
-- Unordered: the caller sorts (`flows.outputs.PARTITION_ORDER`).
SELECT
    c.tenant_id, c.environment, c.period, c.customer_id, c.version, c.checkpoint_id,
    c.fingerprint, c.tree_size, c.root, c.opening_balance, c.credits, c.debits,
    c.closing_balance, c.previous, c.supersedes, c.consistency_proof, c.body, c.signature,
    c.kid, c.created_at,
    c.version = max(c.version) OVER (
        PARTITION BY c.tenant_id, c.environment, c.customer_id, c.period
    ) AS is_latest
FROM checkpoints AS c
WHERE c.tenant_id = $tenant_id AND c.environment = $environment AND c.period = $period;
