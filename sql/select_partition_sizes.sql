-- How many deltas each staged partition holds (staged_partitions), to size its shards.
SELECT p.tenant_id, p.environment, p.period, sum(p.deltas_total)::BIGINT AS deltas
FROM customer_periods AS p
SEMI JOIN staged_partitions AS s
    ON p.tenant_id = s.tenant_id AND p.environment = s.environment AND p.period = s.period
GROUP BY ALL;
