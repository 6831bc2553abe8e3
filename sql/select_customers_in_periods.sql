-- Customers with at least one accepted delta in $first..$last (inclusive).
SELECT DISTINCT tenant_id, environment, customer_id
FROM customer_periods
WHERE period BETWEEN $first AND $last
ORDER BY ALL;
