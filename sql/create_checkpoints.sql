-- Checkpoints: every version ever made of every (tenant, environment, customer, period).
-- Grain: one row per version (fingerprint). `body` is the exact JCS text that was hashed and
-- signed; the columns beside it are copies for queries, plus what SPEC section 4 keeps out of
-- the body (when, which run, which key) and the consistency proof from the version before.
CREATE TABLE IF NOT EXISTS checkpoints (
    tenant_id          VARCHAR NOT NULL,
    environment        VARCHAR NOT NULL,
    customer_id        VARCHAR NOT NULL,
    period             VARCHAR NOT NULL,
    version            INTEGER NOT NULL,
    fingerprint        VARCHAR NOT NULL,
    checkpoint_id      VARCHAR NOT NULL,
    body               VARCHAR NOT NULL,
    tree_size          BIGINT NOT NULL,
    root               VARCHAR NOT NULL,
    opening_balance    DECIMAL(38, 6) NOT NULL,
    credits            DECIMAL(38, 6) NOT NULL,
    debits             DECIMAL(38, 6) NOT NULL,
    closing_balance    DECIMAL(38, 6) NOT NULL,
    previous           VARCHAR,
    supersedes         VARCHAR,
    consistency_proof  VARCHAR,            -- JSON array of hex hashes from the superseded size
    signature          VARCHAR NOT NULL,   -- compact JWS (EdDSA) over checkpointId + fingerprint
    kid                VARCHAR NOT NULL,
    created_at         TIMESTAMP NOT NULL,
    run_id             VARCHAR NOT NULL
);
