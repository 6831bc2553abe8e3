-- The content hash of each file of an inbox ($inbox) as last hashed, with its size and time then.
SELECT path, bytes, mtime_ns, sha256 FROM inbox_hashes WHERE inbox = $inbox;
