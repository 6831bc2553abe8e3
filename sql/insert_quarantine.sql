-- Append refused rows and files (staged_quarantine).
INSERT INTO quarantine BY NAME
SELECT
    run_id, file, file_sha256, line, code, field, message, raw, tenant_id, environment,
    delta_id, quarantined_at
FROM staged_quarantine;
