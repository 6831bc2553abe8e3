-- The quarantine: every refused row or file, never dropped. Grain: one row per refusal.
-- line is NULL when a whole file was refused; raw is the row as it arrived.
CREATE TABLE IF NOT EXISTS quarantine (
    run_id          VARCHAR NOT NULL,
    file            VARCHAR NOT NULL,
    file_sha256     VARCHAR NOT NULL,
    line            BIGINT,
    code            VARCHAR NOT NULL,
    field           VARCHAR,
    message         VARCHAR NOT NULL,
    raw             VARCHAR,
    tenant_id       VARCHAR,
    environment     VARCHAR,
    delta_id        VARCHAR,
    quarantined_at  TIMESTAMP NOT NULL
);
