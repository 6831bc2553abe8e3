-- Every run, oldest first: the scope of a publication into an output root that holds none of
-- the warehouse's earlier publications (`flows.publish.publish`).
SELECT run_id FROM runs ORDER BY started_at, run_id;
