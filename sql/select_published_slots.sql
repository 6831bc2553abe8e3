-- The inventory rows of the staged slots (staged_slots: slot).
SELECT p.slot, p.path, p.kind, p.bytes, p.rows, p.sha256, p.publication_id
FROM published_files AS p
SEMI JOIN staged_slots AS s ON p.slot = s.slot;
