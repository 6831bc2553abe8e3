"""Shared fixtures: an isolated data folder per test, a real DuckDB file, and (only for the
tests that ask for it) one Prefect test harness for the whole session."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

# Before anything imports Prefect: no network, a private home, quiet logs.
_PREFECT_HOME = tempfile.mkdtemp(prefix="tallyproof-prefect-")
os.environ.setdefault("PREFECT_HOME", _PREFECT_HOME)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("PREFECT_API_URL", None)
for name in list(os.environ):
    if name.startswith("TALLYPROOF_"):
        del os.environ[name]

import logging  # noqa: E402

logging.getLogger("werkzeug").setLevel(logging.WARNING)

from flows.config import Settings, get_settings  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CASES = Path(__file__).resolve().parent / "cases"


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose every folder is under this test's tmp_path."""
    monkeypatch.setenv("TALLYPROOF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TALLYPROOF_SALT_KEY", "test-salt-key")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for every flow test of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


HEADER = (
    "tenant_id,environment,delta_id,customer_id,amount,reason,reference_id,status,occurred_at,"
    "metadata"
)


def csv_row(
    delta: str,
    *,
    tenant: str = "acme",
    environment: str = "production",
    customer: str = "c1",
    amount: str = "10",
    reason: str = "usage",
    reference: str = "",
    status: str = "verified",
    occurred_at: str = "2026-03-05T10:00:00Z",
    metadata: str = "",
) -> str:
    """One landing CSV record (fields with commas or quotes are quoted)."""
    fields = [
        tenant,
        environment,
        delta,
        customer,
        amount,
        reason,
        reference,
        status,
        occurred_at,
        metadata,
    ]
    return ",".join(
        '"' + f.replace('"', '""') + '"' if any(c in f for c in ',"\n') else f for f in fields
    )


class Ledger:
    """A real warehouse file and inbox folder, ingested through the real code."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.inbox = Path(settings.inbox)
        self.inbox.mkdir(parents=True, exist_ok=True)

    def land(self, name: str, content: str | bytes) -> Path:
        path = self.inbox / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    def land_csv(self, name: str, *rows: str) -> Path:
        return self.land(name, "\n".join([HEADER, *rows]) + "\n")

    def ingest(self):  # -> IngestSummary
        """Only the ingest and summary stages, for tests of ingest."""
        from flows.ingest import ingest_inbox
        from flows.keys import salt_key
        from flows.pipeline import open_warehouse
        from flows.runs import finish_run, new_run_id, start_run
        from flows.summaries import refresh_customer_periods

        with open_warehouse(self.settings) as con:
            run_id = new_run_id()
            start_run(con, run_id, "test", None)
            summary = ingest_inbox(
                con,
                inbox=self.settings.inbox,
                run_id=run_id,
                salt_key=salt_key(self.settings),
                batch_rows=self.settings.batch_rows,
                rehash=self.settings.rehash_inbox,
            )
            refresh_customer_periods(con, run_id)
            finish_run(con, run_id, "succeeded", {})
        return summary

    def run(self, as_of: date = date(2026, 11, 24), *, include_open_period: bool = False):
        """A whole nightly run, its stages called as plain functions (no Prefect)."""
        from flows.pipeline import run_nightly

        return run_nightly(
            self.settings,
            as_of=as_of,
            include_open_period=include_open_period,
            kind="test",
            orchestrated=False,
        )

    def rows(self, query: str, params: object = None) -> list[tuple]:
        from flows.warehouse import connect

        con = connect(self.settings.warehouse, read_only=True)
        try:
            return con.execute(query, params).fetchall()
        finally:
            con.close()


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger(settings)


def ingest_and_die(settings: Settings, run_id: str, as_of: date | None):  # -> IngestSummary
    """Ingest the inbox as nightly run `run_id` and stop there, the run left `running`: a run
    that died after its ingest, as a `kill -9` leaves it."""
    from flows.pipeline import ingest_task, open_warehouse
    from flows.runs import start_run

    with open_warehouse(settings) as con:
        start_run(con, run_id, "nightly", as_of)
        return ingest_task.fn(con, settings, run_id)  # the nightly run's own ingest


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible server on loopback (moto's server mode), for the whole session."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the loopback server, with the standard AWS variables pointing at it."""
    import uuid

    from flows.storage import s3_filesystem

    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    bucket = f"tallyproof-{uuid.uuid4().hex[:12]}"
    s3_filesystem().create_dir(bucket)
    return bucket
