-- Customers whose summaries a run must recompute: those its events touched (any outcome), and
-- those touched by an earlier run that crashed or failed before summarising them (its ingested
-- files are in the ledger, so no later run reads them again). A customer summarised after the
-- dead run (updated_run_id sorts after it: run ids start with their UTC start time) is done.
-- With each customer's earliest period those events touched (`from_period`): the periods
-- before it keep their summaries. Grain: (tenant_id, environment, customer_id).
WITH touched AS (
    SELECT tenant_id, environment, customer_id, max(run_id) AS run_id, min(period) AS from_period
    FROM delta_events
    WHERE run_id = $run_id
       OR run_id IN (SELECT run_id FROM runs WHERE status IN ('crashed', 'failed'))
    GROUP BY tenant_id, environment, customer_id
),
summarised AS (
    SELECT p.tenant_id, p.environment, p.customer_id, max(p.updated_run_id) AS run_id
    FROM customer_periods AS p
    SEMI JOIN touched AS t
        ON p.tenant_id = t.tenant_id AND p.environment = t.environment
        AND p.customer_id = t.customer_id
    GROUP BY p.tenant_id, p.environment, p.customer_id
)
SELECT t.tenant_id, t.environment, t.customer_id, t.from_period
FROM touched AS t
LEFT JOIN summarised AS s
    ON t.tenant_id = s.tenant_id AND t.environment = s.environment
    AND t.customer_id = s.customer_id
WHERE t.run_id = $run_id OR s.run_id IS NULL OR s.run_id < t.run_id;
