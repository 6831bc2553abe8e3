-- The manifest of the last publication: from `publications`, or, in a warehouse from before
-- that table, of the publication that last covered a run.
SELECT manifest FROM (
    SELECT manifest, 1 AS recorded, seq AS place FROM publications
    UNION ALL
    SELECT 'manifests/' || publication_id || '.json', 0, 0 FROM (
        SELECT publication_id FROM runs
        WHERE published_at IS NOT NULL
        ORDER BY published_at DESC, publication_id DESC
        LIMIT 1
    )
)
ORDER BY recorded DESC, place DESC
LIMIT 1;
