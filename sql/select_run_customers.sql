-- Customers whose summaries a run must recompute: those its events touched (any outcome), and
-- those touched by an earlier run that crashed or failed before summarising them (its ingested
-- files are in the ledger, so no later run reads them again). A customer summarised by a run
-- that started after the dead run is done. Runs are ordered by when they started, which is
-- under the writer lock: a run id is made before the lock is taken, so a run that waited for
-- it can carry an earlier id than the run that went first.
-- With each customer's earliest period those events touched (`from_period`): the periods
-- before it keep their summaries. Grain: (tenant_id, environment, customer_id).
WITH relevant_runs AS (
    SELECT run_id, started_at
    FROM runs
    WHERE run_id = $run_id OR status IN ('crashed', 'failed')
),
touched AS (
    SELECT
        e.tenant_id, e.environment, e.customer_id,
        bool_or(e.run_id = $run_id) AS this_run,
        max(r.started_at) AS started_at,
        min(e.period) AS from_period
    FROM delta_events AS e
    JOIN relevant_runs AS r ON e.run_id = r.run_id
    GROUP BY e.tenant_id, e.environment, e.customer_id
),
summarised AS (
    SELECT p.tenant_id, p.environment, p.customer_id, max(r.started_at) AS started_at
    FROM customer_periods AS p
    JOIN runs AS r ON p.updated_run_id = r.run_id
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
WHERE t.this_run OR s.started_at IS NULL OR s.started_at < t.started_at;
