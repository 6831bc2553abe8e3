-- Append new checkpoint versions (staged_checkpoints).
INSERT INTO checkpoints BY NAME
SELECT
    tenant_id, environment, customer_id, period, version, fingerprint, checkpoint_id, body,
    tree_size, root, opening_balance, credits, debits, closing_balance, previous, supersedes,
    consistency_proof, signature, kid, created_at, run_id
FROM staged_checkpoints;
