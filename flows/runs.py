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
    """Record a run that starts, under the writer lock; runs still `running` died first."""
    mark_crashed_runs(con)
    execute(
        con, "insert_run", {"run_id": run_id, "kind": kind, "as_of": as_of, "started_at": utc_now()}
    )


def mark_crashed_runs(con: duckdb.DuckDBPyConnection) -> None:
    """Mark the runs still `running` as crashed. Called by whoever holds the writer lock: only
    the holder runs, so a run that is still `running` then died holding it. Whoever takes the
    lock does this, not only a nightly run that finds the lock's note of a dead holder: an API
    write or a dry run that took the lock first would clear the note, and the dead run, left
    `running`, would never have its customers summarised again."""
    execute(con, "mark_crashed_runs", {"finished_at": utc_now()})


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
