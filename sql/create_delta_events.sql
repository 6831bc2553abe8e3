-- Delta events as received: every accepted landing row, with its normalised facts.
-- Grain: one row per accepted event. event_seq is the ingest order (files by path, rows in file
-- order); outcome says what the event did: created the delta, advanced its status, or nothing.
CREATE TABLE IF NOT EXISTS delta_events (
    event_seq       BIGINT NOT NULL,
    run_id          VARCHAR NOT NULL,
    file_sha256     VARCHAR NOT NULL,
    line            BIGINT NOT NULL,
    tenant_id       VARCHAR NOT NULL,
    environment     VARCHAR NOT NULL,
    delta_id        VARCHAR NOT NULL,
    customer_id     VARCHAR NOT NULL,
    amount          DECIMAL(18, 6) NOT NULL,
    reason          VARCHAR NOT NULL,
    reference_id    VARCHAR,
    metadata        VARCHAR,               -- canonical JCS text; NULL when absent or empty
    occurred_at     TIMESTAMP NOT NULL,    -- UTC, microseconds
    period          VARCHAR NOT NULL,      -- YYYY-MM of occurred_at in UTC
    status          VARCHAR NOT NULL,      -- pending | verified | failed (aliases resolved)
    outcome         VARCHAR NOT NULL       -- created | advanced | duplicate
);
