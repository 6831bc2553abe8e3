"""The DuckDB warehouse: connections, the SQL files of `sql/`, and the schema.

Every statement lives in `sql/<verb_object>.sql` and is loaded through `sql()`; values are bound
as parameters, never formatted into the text. Frames are handed to DuckDB as Arrow tables
registered under the name the SQL file expects.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

# Creation order: the views come after the tables they read.
SCHEMA = (
    "create_runs",
    "create_ingested_files",
    "create_inbox_hashes",
    "create_delta_events",
    "create_deltas",
    "create_quarantine",
    "create_customer_periods",
    "create_checkpoints",
    "create_compact_ranges",
    "create_checkpoint_due",
    "create_checkpoint_coverage",
    "create_latest_checkpoints",
    "create_published_files",
    "create_publications",
)


@cache
def sql(name: str) -> str:
    """The text of `sql/<name>.sql`."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def connect(
    path: Path | str,
    *,
    read_only: bool = False,
    threads: int | None = None,
    memory_limit: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection whose session time zone is UTC (TIMESTAMP columns hold UTC)."""
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Limits are SET on the database rather than passed as connect() config: DuckDB refuses a
    # second connection to a file open in this process with a different config.
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'").fetchall()
    if threads:
        con.execute("SET threads = ?", [threads]).fetchall()
    if memory_limit:
        con.execute("SET memory_limit = ?", [memory_limit]).fetchall()
    return con


def execute(con: duckdb.DuckDBPyConnection, name: str, params: Any = None) -> None:
    """Run `sql/<name>.sql` for its effect.

    DuckDB 2 keeps a statement's result open until it is fetched, and refuses other work on the
    connection meanwhile, so the (row count) result is drained here.
    """
    con.execute(sql(name), params).fetchall()


def fetch_one(con: duckdb.DuckDBPyConnection, name: str, params: Any = None) -> tuple[Any, ...]:
    """The single row `sql/<name>.sql` returns."""
    rows = con.execute(sql(name), params).fetchall()
    if len(rows) != 1:
        raise RuntimeError(f"{name}.sql returned {len(rows)} rows, expected one")
    return rows[0]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    for name in SCHEMA:
        execute(con, name)


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Everything inside commits together or not at all."""
    con.execute("BEGIN TRANSACTION").fetchall()
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK").fetchall()
        raise
    con.execute("COMMIT").fetchall()


@contextmanager
def staged(con: duckdb.DuckDBPyConnection, **frames: pl.DataFrame) -> Iterator[None]:
    """Register frames under the names the SQL files read them by, for the block's duration."""
    for name, frame in frames.items():
        # string_view columns hand over without a copy. A frame made of many chunks (the result
        # of filters and concatenations) is made contiguous first: DuckDB inserts one chunk
        # three times faster than 26 (measured on a batch of a million deltas).
        arrow = _arrow_ready(frame).rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
        con.register(name, arrow)
    try:
        yield
    finally:
        for name in frames:
            con.unregister(name)


def _arrow_ready(frame: pl.DataFrame) -> pl.DataFrame:
    """UTC datetimes as naive timestamps, so DuckDB stores them without a zone conversion."""
    zoned = [
        pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None
    ]
    return frame.with_columns(zoned) if zoned else frame


def query_frame(con: duckdb.DuckDBPyConnection, name: str, params: Any = None) -> pl.DataFrame:
    """The result of `sql/<name>.sql` as a Polars frame."""
    return con.sql(sql(name), params=params).pl()
