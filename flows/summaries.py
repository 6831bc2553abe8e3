"""Refresh the `customer_periods` summaries of the customers a run touched."""

from __future__ import annotations

import duckdb
import polars as pl

from flows.checkpoints import mark_checkpoints_due
from flows.warehouse import execute, query_frame, staged, transaction
from transforms.summaries import customer_periods


def refresh_customer_periods(
    con: duckdb.DuckDBPyConnection, run_id: str, customers: pl.DataFrame | None = None
) -> int:
    """Recompute the period summaries of the run's customers (or of `customers`), and of the
    customers a crashed or failed run ingested but did not summarise.

    A change in one period moves the opening balance of every later one, so each customer is
    recomputed from the earliest period the runs touched (`from_period`) on, carrying in the
    closing balance of the period before; the periods before keep their summaries, so a day's
    run reads that day's customers' latest months rather than their whole history. `customers`
    without `from_period` are recomputed whole. The customers are marked due for the next
    checkpoint stage in the same transaction. Returns the number of summary rows written.
    """
    if customers is None:
        customers = query_frame(con, "select_run_customers", {"run_id": run_id})
    if customers.is_empty():
        return 0
    if "from_period" not in customers.columns:
        customers = customers.with_columns(from_period=pl.lit(None, pl.String))
    with staged(con, staged_customers=customers):
        deltas = query_frame(con, "select_customer_deltas")
        carried = query_frame(con, "select_carried_balances")
    summaries = (
        customer_periods(deltas.lazy(), carried.lazy())
        .collect()
        .with_columns(updated_run_id=pl.lit(run_id))
    )
    with (
        transaction(con),
        staged(con, staged_customers=customers, staged_customer_periods=summaries),
    ):
        execute(con, "delete_customer_periods")
        execute(con, "insert_customer_periods")
        mark_checkpoints_due(con, customers)
    return summaries.height
