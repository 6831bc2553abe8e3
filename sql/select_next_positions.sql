-- Where the ingest order continues: the next event position and the next file position.
SELECT
    (SELECT coalesce(max(event_seq), 0) + 1 FROM delta_events) AS next_event_seq,
    (SELECT coalesce(max(file_order), -1) + 1 FROM ingested_files) AS next_file_order;
