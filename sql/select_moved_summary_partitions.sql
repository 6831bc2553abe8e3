-- (tenant, environment, period) partitions of customer_periods whose rows the staged runs may
-- have moved: every period of a touched customer from the first touched one on (opening
-- balances carry forward).
WITH touched AS (
    SELECT tenant_id, environment, customer_id, min(period) AS first_period
    FROM delta_events
    WHERE run_id IN (SELECT run_id FROM staged_runs)
    GROUP BY ALL
)
SELECT DISTINCT p.tenant_id, p.environment, p.period
FROM customer_periods AS p
JOIN touched AS t USING (tenant_id, environment, customer_id)
WHERE p.period >= t.first_period;
