-- Move known deltas forward (staged_status_moves): pending -> verified or failed. A delta that
-- becomes verified gets its leaf place.
UPDATE deltas AS d
SET status = m.status,
    status_event_seq = m.status_event_seq,
    leaf_index = m.leaf_index,
    updated_run_id = m.run_id
FROM staged_status_moves AS m
WHERE d.tenant_id = m.tenant_id AND d.environment = m.environment AND d.delta_id = m.delta_id;
