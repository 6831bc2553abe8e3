-- Runs still marked running when a writer takes the lock: their process died holding it.
UPDATE runs SET status = 'crashed', finished_at = $finished_at WHERE status = 'running';
