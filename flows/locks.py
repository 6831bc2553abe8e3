"""One writer at a time per warehouse: an advisory lock beside the DuckDB file.

`<warehouse>.lock` is held with flock(2) for as long as a run (or an API write) works on the
warehouse, and names its holder (pid, host, purpose, start) for whoever waits. The kernel drops
the lock when its process dies, so a crashed run never blocks the next one; the next holder sees
the crashed holder's note still in the file and says so; the caller marks that run crashed.

Commands that read the live warehouse share the same lock (`reader_lock`): DuckDB refuses a
writer while another process has the file open, even read-only, so a writer waits for readers
as it waits for another writer, instead of failing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flows.errors import WarehouseBusyError

log = logging.getLogger(__name__)
POLL_SECONDS = 0.25


@dataclass(frozen=True)
class Held:
    """What the lock knew when we took it."""

    crashed_holder: dict | None  # the note of a holder that died holding it


def lock_path(warehouse: Path | str) -> Path:
    return Path(f"{warehouse}.lock")


@contextmanager
def writer_lock(
    warehouse: Path | str,
    *,
    purpose: str,
    wait_seconds: float = 0.0,
) -> Iterator[Held]:
    """Hold the warehouse's writer lock, waiting up to `wait_seconds` for it.

    Raises WarehouseBusyError naming the holder when it cannot be had in time.
    """
    path = lock_path(warehouse)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_note(fd)
                if time.monotonic() >= deadline:
                    raise WarehouseBusyError(
                        f"the warehouse {warehouse} is in use by {_describe(holder)}",
                        details={"holder": holder},
                    ) from None
                if not told:
                    log.warning("waiting for %s to finish with %s", _describe(holder), warehouse)
                    told = True
                time.sleep(POLL_SECONDS)
        previous = _read_note(fd)
        crashed = previous or None
        if crashed:
            log.warning("recovering: %s ended without releasing %s", _describe(crashed), warehouse)
        _write_note(
            fd,
            {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "purpose": purpose,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
        try:
            yield Held(crashed_holder=crashed)
        finally:
            _write_note(fd, None)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_note(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        return json.loads(raw) if raw.strip() else {}
    except ValueError:
        return {"unreadable": raw[:200].decode(errors="replace")}


def _write_note(fd: int, note: dict | None) -> None:
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    if note is not None:
        os.write(fd, json.dumps(note).encode())
    os.fsync(fd)


def _describe(holder: dict) -> str:
    if not holder:
        return "another process"
    return (
        f"{holder.get('purpose', 'a writer')} (pid {holder.get('pid')} on "
        f"{holder.get('host')} since {holder.get('since')})"
    )


@contextmanager
def reader_lock(warehouse: Path | str) -> Iterator[None]:
    """Share the warehouse's lock with other readers while reading it; raise
    WarehouseBusyError at once, naming the holder, when a writer holds it.

    Read-only, and never made here: a reader that may not write the lock file (another user,
    a read-only mount) must still read, and a lock file a reader made would be its own, which
    the service's writers then could not open. Without one (no writer yet) it reads unlocked.
    """
    try:
        fd = os.open(lock_path(warehouse), os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_note(fd)
            raise WarehouseBusyError(
                f"the warehouse {warehouse} is in use by {_describe(holder)}",
                details={"holder": holder},
            ) from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
