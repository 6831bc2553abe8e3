"""Run identity and the `runs` table."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, datetime
from typing import Any

import duckdb

from flows.warehouse import execute


def new_run_id(now: datetime | None = None) -> str:
    """`run_<UTC time>_<random>`: unique across machines, and readable by time. Made before
    the writer lock is taken, so a run that waited may carry an earlier id than the run that
    went first: order runs by `runs.started_at`, never by id."""
    now = now or datetime.now(UTC)
    return f"run_{now:%Y%m%dT%H%M%SZ}_{secrets.token_hex(3)}"


def utc_now() -> datetime:
    """Now in UTC as a naive datetime, the convention of every TIMESTAMP column."""
    return datetime.now(UTC).replace(tzinfo=None)


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, kind: str, as_of: date | None) -> None:
    execute(
        con, "insert_run", {"run_id": run_id, "kind": kind, "as_of": as_of, "started_at": utc_now()}
    )


def finish_run(
    con: duckdb.DuckDBPyConnection, run_id: str, status: str, summary: dict[str, Any]
) -> None:
    execute(
        con,
        "finish_run",
        {
            "run_id": run_id,
            "status": status,
            "finished_at": utc_now(),
            "summary": json.dumps(summary),
        },
    )
