"""Publishing to the output root (SPEC section 6): atomic for readers, resumable after a crash.

A publication covers every run not yet published (a run killed while publishing stays
unpublished, so the next run publishes its changes too) and rewrites only what those runs
changed. The protocol, in order:

1. Parquet files of the rewritten partitions go to new, unique names (`part-<runId>.parquet`);
   readers of the current manifest do not know them yet.
2. Fixed-path files (exports, receipts, batch checkpoints, quarantine, JWKS) are written to
   `_staging/<runId>/` (hidden from listings).
3. The run's manifest is written: every file of the publication (path, bytes, rows, SHA-256, in
   `manifests/<runId>.files.parquet`) and the complete current list of Parquet files per table.
4. Staged files are moved into place, each one atomically.
5. `manifests/LATEST` is switched to the new manifest: from here on readers see the new state.
6. Superseded Parquet files and staging folders are deleted, and the covered runs are marked
   published in the warehouse.

A crash before step 5 leaves the previous manifest and every Parquet file it lists intact; a
crash in step 4 can leave some fixed-path files already new (each one whole). The next run
publishes the same scope again and completes it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import duckdb
import polars as pl

from flows import progress
from flows.config import Settings
from flows.outputs import (
    CUSTOMER_PERIOD,
    PARQUET_TABLES,
    PARTITION,
    OutputFile,
    activity_files,
    batch_checkpoint_files,
    parquet_files,
    quarantine_file,
    receipt_files,
)
from flows.runs import utc_now
from flows.signing import jwks
from flows.storage import Location, open_location
from flows.warehouse import execute, query_frame, staged

log = logging.getLogger(__name__)

JWKS_PATH = ".well-known/jwks.json"
LATEST = "manifests/LATEST"
MANIFEST_SPEC = "tallyproof/manifest/v1"
STAGING = "_staging"
STEP = "publish"


@dataclass(frozen=True)
class Entry:
    path: str
    bytes: int
    rows: int
    sha256: str

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "bytes": self.bytes, "rows": self.rows, "sha256": self.sha256}


@dataclass
class PublishSummary:
    publication_id: str = ""
    runs: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    parquet_files: int = 0
    removed: int = 0
    manifest: str = ""


@dataclass(frozen=True)
class Scope:
    """What the unpublished runs changed."""

    runs: list[str]
    touched: pl.DataFrame  # customer-periods with events: activity exports, deltas partitions
    moved: pl.DataFrame  # partitions whose summaries may have moved
    checkpointed: pl.DataFrame  # customer-periods with new checkpoint versions


def publish_scope(con: duckdb.DuckDBPyConnection, runs: list[str]) -> Scope:
    frame = pl.DataFrame({"run_id": runs}, schema={"run_id": pl.String})
    with staged(con, staged_runs=frame):
        return Scope(
            runs=runs,
            touched=query_frame(con, "select_touched_customer_periods"),
            moved=query_frame(con, "select_moved_summary_partitions"),
            checkpointed=query_frame(con, "select_new_checkpoint_scope"),
        )


def publish(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    publication_id: str,
    *,
    scope: Scope | None = None,
) -> PublishSummary:
    """Publish what the unpublished runs changed (or `scope`), then mark those runs published."""
    if scope is None:
        runs = query_frame(con, "select_unpublished_runs")["run_id"].to_list()
        scope = publish_scope(con, runs)
    location = open_location(settings.output)
    previous = read_latest(location)
    writer = _Writer(location, publication_id)
    summary = PublishSummary(publication_id=publication_id, runs=scope.runs)

    parquet_lists = {
        table: list(entries) for table, entries in (previous or {}).get("parquet", {}).items()
    }
    rewritten: dict[str, set[str]] = {table: set() for table in PARQUET_TABLES}
    partitions = {
        "deltas": scope.touched.select(PARTITION).unique(),
        "customer_periods": scope.moved,
        "checkpoints": scope.checkpointed.select(PARTITION).unique(),
    }
    with progress.step(STEP):
        for table, wanted in partitions.items():
            for entry in writer.write_all(
                parquet_files(con, table, wanted.sort(PARTITION), publication_id)
            ):
                rewritten[table].add(entry.path.rsplit("/", 1)[0])
                parquet_lists.setdefault(table, []).append(entry.as_json())
        for table, folders in rewritten.items():
            parquet_lists[table] = sorted(
                (
                    e
                    for e in parquet_lists.get(table, [])
                    if e["path"].rsplit("/", 1)[0] not in folders
                    or e["path"].endswith(f"part-{publication_id}.parquet")
                ),
                key=lambda e: e["path"],
            )
        writer.write_all(_fixed_files(con, settings, scope))

        manifest_path = writer.write_manifest(scope.runs, previous, parquet_lists)
        writer.promote()
        location.write_bytes(LATEST, json.dumps({"manifest": manifest_path}).encode())
        summary.removed = _clean_up(location, rewritten, parquet_lists, publication_id)

    frame = pl.DataFrame({"run_id": scope.runs}, schema={"run_id": pl.String})
    with staged(con, staged_runs=frame):
        execute(
            con,
            "mark_runs_published",
            {"published_at": utc_now(), "publication_id": publication_id},
        )
    summary.files = len(writer.entries)
    summary.bytes = sum(e.bytes for e in writer.entries)
    summary.parquet_files = sum(len(v) for v in rewritten.values())
    summary.manifest = manifest_path
    log.info("published %d files (%d bytes) in %s", summary.files, summary.bytes, manifest_path)
    return summary


def _fixed_files(
    con: duckdb.DuckDBPyConnection, settings: Settings, scope: Scope
) -> Iterable[OutputFile]:
    """The fixed-path files, partition by partition so memory stays bounded."""
    yield OutputFile(
        JWKS_PATH,
        (json.dumps(jwks(settings), indent=2, sort_keys=True) + "\n").encode(),
        0,
        "fixed",
    )
    for run_id in scope.runs:
        yield quarantine_file(con, run_id)
    touched = scope.touched.sort(CUSTOMER_PERIOD)
    for _, part in touched.partition_by(PARTITION, as_dict=True, maintain_order=True).items():
        yield from activity_files(con, part)
    checkpointed = scope.checkpointed.sort(CUSTOMER_PERIOD)
    yield from batch_checkpoint_files(con, checkpointed.select(PARTITION).unique().sort(PARTITION))
    for _, part in checkpointed.partition_by(PARTITION, as_dict=True, maintain_order=True).items():
        yield from receipt_files(con, part)


class _Writer:
    """Writes files on several threads (storage calls release the GIL) and remembers them."""

    def __init__(self, location: Location, publication_id: str) -> None:
        self.location = location
        self.publication_id = publication_id
        self.entries: list[Entry] = []
        self.staged: list[str] = []
        self.workers = 32 if location.is_s3 else 8

    def write_all(self, files: Iterable[OutputFile]) -> list[Entry]:
        written: list[Entry] = []
        with ThreadPoolExecutor(self.workers) as pool:
            pending = []
            for file in files:
                pending.append(pool.submit(self._write, file))
                if len(pending) >= 4 * self.workers:  # keep memory bounded
                    written += [f.result() for f in pending]
                    pending = []
            written += [f.result() for f in pending]
        self.entries += written
        return written

    def _write(self, file: OutputFile) -> Entry:
        target = file.path
        if file.kind == "fixed":
            target = f"{STAGING}/{self.publication_id}/{file.path}"
        self.location.write_bytes(target, file.data, atomic=file.kind != "fixed")
        progress.advance(STEP)
        if file.kind == "fixed":
            self.staged.append(file.path)
        return Entry(file.path, len(file.data), file.rows, hashlib.sha256(file.data).hexdigest())

    def write_manifest(
        self,
        runs: list[str],
        previous: dict[str, Any] | None,
        parquet_lists: dict[str, list[dict[str, Any]]],
    ) -> str:
        files = pl.DataFrame(
            [e.as_json() for e in self.entries],
            schema={"path": pl.String, "bytes": pl.Int64, "rows": pl.Int64, "sha256": pl.String},
        )
        buffer = io.BytesIO()
        files.sort("path").write_parquet(buffer, compression="zstd")
        listing = buffer.getvalue()
        listing_path = f"manifests/{self.publication_id}.files.parquet"
        self.location.write_bytes(listing_path, listing)
        manifest = {
            "spec": MANIFEST_SPEC,
            "publicationId": self.publication_id,
            "createdAt": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "runs": runs,
            "previous": (previous or {}).get("path"),
            "files": {
                "path": listing_path,
                "bytes": len(listing),
                "rows": files.height,
                "sha256": hashlib.sha256(listing).hexdigest(),
            },
            "totals": {
                "files": files.height,
                "bytes": int(files["bytes"].sum() or 0),
                "rows": int(files["rows"].sum() or 0),
            },
            "parquet": parquet_lists,
        }
        path = f"manifests/{self.publication_id}.json"
        self.location.write_bytes(path, (json.dumps(manifest, indent=1) + "\n").encode())
        return path

    def promote(self) -> None:
        prefix = f"{STAGING}/{self.publication_id}"
        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(lambda p: self.location.move(f"{prefix}/{p}", p), self.staged))


def read_latest(location: Location) -> dict[str, Any] | None:
    """The current manifest (with its own `path`), or None before the first publication."""
    if not location.exists(LATEST):
        return None
    pointer = json.loads(location.read_bytes(LATEST))
    manifest = json.loads(location.read_bytes(pointer["manifest"]))
    return {**manifest, "path": pointer["manifest"]}


def _clean_up(
    location: Location,
    rewritten: dict[str, set[str]],
    current: dict[str, list[dict[str, Any]]],
    publication_id: str,
) -> int:
    """Delete Parquet files of rewritten partitions that the new manifest does not list (the
    superseded ones and leftovers of crashed runs), and every staging folder."""
    keep = {e["path"] for entries in current.values() for e in entries}
    removed = 0
    for folders in rewritten.values():
        for folder in folders:
            for stored in location.list_files(folder):
                in_folder = stored.relative.rsplit("/", 1)[0] == folder
                if in_folder and stored.relative not in keep:
                    location.delete(stored.relative)
                    removed += 1
    location.delete_folder(STAGING)
    location.forget_folders()
    return removed


def publish_jwks(settings: Settings) -> str:
    """Write every signing public key to `.well-known/jwks.json` at once; return its path."""
    document = json.dumps(jwks(settings), indent=2, sort_keys=True) + "\n"
    open_location(settings.output).write_bytes(JWKS_PATH, document.encode())
    return JWKS_PATH
