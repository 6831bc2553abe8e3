-- Record the publication's slots (staged_published_files).
INSERT INTO published_files BY NAME
SELECT slot, path, kind, bytes, rows, sha256, publication_id FROM staged_published_files;
