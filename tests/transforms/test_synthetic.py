"""The generator's contract (SPEC section 8, `generate`): counts per tenant, bad-row share,
and windows that overlap agreeing on the months they share."""

from __future__ import annotations

import polars as pl
import pytest

from transforms.synthetic import GeneratorSpec, landing_events


def test_customers_are_per_tenant_production_and_sandbox_together() -> None:
    spec = GeneratorSpec(tenants=3, customers=40, months=2, deltas_per_month=500, seed=3)
    events = landing_events(spec).filter(pl.col("corruption").is_null())
    per_tenant = events.group_by("tenant_id").agg(
        customers=pl.struct("environment", "customer_id").n_unique(),
        sandbox=pl.col("customer_id").filter(pl.col("environment") == "sandbox").n_unique(),
    )
    assert per_tenant["customers"].to_list() == [40, 40, 40]
    assert per_tenant["sandbox"].to_list() == [8, 8, 8]


def test_deltas_per_month_are_per_tenant() -> None:
    spec = GeneratorSpec(tenants=2, customers=10, months=3, deltas_per_month=300, seed=5)
    first = landing_events(spec).filter(pl.col("corruption").is_null())
    counts = first.group_by("tenant_id", month=pl.col("delta_id").str.slice(8, 6)).agg(
        deltas=pl.col("delta_id").n_unique()
    )
    assert counts["deltas"].to_list() == [300] * 6


@pytest.mark.parametrize("rate", [0.05, 0.3])
def test_bad_rows_are_their_share_of_all_rows(rate: float) -> None:
    spec = GeneratorSpec(tenants=2, customers=30, months=2, deltas_per_month=2_000, bad_rows=rate)
    events = landing_events(spec)
    share = events["corruption"].is_not_null().mean()
    assert share == pytest.approx(rate, abs=0.002)


def test_windows_that_overlap_agree_on_the_months_they_share() -> None:
    """The demo generates up to last month each time it is run: a month later, its window has
    moved on by one. Delta ids used to number months within the window, so the same id meant
    another delta and the second window's run was all DELTA_CONFLICT. Now only the window's
    first month differs: its first deltas go to every customer in turn."""

    def window(end_month: str) -> pl.DataFrame:
        spec = GeneratorSpec(customers=30, months=4, deltas_per_month=400, end_month=end_month)
        return landing_events(spec).filter(pl.col("delta_id").str.slice(8, 6) == "202609")

    earlier, later = window("2026-10"), window("2026-11")
    assert earlier.height > 800
    assert earlier.sort(pl.all()).equals(later.sort(pl.all()))
