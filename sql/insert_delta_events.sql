-- Append a batch's accepted events (staged_delta_events) in ingest order.
INSERT INTO delta_events BY NAME
SELECT
    event_seq, run_id, file_sha256, line, tenant_id, environment, delta_id, customer_id,
    amount, reason, reference_id, metadata, occurred_at, period, status, outcome
FROM staged_delta_events;
