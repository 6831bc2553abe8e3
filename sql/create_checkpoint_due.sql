-- Customers whose checkpoints may have gone out of date since the last complete nightly
-- checkpoint stage (`checkpoint_coverage`): their summaries were rewritten. Marked in the same
-- transaction as the new summaries; emptied when a nightly stage has checked them all.
-- Grain: (tenant_id, environment, customer_id).
CREATE TABLE IF NOT EXISTS checkpoint_due (
    tenant_id   VARCHAR NOT NULL,
    environment VARCHAR NOT NULL,
    customer_id VARCHAR NOT NULL
);
