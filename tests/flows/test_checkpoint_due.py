"""The nightly checkpoint stage looks only at the customers that can be stale: those whose
summaries changed since the last complete stage, and those with a period above its reach.

Every test checks the one invariant that makes that exact: for every max period, the stale
customers among the due ones are the stale customers among all of them."""

from __future__ import annotations

from datetime import date

import pytest

from flows.checkpoints import due_customers, ensure_checkpoint, stale_customers
from flows.fingerprints import Customer
from flows.warehouse import connect, query_frame
from tests.conftest import Ledger, csv_row

PERIODS = ["2025-12", "2026-01", "2026-02", "2026-03", "2026-04", "2026-05"]


def stale_of_due_and_of_all(ledger: Ledger, max_period: str) -> tuple[list, list]:
    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        every = con.sql(
            "SELECT DISTINCT tenant_id, environment, customer_id FROM customer_periods"
        ).pl()
        due = stale_customers(con, max_period, due_customers(con, max_period))
        full = stale_customers(con, max_period, every)
    finally:
        con.close()
    return due.rows(), full.rows()


def assert_due_covers_stale(ledger: Ledger) -> None:
    for max_period in PERIODS:
        due, full = stale_of_due_and_of_all(ledger, max_period)
        assert due == full, max_period


def due_now(ledger: Ledger, max_period: str) -> list[str]:
    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        return sorted(due_customers(con, max_period)["customer_id"].to_list())
    finally:
        con.close()


def history(ledger: Ledger) -> None:
    """Three customers over January to March, checkpointed through March."""
    ledger.land_csv(
        "2026-04-01.csv",
        csv_row("a1", customer="alice", amount="100", occurred_at="2026-01-05T10:00:00Z"),
        csv_row("a2", customer="alice", amount="-30", occurred_at="2026-03-01T00:00:00Z"),
        csv_row(
            "b1", customer="bob", amount="5", status="pending", occurred_at="2026-02-02T00:00:00Z"
        ),
        csv_row("b2", customer="bob", amount="7", occurred_at="2026-03-02T00:00:00Z"),
        csv_row("c1", customer="carol", amount="9", occurred_at="2026-02-20T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 4, 2))


def test_a_day_looks_at_the_customers_it_touched_and_finds_every_stale_one(
    ledger: Ledger,
) -> None:
    history(ledger)
    assert due_now(ledger, "2026-03") == []
    assert_due_covers_stale(ledger)

    # Late data: a new earliest period (alice), a status moved forward (bob), a new customer.
    ledger.land_csv(
        "2026-04-02.csv",
        csv_row("a0", customer="alice", amount="1", occurred_at="2025-12-31T23:00:00Z"),
        csv_row("b1", customer="bob", amount="5", occurred_at="2026-02-02T00:00:00Z"),
        csv_row("d1", customer="dave", amount="3", occurred_at="2026-01-09T00:00:00Z"),
    )
    ledger.ingest()
    assert due_now(ledger, "2026-03") == ["alice", "bob", "dave"]
    assert_due_covers_stale(ledger)
    assert [r[2] for r in stale_of_due_and_of_all(ledger, "2026-03")[0]] == [
        "alice",
        "bob",
        "dave",
    ]

    report = ledger.run(as_of=date(2026, 4, 3))
    assert report.checkpoints.customers == 3
    assert due_now(ledger, "2026-03") == []
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])
    assert_due_covers_stale(ledger)


def test_an_earlier_as_of_and_the_open_period_are_looked_at_again(ledger: Ledger) -> None:
    history(ledger)
    ledger.land_csv(
        "2026-04-10.csv",
        csv_row("c2", customer="carol", amount="4", occurred_at="2026-04-09T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 4, 15), include_open_period=True)  # reaches April
    assert stale_of_due_and_of_all(ledger, "2026-04") == ([], [])

    # More April data, then a run that reaches March only: it empties the marks, and April,
    # now stale, lies above its reach.
    ledger.land_csv(
        "2026-04-16.csv",
        csv_row("c3", customer="carol", amount="6", occurred_at="2026-04-16T00:00:00Z"),
    )
    ledger.run(as_of=date(2026, 4, 20))
    assert due_now(ledger, "2026-03") == []
    assert due_now(ledger, "2026-04") == ["carol"]
    assert_due_covers_stale(ledger)
    assert [r[2] for r in stale_of_due_and_of_all(ledger, "2026-04")[0]] == ["carol"]

    # The API checkpoints the open period for carol alone; then April closes.
    latest, created = ensure_checkpoint(
        ledger.settings,
        Customer("acme", "production", "carol"),
        "2026-04",
        today=date(2026, 4, 21),
        wait_seconds=0,
    )
    assert created and latest["version"] == 2
    assert_due_covers_stale(ledger)
    ledger.run(as_of=date(2026, 5, 2))
    assert stale_of_due_and_of_all(ledger, "2026-04") == ([], [])
    assert_due_covers_stale(ledger)


def test_a_checkpoint_for_one_customer_leaves_the_next_stage_exact(ledger: Ledger) -> None:
    """A version made through the API for an early period re-links later ones."""
    history(ledger)
    ledger.land_csv(
        "2026-04-02.csv",
        csv_row("a3", customer="alice", amount="2", occurred_at="2026-02-14T00:00:00Z"),
    )
    ledger.ingest()
    ensure_checkpoint(
        ledger.settings,
        Customer("acme", "production", "alice"),
        "2026-02",
        today=date(2026, 4, 2),
        wait_seconds=0,
    )
    # February is checkpointed; March still names January as its `previous`.
    assert [r[2] for r in stale_of_due_and_of_all(ledger, "2026-03")[0]] == ["alice"]
    assert_due_covers_stale(ledger)
    ledger.run(as_of=date(2026, 4, 3))
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])


def test_a_stage_that_fails_keeps_its_customers_due(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(ledger)
    ledger.land_csv(
        "2026-04-02.csv",
        csv_row("a3", customer="alice", amount="2", occurred_at="2026-03-14T00:00:00Z"),
        csv_row("c2", customer="carol", amount="2", occurred_at="2026-03-14T00:00:00Z"),
    )
    import flows.checkpoints as checkpoints

    store = checkpoints._store_pass
    stored: list[int] = []

    def crash_on_second_pass(*args, **kwargs) -> None:
        if stored:
            raise RuntimeError("killed between passes")
        store(*args, **kwargs)
        stored.append(1)

    monkeypatch.setattr(checkpoints, "CUSTOMERS_PER_PASS", 1)
    monkeypatch.setattr(checkpoints, "_store_pass", crash_on_second_pass)
    with pytest.raises(RuntimeError, match="killed"):
        ledger.run(as_of=date(2026, 4, 3))
    assert due_now(ledger, "2026-03") == ["alice", "carol"]
    assert [r[2] for r in stale_of_due_and_of_all(ledger, "2026-03")[0]] == ["carol"]
    assert_due_covers_stale(ledger)

    monkeypatch.setattr(checkpoints, "_store_pass", store)
    ledger.run(as_of=date(2026, 4, 3))
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])


def test_without_a_recorded_stage_every_customer_is_looked_at(ledger: Ledger) -> None:
    """A warehouse kept from before the marks (no coverage row) gets one whole scan."""
    history(ledger)
    con = connect(ledger.settings.warehouse)
    try:
        con.execute("DELETE FROM checkpoint_coverage").fetchall()
        con.execute("DELETE FROM checkpoints WHERE customer_id = 'bob'").fetchall()
        recorded = query_frame(con, "select_due_customers", {"max_period": "2026-03"})
    finally:
        con.close()
    assert sorted(recorded["customer_id"].to_list()) == ["alice", "bob", "carol"]
    assert [r[2] for r in stale_of_due_and_of_all(ledger, "2026-03")[0]] == ["bob"]
    ledger.run(as_of=date(2026, 4, 2))
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])
    assert ledger.rows("SELECT max_period FROM checkpoint_coverage") == [("2026-03",)]
