-- Record how far a complete nightly checkpoint stage reached ($max_period), replacing the
-- previous record: a stage with an earlier as-of date lowers it, so that the next stage looks
-- again at every period above it.
INSERT OR REPLACE INTO checkpoint_coverage (scope, max_period, run_id, covered_at)
VALUES ('nightly', $max_period, $run_id, $covered_at);
