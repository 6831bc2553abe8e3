-- Current state of the deltas a batch names (staged_keys: tenant_id, environment, delta_id).
-- Grain: one row per known delta.
SELECT
    d.tenant_id, d.environment, d.delta_id, d.customer_id, d.period, d.amount, d.reason,
    d.reference_id, d.metadata, d.occurred_at AS occurred_at_utc, d.status, d.first_event_seq
FROM deltas AS d
SEMI JOIN staged_keys AS k
    ON d.tenant_id = k.tenant_id AND d.environment = k.environment AND d.delta_id = k.delta_id;
