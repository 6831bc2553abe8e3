-- Which of the staged runs (staged_runs) ingested or refused at least one landing file: they
-- get a quarantine CSV (header only when nothing was refused); runs that read nothing do not.
SELECT DISTINCT run_id FROM ingested_files WHERE run_id IN (SELECT run_id FROM staged_runs)
UNION
SELECT DISTINCT run_id FROM quarantine WHERE run_id IN (SELECT run_id FROM staged_runs);
