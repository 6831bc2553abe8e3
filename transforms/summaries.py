"""Per-customer period summaries (the `customer_periods` table and BI feed).

One row per (tenant, environment, customer, period) with at least one accepted delta: counts by
status, and over verified deltas only the credits, debits, net change, opening balance (every
earlier period) and closing balance; first and last activity over all of the period's deltas.
"""

from __future__ import annotations

import polars as pl

from transforms.amounts import SUM_DTYPE

CUSTOMER = ["tenant_id", "environment", "customer_id"]
PERIOD_KEY = [*CUSTOMER, "period"]


def customer_periods(deltas: pl.LazyFrame, carried: pl.LazyFrame | None = None) -> pl.LazyFrame:
    """Summaries of every period of the customers in `deltas`.

    `deltas` needs PERIOD_KEY, `amount`, `status` and `occurred_at_utc`, and holds every delta
    of each of its customers from some period on (whole customers, or every period from the
    first one that changed). `carried` (CUSTOMER, `carried_balance`) is the closing balance of
    each customer's period before that; a customer not in it starts from zero.
    """
    verified = pl.col("status") == "verified"
    amount = pl.col("amount").cast(SUM_DTYPE)
    zero = pl.lit(0).cast(SUM_DTYPE)
    per_period = deltas.group_by(PERIOD_KEY).agg(
        deltas_total=pl.len().cast(pl.Int64),
        deltas_pending=(pl.col("status") == "pending").sum().cast(pl.Int64),
        deltas_verified=verified.sum().cast(pl.Int64),
        deltas_failed=(pl.col("status") == "failed").sum().cast(pl.Int64),
        credits=pl.when(verified & (amount > 0)).then(amount).otherwise(zero).sum(),
        debits=pl.when(verified & (amount < 0)).then(amount).otherwise(zero).sum(),
        first_activity_at=pl.col("occurred_at_utc").min(),
        last_activity_at=pl.col("occurred_at_utc").max(),
    )
    net = (pl.col("credits") + pl.col("debits")).cast(SUM_DTYPE)
    summaries = (
        per_period.sort(PERIOD_KEY)
        .with_columns(net_change=net)
        .with_columns(closing_balance=pl.col("net_change").cum_sum().over(CUSTOMER))
    )
    if carried is not None:
        summaries = summaries.join(carried, on=CUSTOMER, how="left").with_columns(
            closing_balance=pl.col("closing_balance") + pl.col("carried_balance").fill_null(zero)
        )
    return (
        summaries.with_columns(pl.col("closing_balance").cast(SUM_DTYPE))
        .with_columns(
            opening_balance=(pl.col("closing_balance") - pl.col("net_change")).cast(SUM_DTYPE)
        )
        .select(
            *PERIOD_KEY,
            "deltas_total",
            "deltas_pending",
            "deltas_verified",
            "deltas_failed",
            "credits",
            "debits",
            "net_change",
            "opening_balance",
            "closing_balance",
            "first_activity_at",
            "last_activity_at",
        )
    )
