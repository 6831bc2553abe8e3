-- One customer's deltas, filtered and sorted as the dashboard asks, one page at a time
-- ($limit NULL: all). Filters are NULL when not given; the sort is chosen among fixed columns
-- by $sort_by and $descending, never by text from the request.
SELECT
    delta_id, occurred_at, period, amount, status, reason, reference_id, metadata, leaf_index
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
       OR contains(lower(coalesce(reference_id, '')), lower($search)))
ORDER BY
    CASE WHEN $sort_by = 'occurredAt' AND $descending THEN occurred_at END DESC NULLS LAST,
    CASE WHEN $sort_by = 'occurredAt' AND NOT $descending THEN occurred_at END ASC NULLS LAST,
    CASE WHEN $sort_by = 'amount' AND $descending THEN amount END DESC NULLS LAST,
    CASE WHEN $sort_by = 'amount' AND NOT $descending THEN amount END ASC NULLS LAST,
    CASE WHEN $sort_by = 'status' AND $descending THEN status END DESC NULLS LAST,
    CASE WHEN $sort_by = 'status' AND NOT $descending THEN status END ASC NULLS LAST,
    CASE WHEN $sort_by = 'reason' AND $descending THEN reason END DESC NULLS LAST,
    CASE WHEN $sort_by = 'reason' AND NOT $descending THEN reason END ASC NULLS LAST,
    occurred_at DESC, delta_id
LIMIT $limit OFFSET $offset;
