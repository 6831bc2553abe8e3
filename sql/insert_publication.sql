-- Record a publication ($publication_id, $manifest) after the one before it.
INSERT INTO publications
SELECT coalesce(max(seq), 0) + 1, $publication_id, $manifest, $recorded_at FROM publications;
