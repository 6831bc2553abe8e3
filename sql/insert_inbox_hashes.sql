-- Record the content hash of each file of an inbox (staged_inbox_hashes) with its size and time.
INSERT INTO inbox_hashes BY NAME
SELECT inbox, path, bytes, mtime_ns, sha256 FROM staged_inbox_hashes;
