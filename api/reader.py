"""Read-only connections to the current warehouse snapshot (see `flows.snapshots`).

Every request gets its own cursor on the snapshot that was current when it started, so a
response never mixes two snapshots, and a run that writes the warehouse meanwhile is invisible
until it switches CURRENT.
"""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

from flows.config import Settings
from flows.snapshots import current_snapshot
from flows.warehouse import connect, ensure_schema


class SnapshotReader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._connection: duckdb.DuckDBPyConnection | None = None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        path = current_snapshot(self.settings)
        with self._lock:
            if self._connection is None or path != self._path:
                # The previous connection is not closed: requests still reading it keep it
                # alive through their cursors, and it goes when they are done.
                self._connection = self._open(path)
                self._path = path
            return self._connection.cursor()

    @staticmethod
    def _open(path: Path | None) -> duckdb.DuckDBPyConnection:
        if path is None:  # no run yet: an empty warehouse
            con = connect(":memory:")
            ensure_schema(con)
            return con
        return connect(path, read_only=True)

    @property
    def snapshot(self) -> str | None:
        return self._path.name if self._path else None
