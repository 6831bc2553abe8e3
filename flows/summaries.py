"""Refresh the `customer_periods` summaries of the customers a run touched."""

from __future__ import annotations

import duckdb
import polars as pl

from flows.warehouse import execute, query_frame, staged, transaction
from transforms.summaries import customer_periods


def refresh_customer_periods(
    con: duckdb.DuckDBPyConnection, run_id: str, customers: pl.DataFrame | None = None
) -> int:
    """Recompute every period summary of the run's customers (or of `customers`), and of the
    customers a crashed or failed run ingested but did not summarise.

    Whole customers are recomputed because a change in one period moves the opening balance of
    every later one. Returns the number of summary rows written.
    """
    if customers is None:
        customers = query_frame(con, "select_run_customers", {"run_id": run_id})
    if customers.is_empty():
        return 0
    with staged(con, staged_customers=customers):
        deltas = query_frame(con, "select_customer_deltas")
    summaries = (
        customer_periods(deltas.lazy()).collect().with_columns(updated_run_id=pl.lit(run_id))
    )
    with (
        transaction(con),
        staged(con, staged_customers=customers, staged_customer_periods=summaries),
    ):
        execute(con, "delete_customer_periods")
        execute(con, "insert_customer_periods")
    return summaries.height
