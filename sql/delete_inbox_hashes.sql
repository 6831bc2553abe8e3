-- Forget what an inbox ($inbox) held: its files are recorded again as they are now.
DELETE FROM inbox_hashes WHERE inbox = $inbox;
