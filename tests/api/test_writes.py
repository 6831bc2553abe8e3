"""API writes that wait for a running pipeline do not hold up reads (SPEC section 7)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

from flows.config import Settings
from flows.locks import writer_lock
from tests.api.conftest import LiveServer
from tests.api.test_routes import BASE, data, failure
from tests.conftest import Ledger, csv_row


def test_writes_waiting_for_a_run_leave_reads_alone(settings: Settings) -> None:
    """Found by a review: every checkpoint POST waited for the writer lock in the server's
    thread pool, and 45 of them stalled a GET for 23 s."""
    settings = settings.with_overrides(api_write_wait_seconds=2.0)
    ledger = Ledger(settings)
    ledger.land_csv("a.csv", csv_row("d1", customer="alice", occurred_at="2026-05-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 5, 2))  # May is open: its checkpoint is still to be made
    with LiveServer(settings) as live, live.client("acme") as client:
        post = lambda: client.post(f"{BASE}/alice/checkpoint", json={"period": "2026-05"})  # noqa: E731
        with (
            writer_lock(settings.warehouse, purpose="a test run", wait_seconds=0),
            ThreadPoolExecutor(60) as pool,
        ):
            posts = [pool.submit(post) for _ in range(60)]
            listed = client.get(BASE)
            # Answered while every write still waits (they wait 2 s for the lock).
            assert not any(p.done() for p in posts)
            assert data(listed)
            answers = [p.result() for p in posts]
        for answer in answers:
            error = failure(answer, 409, "WAREHOUSE_BUSY")
            # Who holds the lock (pid, host) and where the warehouse lies are not the caller's.
            assert "details" not in error and "pid" not in error["message"]
            assert str(settings.warehouse) not in error["message"]
        made = data(post(), 201)
        assert made["created"] is True and made["body"]["period"] == "2026-05"
