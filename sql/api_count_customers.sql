-- How many customers of ($tenant_id, $environment) match $search (case-insensitive substring).
SELECT count(DISTINCT customer_id)
FROM customer_periods
WHERE tenant_id = $tenant_id
  AND environment = $environment
  AND ($search IS NULL OR contains(lower(customer_id), lower($search)));
