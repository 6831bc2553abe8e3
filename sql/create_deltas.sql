-- Deltas: the current state of every delta. Grain: (tenant_id, environment, delta_id).
-- The facts are those of the first accepted event; status only ever moves pending -> terminal.
-- A verified delta has a leaf_index, its fixed place in its (customer, period) Merkle tree, and
-- status_event_seq is the ingest position of the event that verified it (the leaf order).
CREATE TABLE IF NOT EXISTS deltas (
    tenant_id         VARCHAR NOT NULL,
    environment       VARCHAR NOT NULL,
    delta_id          VARCHAR NOT NULL,
    customer_id       VARCHAR NOT NULL,
    period            VARCHAR NOT NULL,
    amount            DECIMAL(18, 6) NOT NULL,
    reason            VARCHAR NOT NULL,
    reference_id      VARCHAR,
    metadata          VARCHAR,
    occurred_at       TIMESTAMP NOT NULL,
    status            VARCHAR NOT NULL,
    salt              VARCHAR NOT NULL,    -- HMAC-SHA256 hex, stored so rebuilds give the same leaves
    first_event_seq   BIGINT NOT NULL,
    status_event_seq  BIGINT NOT NULL,
    leaf_index        BIGINT,
    created_run_id    VARCHAR NOT NULL,
    updated_run_id    VARCHAR NOT NULL
);
