-- How far the last complete nightly checkpoint stage reached: when it ended, every customer
-- not in `checkpoint_due` had an up-to-date latest checkpoint of every period up to
-- max_period. At most one row (scope 'nightly'). Without it (a new warehouse, or one kept
-- from before this table) the next stage checks every customer.
CREATE TABLE IF NOT EXISTS checkpoint_coverage (
    scope       VARCHAR PRIMARY KEY,
    max_period  VARCHAR NOT NULL,
    run_id      VARCHAR NOT NULL,
    covered_at  TIMESTAMP NOT NULL
);
