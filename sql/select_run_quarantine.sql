-- Everything one run ($run_id) refused, in file and line order.
SELECT run_id, file, file_sha256, line, code, field, message, raw, tenant_id, environment,
       delta_id, quarantined_at
FROM quarantine
WHERE run_id = $run_id
ORDER BY file, line NULLS FIRST;
