-- Forget the staged slots (staged_slots: slot) and every shard slot of the staged Parquet
-- folders (staged_folders: folder), before the publication's rows replace them.
DELETE FROM published_files
WHERE slot IN (SELECT slot FROM staged_slots)
   OR (kind = 'parquet' AND split_part(slot, '#', 1) IN (SELECT folder FROM staged_folders));
