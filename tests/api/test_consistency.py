"""Reads while a run writes: every response is the state before the run or after it, never a
mix and never an error (SPEC section 7, last line)."""

from __future__ import annotations

import threading
import time
from datetime import date

import httpx

from flows.config import Settings
from tests.api.conftest import LiveServer, csv_row
from tests.conftest import Ledger

PATHS = [
    "/dashboard/customers",
    "/dashboard/customers/summary",
    "/dashboard/customers/alice",
    "/dashboard/customers/alice/checkpoints",
    "/dashboard/customers/batch-checkpoints/export?period=2026-03",
]


def snapshot_of(client: httpx.Client) -> dict[str, object]:
    return {path: client.get(path).json() for path in PATHS}


def test_reads_during_a_run_see_before_or_after(tmp_path) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        salt_key="consistency",
        jwt_secret="consistency-secret-of-32-bytes-or-more",
    )
    ledger = Ledger(settings)
    ledger.land_csv(
        "2026-04-01.csv",
        *[
            csv_row(
                f"d{i}",
                customer="alice" if i % 3 else f"c{i}",
                amount=str(i + 1),
                occurred_at=f"2026-03-{1 + i % 28:02d}T10:00:00Z",
            )
            for i in range(300)
        ],
    )
    ledger.run(as_of=date(2026, 4, 2))

    with LiveServer(settings) as live, live.client("acme") as client:
        before = snapshot_of(client)
        # Late data for March and new customers: balances, checkpoints and lists all move.
        ledger.land_csv(
            "2026-04-02.csv",
            *[
                csv_row(
                    f"late{i}",
                    customer="alice" if i % 2 else f"new{i}",
                    amount="-0.5",
                    occurred_at="2026-03-30T10:00:00Z",
                )
                for i in range(200)
            ],
        )
        responses: list[tuple[str, int, object]] = []
        done = threading.Event()

        def hammer() -> None:
            with live.client("acme") as reader:
                while not done.is_set():
                    for path in PATHS:
                        response = reader.get(path)
                        responses.append((path, response.status_code, response.json()))

        readers = [threading.Thread(target=hammer) for _ in range(3)]
        for thread in readers:
            thread.start()
        ledger.run(as_of=date(2026, 4, 3))
        after = snapshot_of(client)
        # Keep reading until the readers have seen the new state too (the switch is one rename;
        # a fast run can end before any reader's next request).
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
            body == after[p] for p, _, body in list(responses)
        ):
            time.sleep(0.05)
        done.set()
        for thread in readers:
            thread.join()

    assert before != after
    assert len(responses) > 50
    errors = [(p, s) for p, s, _ in responses if s != 200]
    assert errors == []
    mixed = [p for p, _, body in responses if body not in (before[p], after[p])]
    assert mixed == []
    assert {body == after[p] for p, _, body in responses} == {True, False}
