-- Runs still marked running when their writer lock was found abandoned: their process died.
UPDATE runs SET status = 'crashed', finished_at = $finished_at WHERE status = 'running';
