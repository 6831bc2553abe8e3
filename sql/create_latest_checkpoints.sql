-- The latest version of every checkpointed (tenant, environment, customer, period).
CREATE OR REPLACE VIEW latest_checkpoints AS
SELECT *
FROM checkpoints
QUALIFY version = max(version) OVER (PARTITION BY tenant_id, environment, customer_id, period);
