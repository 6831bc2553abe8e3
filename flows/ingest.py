"""Ingest: landing files into the warehouse, exactly once, in ingest order (SPEC section 2).

Files are read in lexicographic order of their path below the inbox. A file whose content was
ingested before is skipped. Rows are validated per file, then merged into the ledger in batches
of whole files (`Settings.batch_rows`), each batch in one transaction together with the record
of its files: a run that dies half-way leaves whole batches behind, and the next run picks up
exactly the files that are not recorded yet.

Finding the new files does not read the whole inbox every run: the hash of each file is kept
with its size and modification time (`inbox_hashes`), and a file whose size and time are
unchanged is taken to hold what it held, as git's index does. The hash is kept only for a file
that was last modified well before it was read (`TRUST_MARGIN_NS`), so a rewrite within the
timestamp's resolution is never missed. `Settings.rehash_inbox` reads and hashes every file.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property

import duckdb
import polars as pl

from flows import clock, progress
from flows.readers import FileRefusal, read_landing_file
from flows.storage import StoredFile, open_location
from flows.warehouse import execute, fetch_one, query_frame, staged, transaction
from transforms import codes
from transforms.ledger import (
    ADVANCED,
    CREATED,
    DUPLICATE,
    KEY,
    TREE,
    ledger_changes,
    with_leaf_indices,
)
from transforms.salts import salt_expr
from transforms.validate import validated_rows

log = logging.getLogger(__name__)

STEP = "ingest"
LANDING_THREADS = 3
# How much older than the moment it was read a file must be for its hash to be kept: local
# filesystems stamp to the nanosecond or (FAT, some network mounts) to 2 s; S3 stamps to the
# second by the server's clock, which may be behind ours (AWS refuses requests 15 minutes off).
TRUST_MARGIN_NS = {"local": 2 * 10**9, "s3": 15 * 60 * 10**9}


@contextmanager
def _timed(stage: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    log.debug("ingest %s: %.3f s", stage, time.perf_counter() - started)


@dataclass
class IngestSummary:
    files_seen: int = 0
    files_ingested: int = 0
    files_skipped: int = 0
    files_quarantined: int = 0
    rows_read: int = 0
    rows_accepted: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0
    quarantine_by_code: Counter[str] = field(default_factory=Counter)


@dataclass
class _LandedFile:
    path: str
    sha256: str  # of the content; empty for a file refused unread (`_refuse_key`)
    size: int
    file_order: int
    rows: pl.LazyFrame | None  # landing rows; None when the file was refused whole
    refusal: FileRefusal | None = None
    rows_read: int = 0  # known once the batch is collected


@dataclass
class _Batch:
    """Files in ingest order, parsed in the background until the batch is merged."""

    landing: list[Future[_LandedFile]] = field(default_factory=list)
    estimated_rows: int = 0

    def add(self, landing: Future[_LandedFile], estimated_rows: int) -> None:
        self.landing.append(landing)
        self.estimated_rows += estimated_rows

    @cached_property
    def files(self) -> list[_LandedFile]:
        return [landed.result() for landed in self.landing]


def ingest_inbox(
    con: duckdb.DuckDBPyConnection,
    *,
    inbox: str,
    run_id: str,
    salt_key: bytes,
    batch_rows: int,
    rehash: bool = False,
) -> IngestSummary:
    """Ingest every new file of `inbox`; return what happened.

    With `rehash`, every file is read and hashed, even one unchanged since it was last hashed."""
    location = open_location(inbox)
    location.require_folder("inbox")
    files = location.list_files()
    summary = IngestSummary(files_seen=len(files))
    known = set(query_frame(con, "select_ingested_hashes")["sha256"].to_list())
    margin_ns = TRUST_MARGIN_NS["s3" if location.is_s3 else "local"]
    where = location.uri  # the resolved folder: the same inbox named two ways is one
    hashes = _InboxHashes(where, margin_ns) if rehash else _InboxHashes.of(con, where, margin_ns)
    next_seq, next_file_order = fetch_one(con, "select_next_positions")
    batch = _Batch()
    # Files are parsed on a few threads (Polars' CSV reader lets go of the GIL) while this one
    # reads and hashes the next: parsing one small file at a time leaves a core idle.
    with (
        ThreadPoolExecutor(LANDING_THREADS, thread_name_prefix="landing") as landing,
        progress.step(STEP, total=sum(f.size for f in files)),
    ):
        for stored in files:
            if not location.readable_as_listed(stored):
                batch.add(landing.submit(_refuse_key, stored, next_file_order), 0)
                next_file_order += 1
                progress.advance(STEP, stored.size)
                continue
            if hashes.unchanged(stored) in known:  # ingested before, and unchanged since
                hashes.keep(stored)
                data, digest = None, None
            else:
                read_at = time.time_ns()
                data = location.read_listed(stored)
                digest = hashlib.sha256(data).hexdigest()
                hashes.hashed(stored, digest, read_at)
            if data is None or digest in known:
                summary.files_skipped += 1
                progress.advance(STEP, stored.size)
                continue
            known.add(digest)  # the same content twice in one inbox is ingested once
            # Lines estimate rows well enough to size batches (Parquet: bytes / 100).
            estimate = (
                data.count(b"\n") if not stored.relative.endswith(".parquet") else len(data) // 100
            )
            batch.add(
                landing.submit(_land, stored.relative, data, digest, next_file_order), estimate
            )
            next_file_order += 1
            if batch.estimated_rows >= batch_rows:
                next_seq = _merge(con, batch, run_id, salt_key, next_seq, summary)
                batch = _Batch()
            progress.advance(STEP, stored.size)
        if batch.landing:
            _merge(con, batch, run_id, salt_key, next_seq, summary)
    # Only now: a run that dies half-way leaves the hashes of the last run that did not.
    hashes.save(con)
    return summary


@dataclass
class _InboxHashes:
    """The content hash of each inbox file as of its size and modification time."""

    inbox: str
    margin_ns: int
    # path: (bytes, mtime_ns, sha256) as the last run recorded them, and as this one will
    last: dict[str, tuple[int, int, str]] = field(default_factory=dict)
    now: dict[str, tuple[int, int, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, con: duckdb.DuckDBPyConnection, inbox: str, margin_ns: int) -> _InboxHashes:
        """The hashes recorded by the last run over `inbox`."""
        rows = query_frame(con, "select_inbox_hashes", {"inbox": inbox}).iter_rows()
        return cls(inbox, margin_ns, {path: (size, mtime, sha) for path, size, mtime, sha in rows})

    def unchanged(self, stored: StoredFile) -> str | None:
        """The file's hash when its size and time are those it had when hashed, else None."""
        last = self.last.get(stored.relative)
        if last is None or last[:2] != (stored.size, stored.mtime_ns):
            return None
        return last[2]

    def keep(self, stored: StoredFile) -> None:
        self.now[stored.relative] = self.last[stored.relative]

    def hashed(self, stored: StoredFile, digest: str, read_at_ns: int) -> None:
        if stored.mtime_ns is not None and stored.mtime_ns < read_at_ns - self.margin_ns:
            self.now[stored.relative] = (stored.size, stored.mtime_ns, digest)

    def save(self, con: duckdb.DuckDBPyConnection) -> None:
        frame = pl.DataFrame(
            [(path, *row) for path, row in self.now.items()],
            schema=["path", "bytes", "mtime_ns", "sha256"],
            orient="row",
        ).with_columns(inbox=pl.lit(self.inbox))
        with transaction(con):
            execute(con, "delete_inbox_hashes", {"inbox": self.inbox})
            if frame.height:
                with staged(con, staged_inbox_hashes=frame):
                    execute(con, "insert_inbox_hashes")


def _refuse_key(stored: StoredFile, file_order: int) -> _LandedFile:
    """A file refused for its name alone, unread: it has no content hash (`sha256` is empty),
    so it is not recorded as ingested and is refused again by every run until renamed."""
    refusal = FileRefusal(
        codes.UNREADABLE_FILE,
        f"{stored.relative}: S3 clients resolve '.' and '..' and refuse empty segments in a key,"
        " so this object cannot be read under its own name; rename it",
    )
    log.warning("quarantined a whole file: %s", refusal.message)
    return _LandedFile(stored.relative, "", stored.size, file_order, None, refusal)


def _land(path: str, data: bytes, digest: str, file_order: int) -> _LandedFile:
    read = read_landing_file(path, data, file_order)
    if isinstance(read, FileRefusal):
        log.warning("quarantined a whole file: %s", read.message)
        return _LandedFile(path, digest, len(data), file_order, None, read)
    return _LandedFile(
        path, digest, len(data), file_order, read.with_columns(_file_sha256=pl.lit(digest))
    )


@dataclass
class _LedgerWrites:
    events: pl.DataFrame
    rejects: pl.DataFrame
    new_deltas: pl.DataFrame
    moves: pl.DataFrame


def _merge(
    con: duckdb.DuckDBPyConnection,
    batch: _Batch,
    run_id: str,
    salt_key: bytes,
    next_seq: int,
    summary: IngestSummary,
) -> int:
    """Apply one batch to the ledger in one transaction; return the next event position."""
    now = clock.now_naive()
    with _timed("read+validate"):
        good, bad = _validated(batch, next_seq)
    with _timed("ledger"):
        writes = _ledger_writes(con, good, run_id, salt_key)
    quarantine = _quarantine_rows(batch, bad, writes.rejects, run_id, now)
    files = _file_records(batch, writes.events, quarantine, run_id, now)
    with _timed("write"), transaction(con):
        for table, frame in (
            ("delta_events", writes.events),
            ("deltas", writes.new_deltas),
            ("quarantine", quarantine),
            ("ingested_files", files),
        ):
            if frame.height:
                with staged(con, **{f"staged_{table}": frame}), _timed(f"insert {table}"):
                    execute(con, f"insert_{table}")
        if writes.moves.height:
            with staged(con, staged_status_moves=writes.moves):
                execute(con, "update_delta_status")

    outcomes = Counter[str]()
    if writes.events.height:
        outcomes.update(dict(writes.events["outcome"].value_counts().iter_rows()))
    summary.files_ingested += sum(1 for f in batch.files if f.refusal is None)
    summary.files_quarantined += sum(1 for f in batch.files if f.refusal is not None)
    summary.rows_read += good.height + bad.height
    summary.rows_accepted += outcomes[CREATED] + outcomes[ADVANCED]
    summary.rows_duplicate += outcomes[DUPLICATE]
    summary.rows_quarantined += bad.height + writes.rejects.height
    if quarantine.height:
        summary.quarantine_by_code.update(quarantine["code"].to_list())
    return next_seq + good.height


def _validated(batch: _Batch, next_seq: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows numbered in ingest order from `next_seq`, refused rows) of a batch."""
    readable = [f for f in batch.files if f.rows is not None]
    # In memory: hundreds of small plans, which the streaming engine starts more slowly.
    frames = pl.collect_all([f.rows for f in readable], engine="in-memory") if readable else []
    for landed, frame in zip(readable, frames, strict=True):
        landed.rows_read = frame.height
    frames = [frame for frame in frames if frame.height]
    if not frames:
        return pl.DataFrame(), pl.DataFrame()
    # One validation pass per batch: Polars plans and compiles the rules once, not per file.
    checked = validated_rows(pl.concat(frames, how="vertical").lazy()).collect()
    good = checked.filter(pl.col("_code").is_null())
    good = good.with_columns(
        event_seq=pl.int_range(next_seq, next_seq + good.height, dtype=pl.Int64)
    )
    return good, checked.filter(pl.col("_code").is_not_null())


def _ledger_writes(
    con: duckdb.DuckDBPyConnection, good: pl.DataFrame, run_id: str, salt_key: bytes
) -> _LedgerWrites:
    """What the batch's good rows do to the ledger, as frames ready to insert."""
    if not good.height:
        empty = pl.DataFrame()
        return _LedgerWrites(empty, empty, empty, empty)
    # A semi join: keys named twice need no unique() first.
    with staged(con, staged_keys=good.select(KEY)):
        known = query_frame(con, "select_known_deltas").with_columns(
            pl.col("occurred_at_utc").dt.replace_time_zone("UTC")
        )
    changes = ledger_changes(good.lazy(), known.lazy())
    events, rejects, created, advanced = pl.collect_all(
        [changes.events, changes.rejects, changes.created, changes.advanced]
    )
    trees = pl.concat([created.select(TREE), advanced.select(TREE)]).unique()
    with staged(con, staged_trees=trees):
        sizes = query_frame(con, "select_tree_sizes")
    created, advanced = with_leaf_indices(created, advanced, sizes)
    # On the streaming engine, which hashes on every core (the in-memory engine ran the salts
    # on one: 0.75 s against 0.4 s a million deltas).
    new_deltas = (
        created.lazy()
        .select(
            *KEY,
            "customer_id",
            "period",
            "amount",
            "reason",
            "reference_id",
            "metadata",
            pl.col("occurred_at_utc").alias("occurred_at"),
            "status",
            salt_expr(
                salt_key, pl.col("tenant_id"), pl.col("environment"), pl.col("delta_id")
            ).alias("salt"),
            "first_event_seq",
            "status_event_seq",
            "leaf_index",
            pl.lit(run_id).alias("run_id"),
        )
        .collect(engine="streaming")
    )
    moves = advanced.with_columns(run_id=pl.lit(run_id))
    # Only the columns the insert reads: staging makes the frame contiguous, which copies.
    events = events.select(
        "event_seq",
        pl.lit(run_id).alias("run_id"),
        pl.col("_file_sha256").alias("file_sha256"),
        pl.col("_line").alias("line"),
        *KEY,
        "customer_id",
        "amount",
        "reason",
        "reference_id",
        "metadata",
        pl.col("occurred_at_utc").alias("occurred_at"),
        "period",
        "status",
        "outcome",
    )
    return _LedgerWrites(events, rejects, new_deltas, moves)


_QUARANTINE_SCHEMA = {
    "run_id": pl.String,
    "file": pl.String,
    "file_sha256": pl.String,
    "line": pl.Int64,
    "code": pl.String,
    "field": pl.String,
    "message": pl.String,
    "raw": pl.String,
    "tenant_id": pl.String,
    "environment": pl.String,
    "delta_id": pl.String,
    "quarantined_at": pl.Datetime("us"),
}


def _quarantine_rows(
    batch: _Batch, bad: pl.DataFrame, rejects: pl.DataFrame, run_id: str, now: datetime
) -> pl.DataFrame:
    def rows_of(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.select(
            run_id=pl.lit(run_id),
            file=pl.col("_file"),
            file_sha256=pl.col("_file_sha256"),
            line=pl.col("_line"),
            code=pl.col("_code"),
            field=pl.col("_field"),
            message=pl.col("_message"),
            raw=pl.col("_raw"),
            tenant_id=pl.col("tenant_id"),
            environment=pl.col("environment"),
            delta_id=pl.col("delta_id"),
            quarantined_at=pl.lit(now),
        )

    refused = pl.DataFrame(
        [
            {
                "run_id": run_id,
                "file": f.path,
                "file_sha256": f.sha256,
                "line": None,
                "code": f.refusal.code,
                "field": None,
                "message": f.refusal.message,
                "raw": None,
                "tenant_id": None,
                "environment": None,
                "delta_id": None,
                "quarantined_at": now,
            }
            for f in batch.files
            if f.refusal is not None
        ],
        schema=_QUARANTINE_SCHEMA,
    )
    parts = [refused]
    parts += [rows_of(frame) for frame in (bad, rejects) if frame.height]
    return pl.concat([p.cast(_QUARANTINE_SCHEMA) for p in parts], how="vertical")


def _file_records(
    batch: _Batch, events: pl.DataFrame, quarantine: pl.DataFrame, run_id: str, now: datetime
) -> pl.DataFrame:
    accepted = Counter[str]()
    duplicate = Counter[str]()
    if events.height:
        counts = events.group_by("file_sha256", "outcome").len()
        for digest, outcome, n in counts.iter_rows():
            (duplicate if outcome == DUPLICATE else accepted)[digest] += n
    quarantined = Counter[str]()
    if quarantine.height:
        for digest, n in quarantine.group_by("file_sha256").len().iter_rows():
            quarantined[digest] += n
    return pl.DataFrame(
        [
            {
                "sha256": f.sha256,
                "path": f.path,
                "file_order": f.file_order,
                "bytes": f.size,
                "rows_read": f.rows_read,
                "rows_accepted": accepted[f.sha256],
                "rows_duplicate": duplicate[f.sha256],
                "rows_quarantined": quarantined[f.sha256],
                "outcome": "quarantined" if f.refusal else "ingested",
                "run_id": run_id,
                "ingested_at": now,
            }
            for f in batch.files
            if f.sha256  # a file refused unread has no content to record
        ]
    )
