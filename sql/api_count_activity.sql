-- How many of one customer's deltas pass the dashboard's filters (see api_select_activity).
SELECT count(*)
FROM deltas
WHERE tenant_id = $tenant_id
  AND environment = $environment
  AND customer_id = $customer_id
  AND ($status IS NULL OR status = $status)
  AND ($reason IS NULL OR reason = $reason)
  AND ($start IS NULL OR occurred_at >= $start)
  AND ($end IS NULL OR occurred_at < $end)
  AND ($search IS NULL
       OR contains(lower(delta_id), lower($search))
       OR contains(lower(reason), lower($search))
       OR contains(lower(coalesce(reference_id, '')), lower($search)));
