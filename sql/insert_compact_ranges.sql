-- The compact ranges of new checkpoint versions (staged_checkpoints), where known.
INSERT INTO compact_ranges BY NAME
SELECT fingerprint, compact_range
FROM staged_checkpoints
WHERE compact_range IS NOT NULL;
