-- Add the deltas a batch creates (staged_deltas), with their salts and leaf places.
INSERT INTO deltas BY NAME
SELECT
    tenant_id, environment, delta_id, customer_id, period, amount, reason, reference_id,
    metadata, occurred_at, status, salt, first_event_seq, status_event_seq, leaf_index,
    run_id AS created_run_id, run_id AS updated_run_id
FROM staged_deltas;
