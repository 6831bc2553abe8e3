-- The publication that last covered a run: what the output root's LATEST names when the root
-- holds what the inventory says (`flows.publish.publish`).
SELECT publication_id FROM runs
WHERE published_at IS NOT NULL
ORDER BY published_at DESC, publication_id DESC
LIMIT 1;
