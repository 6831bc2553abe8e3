"""Read snapshots of the warehouse for the API (SPEC section 7, last line).

DuckDB lets one process write a database file, and no other process open it meanwhile. So the
API never opens the warehouse: at the end of every run the writer copies the (checkpointed,
closed) warehouse file to `snapshots/<id>.duckdb` and then switches `snapshots/CURRENT` to it.
Readers follow CURRENT; each response comes from one snapshot, the one before a run or the one
after it. Old snapshots are deleted once two newer ones exist (a reader still holding one keeps
reading it: on POSIX an open file outlives its name).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from flows.config import Settings

CURRENT = "CURRENT"
KEEP = 2


def snapshot_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "snapshots"


def take_snapshot(settings: Settings, snapshot_id: str) -> Path:
    """Copy the warehouse (whose writer connection is closed) and make the copy current."""
    folder = snapshot_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{snapshot_id}.duckdb"
    temporary = folder / f".{snapshot_id}.duckdb.tmp"
    shutil.copyfile(settings.warehouse, temporary)
    os.replace(temporary, target)
    pointer = folder / f".{CURRENT}.tmp"
    pointer.write_text(target.name + "\n")
    os.replace(pointer, folder / CURRENT)
    _prune(folder, keep=target.name)
    return target


def current_snapshot(settings: Settings) -> Path | None:
    pointer = snapshot_dir(settings) / CURRENT
    if not pointer.exists():
        return None
    path = snapshot_dir(settings) / pointer.read_text().strip()
    return path if path.exists() else None


def _prune(folder: Path, keep: str) -> None:
    snapshots = sorted(folder.glob("*.duckdb"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in snapshots[KEEP:]:
        if old.name != keep:
            old.unlink(missing_ok=True)
