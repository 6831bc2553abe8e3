-- Whether ($tenant_id, $environment) has a customer $customer_id (any accepted delta).
-- Found through the deltas_customer index, as create_deltas.sql says.
WITH customer AS MATERIALIZED (
    SELECT tenant_id, environment FROM deltas WHERE customer_id = $customer_id
)
SELECT EXISTS (
    SELECT 1 FROM customer WHERE tenant_id = $tenant_id AND environment = $environment
);
