-- Period summaries. Grain: (tenant_id, environment, customer_id, period) with at least one
-- accepted delta. Money columns count verified deltas only; counts cover every status.
CREATE TABLE IF NOT EXISTS customer_periods (
    tenant_id          VARCHAR NOT NULL,
    environment        VARCHAR NOT NULL,
    customer_id        VARCHAR NOT NULL,
    period             VARCHAR NOT NULL,
    deltas_total       BIGINT NOT NULL,
    deltas_pending     BIGINT NOT NULL,
    deltas_verified    BIGINT NOT NULL,
    deltas_failed      BIGINT NOT NULL,
    credits            DECIMAL(38, 6) NOT NULL,
    debits             DECIMAL(38, 6) NOT NULL,
    net_change         DECIMAL(38, 6) NOT NULL,
    opening_balance    DECIMAL(38, 6) NOT NULL,
    closing_balance    DECIMAL(38, 6) NOT NULL,
    first_activity_at  TIMESTAMP NOT NULL,
    last_activity_at   TIMESTAMP NOT NULL,
    updated_run_id     VARCHAR NOT NULL
);
