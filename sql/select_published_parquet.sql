-- Every Parquet file the inventory lists, for the manifest's complete listing.
SELECT slot, path, kind, bytes, rows, sha256, publication_id
FROM published_files
WHERE kind = 'parquet'
ORDER BY path;
