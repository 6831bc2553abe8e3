-- Runs: one row per pipeline run (nightly, backfill) or API action that writes.
-- Grain: run_id. Timestamps here and in every table are UTC (TIMESTAMP without zone).
CREATE TABLE IF NOT EXISTS runs (
    run_id      VARCHAR PRIMARY KEY,
    kind        VARCHAR NOT NULL,          -- nightly | backfill | api
    as_of       DATE,
    started_at  TIMESTAMP NOT NULL,
    finished_at TIMESTAMP,
    status      VARCHAR NOT NULL,          -- running | succeeded | failed | crashed
    summary     JSON,                      -- the run summary the CLI prints with --json
    published_at    TIMESTAMP,             -- when a completed publication covered this run
    publication_id  VARCHAR                -- the run whose manifest covered it
);
