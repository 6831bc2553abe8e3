"""The nightly checkpoint stage looks only at the customers that can be stale: those whose
summaries changed since the last complete stage, and those with a period above its reach.

Every test checks the one invariant that makes that exact: for every max period, the stale
customers among the due ones are the stale customers among all of them."""

from __future__ import annotations

from datetime import date

import pytest

from flows.checkpoints import due_customers, ensure_checkpoint, stale_customers
from flows.fingerprints import Customer
from flows.warehouse import connect
from tests.conftest import Ledger, csv_row, ingest_and_die

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


def stale_names(ledger: Ledger, max_period: str) -> list[str]:
    """The stale customers up to `max_period`, found the same among the due ones and all."""
    due, full = stale_of_due_and_of_all(ledger, max_period)
    assert due == full
    return [customer for _, _, customer, _ in due]


def checkpoint_alone(ledger: Ledger, customer: str, period: str, today: date) -> dict:
    """What the API's POST checkpoint does: one customer's pass up to `period`."""
    latest, _ = ensure_checkpoint(
        ledger.settings,
        Customer("acme", "production", customer),
        period,
        today=today,
        wait_seconds=0,
    )
    return latest


def due_now(ledger: Ledger, max_period: str) -> list[str]:
    con = connect(ledger.settings.warehouse, read_only=True)
    try:
        return sorted(due_customers(con, max_period)["customer_id"].to_list())
    finally:
        con.close()


def land(ledger: Ledger, day: str, *rows: tuple[str, str, str, str]) -> None:
    """A landing file of verified deltas: (delta, customer, amount, occurred_at) each."""
    ledger.land_csv(
        f"{day}.csv",
        *(csv_row(d, customer=c, amount=a, occurred_at=at) for d, c, a, at in rows),
    )


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
    land(
        ledger,
        "2026-04-02",
        ("a0", "alice", "1", "2025-12-31T23:00:00Z"),
        ("b1", "bob", "5", "2026-02-02T00:00:00Z"),
        ("d1", "dave", "3", "2026-01-09T00:00:00Z"),
    )
    ledger.ingest()
    assert due_now(ledger, "2026-03") == ["alice", "bob", "dave"]
    assert_due_covers_stale(ledger)
    assert stale_names(ledger, "2026-03") == ["alice", "bob", "dave"]

    report = ledger.run(as_of=date(2026, 4, 3))
    assert report.checkpoints.customers == 3
    assert due_now(ledger, "2026-03") == []
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])
    assert_due_covers_stale(ledger)


def test_an_earlier_as_of_and_the_open_period_are_looked_at_again(ledger: Ledger) -> None:
    history(ledger)
    land(ledger, "2026-04-10", ("c2", "carol", "4", "2026-04-09T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 15), include_open_period=True)  # reaches April
    assert stale_of_due_and_of_all(ledger, "2026-04") == ([], [])

    # More April data, then a run that reaches March only: it empties the marks, and keeps
    # April, checkpointed while open, current (SPEC section 4: its chain follows the data).
    land(ledger, "2026-04-16", ("c3", "carol", "6", "2026-04-16T00:00:00Z"))
    report = ledger.run(as_of=date(2026, 4, 20))
    assert report.checkpoints.new_versions == 1
    assert due_now(ledger, "2026-03") == []
    assert stale_of_due_and_of_all(ledger, "2026-04") == ([], [])
    assert_due_covers_stale(ledger)

    # April grows again; the API checkpoints the open period for carol alone; April closes.
    land(ledger, "2026-04-21", ("c4", "carol", "1", "2026-04-21T00:00:00Z"))
    ledger.ingest()
    assert stale_names(ledger, "2026-04") == ["carol"]
    assert checkpoint_alone(ledger, "carol", "2026-04", date(2026, 4, 21))["version"] == 3
    assert_due_covers_stale(ledger)
    ledger.run(as_of=date(2026, 5, 2))
    assert stale_of_due_and_of_all(ledger, "2026-04") == ([], [])
    assert_due_covers_stale(ledger)


def test_a_checkpoint_for_one_customer_leaves_the_next_stage_exact(ledger: Ledger) -> None:
    """A version made through the API for an early period re-links later ones."""
    history(ledger)
    land(ledger, "2026-04-02", ("a3", "alice", "2", "2026-02-14T00:00:00Z"))
    ledger.ingest()
    assert checkpoint_alone(ledger, "alice", "2026-02", date(2026, 4, 2))["version"] == 1
    # February, new, is checkpointed; March still names January as its `previous`.
    assert stale_names(ledger, "2026-03") == ["alice"]
    assert_due_covers_stale(ledger)
    ledger.run(as_of=date(2026, 4, 3))
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])


def test_a_stage_that_fails_keeps_its_customers_due(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    history(ledger)
    late_march = [
        (d, c, "2", "2026-03-14T00:00:00Z") for d, c in [("a3", "alice"), ("c2", "carol")]
    ]
    land(ledger, "2026-04-02", *late_march)
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
    assert stale_names(ledger, "2026-03") == ["carol"]
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
        recorded = due_customers(con, "2026-03")
    finally:
        con.close()
    assert sorted(recorded["customer_id"].to_list()) == ["alice", "bob", "carol"]
    assert stale_names(ledger, "2026-03") == ["bob"]
    ledger.run(as_of=date(2026, 4, 2))
    assert stale_of_due_and_of_all(ledger, "2026-03") == ([], [])
    assert ledger.rows("SELECT max_period FROM checkpoint_coverage") == [("2026-03",)]


def test_a_checkpoint_commits_to_the_summarised_leaves_when_a_run_failed_before_them(
    ledger: Ledger,
) -> None:
    """A run that failed between ingest and summaries leaves verified deltas the summaries do
    not count yet. A checkpoint pass made meanwhile commits to the leaves its summary counts, a
    prefix of the tree, and the next run extends it with a consistency proof. (The API's
    checkpoint, which made such a pass, now summarises the failed run's customers first.)"""
    from flows.checkpoints import checkpoint_customers
    from flows.fingerprints import fingerprint_candidates
    from flows.pipeline import open_warehouse
    from flows.runs import finish_run, new_run_id
    from flows.signing import active_signing_key
    from transforms import merkle

    history(ledger)
    land(ledger, "2026-04-10", ("a4", "alice", "4", "2026-04-09T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 10))  # April is open: summarised, not checkpointed
    land(ledger, "2026-04-11", ("a5", "alice", "5", "2026-04-10T00:00:00Z"))
    settings = ledger.settings
    run_id = new_run_id()
    ingest_and_die(settings, run_id, date(2026, 4, 11))  # ingests, then fails before its summaries
    with open_warehouse(settings) as con:
        finish_run(con, run_id, "failed", {})

    alice = Customer("acme", "production", "alice")
    with open_warehouse(settings) as con:
        made = checkpoint_customers(
            con,
            run_id=new_run_id(),
            max_period="2026-04",
            key=active_signing_key(settings),
            customers=alice.frame(),
        )
    assert made.new_versions == 1
    con = connect(settings.warehouse, read_only=True)
    try:
        [first] = fingerprint_candidates(con, alice, period="2026-04")
    finally:
        con.close()
    assert (first["body"]["treeSize"], first["tamperCheck"]["leavesStored"]) == (1, 2)
    assert first["tamperCheck"]["ok"], first["tamperCheck"]

    ledger.run(as_of=date(2026, 5, 2))  # summarises the failed run's customers; April closes
    con = connect(settings.warehouse, read_only=True)
    try:
        second, first = fingerprint_candidates(con, alice, period="2026-04")
    finally:
        con.close()
    assert (second["version"], second["body"]["treeSize"]) == (2, 2)
    assert second["tamperCheck"]["ok"] and first["tamperCheck"]["ok"]
    proof = [bytes.fromhex(h) for h in first["consistencyProofToNext"]]
    merkle.verify_consistency(  # raises ProofError when it does not hold
        1, 2, bytes.fromhex(first["body"]["root"]), bytes.fromhex(second["body"]["root"]), proof
    )
