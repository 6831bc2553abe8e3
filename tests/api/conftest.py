"""A warehouse built by the real pipeline, and the real API served over HTTP on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest
import uvicorn

from api.app import create_app
from api.security import mint_token
from flows.config import Settings
from tests.conftest import Ledger, _free_port, csv_row

AS_OF = date(2026, 5, 2)
ROWS = [
    csv_row(
        "a1", customer="alice", amount="100", reason="top-up", occurred_at="2026-02-03T10:00:00Z"
    ),
    csv_row(
        "a2",
        customer="alice",
        amount="-12.5",
        reason="usage",
        reference="inv-7",
        occurred_at="2026-03-01T00:10:00Z",
    ),
    csv_row(
        "a3",
        customer="alice",
        amount="-0.5",
        reason="usage",
        status="pending",
        occurred_at="2026-03-05T00:00:00Z",
    ),
    csv_row(
        "a4",
        customer="alice",
        amount="-2",
        reason="storage",
        status="failed",
        occurred_at="2026-03-06T00:00:00Z",
    ),
    csv_row(
        "a5", customer="alice", amount="40", reason="refund", occurred_at="2026-03-20T00:00:00Z"
    ),
    csv_row(
        "a6", customer="alice", amount="-1", reason="usage", occurred_at="2026-05-01T00:00:00Z"
    ),
    csv_row(
        "b1",
        customer="bob",
        amount="50",
        reason="top-up",
        metadata='{"plan":"pro"}',
        occurred_at="2026-03-15T00:00:00Z",
    ),
    csv_row("b2", customer="bob", amount="-7", reason="usage", occurred_at="2026-04-02T00:00:00Z"),
    csv_row(
        "b3",
        customer="bob",
        amount="-1",
        reason="usage",
        status="failed",
        occurred_at="2026-04-03T00:00:00Z",
    ),
    *[
        csv_row(
            f"c{i}",
            customer=f"cust_{i:03d}",
            amount=str(i + 1),
            reason="usage",
            occurred_at="2026-03-10T00:00:00Z",
        )
        for i in range(30)
    ],
    csv_row(
        "s1",
        environment="sandbox",
        customer="alice",
        amount="999",
        reason="test",
        occurred_at="2026-03-10T00:00:00Z",
    ),
    csv_row(
        "g1",
        tenant="globex",
        customer="alice",
        amount="5",
        reason="usage",
        occurred_at="2026-03-10T00:00:00Z",
    ),
    csv_row(
        "g2",
        tenant="globex",
        customer="gina",
        amount="5",
        reason="usage",
        occurred_at="2026-03-10T00:00:00Z",
    ),
]


class LiveServer:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = _free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def client(
        self, tenant: str = "acme", environments: list[str] | None = None, **headers: str
    ) -> httpx.Client:
        token = mint_token(self.settings, tenant, environments, 3600)
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}", **headers}, timeout=60
        )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A warehouse and outputs made by a real nightly run, shared by a module's tests."""
    root: Path = tmp_path_factory.mktemp("api")
    settings = Settings(
        data_dir=root / "data",
        salt_key="api-tests",
        jwt_secret="test-jwt-secret-of-at-least-32-bytes!",
    )
    ledger = Ledger(settings)
    ledger.land_csv("2026-05-01.csv", *ROWS)
    ledger.run(as_of=AS_OF)
    return settings


@pytest.fixture(scope="module")
def live(built: Settings) -> Iterator[LiveServer]:
    with LiveServer(built) as server:
        yield server


@pytest.fixture
def acme(live: LiveServer) -> Iterator[httpx.Client]:
    with live.client("acme") as client:
        yield client
