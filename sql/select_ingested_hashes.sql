-- Content hashes of every file ingested (or refused whole) before: those are skipped.
SELECT sha256 FROM ingested_files;
