-- Whether ($tenant_id, $environment) has a customer $customer_id (any accepted delta).
SELECT EXISTS (
    SELECT 1 FROM deltas
    WHERE tenant_id = $tenant_id AND environment = $environment AND customer_id = $customer_id
);
