"""Publishing to the output root (SPEC section 6): atomic for readers, resumable after a crash,
sharded so a task runner can spread it over cores or machines.

A publication covers every run not yet published (a run killed while publishing stays
unpublished, so the next run publishes its changes too) and rewrites only what those runs
changed, and of that only the files whose bytes differ from what is already published (the
`published_files` inventory). The protocol, in order:

1. Shards (some customers of one tenant, environment and period) are built and written by the
   task runner: Parquet parts under new unique names (`part-<run>-<shard>.parquet`, waiting
   under a hidden name), fixed-path files (exports, receipts) that no publication has made
   straight to their place, each appearing whole and never over a file a manifest lists
   (`Location.write_new`), and those that replace one under a hidden name that waits
   (`Location.pending_path`: beside the file on a disk, under `_staging/<run>/` on S3). Batch
   exports, the quarantine CSV and the JWKS are written the same way by the flow itself.
2. Waiting fixed-path files are put into place, each one atomically (`Location.promote`); then
   waiting Parquet parts.
3. The run's manifest is written: every file of the publication (path, bytes, rows, SHA-256, in
   `manifests/<run>.files.parquet`) and the complete current list of Parquet files per table.
4. `manifests/LATEST` is switched to the new manifest: from here on readers see the new state.
5. Superseded Parquet files and staging folders are deleted; the inventory is updated and the
   covered runs are marked published in the warehouse.

A crash before step 2 leaves the previous manifest and every file it lists intact (files no
manifest lists may already be in place, each one whole); a crash in step 2 can leave some
fixed-path files already new (each one whole). The next run publishes the same scope again and
completes it, writing over the waiting files the crashed one left on a disk (their names do not
depend on the run). An output root whose LATEST is not the warehouse's last recorded
publication gets everything the warehouse holds. See docs/outputs.md for what readers see.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import polars as pl

from flows import clock, progress
from flows.config import Settings
from flows.outputs import (
    PARTITION,
    OutputFile,
    ShardInputs,
    ShardWork,
    activity_path,
    batch_checkpoint_files,
    batch_checkpoint_paths,
    build_shard,
    load_batch_checkpoints,
    load_shard,
    quarantine_file,
    receipt_path,
    shard_of,
)
from flows.signing import jwks
from flows.storage import STAGING, Location, open_location
from flows.warehouse import execute, query_frame, staged, transaction
from transforms.paths import partition_path

log = logging.getLogger(__name__)

JWKS_PATH = ".well-known/jwks.json"
LATEST = "manifests/LATEST"
MANIFEST_SPEC = "tallyproof/manifest/v1"
STEP = "publish"
SHARD_DELTAS = 250_000  # a partition with more deltas is split into shards of customers
BATCH_PARTITIONS = 4  # partitions whose batch exports are built at once
PROMOTE_CHUNK = 500  # files moved into place per task


@dataclass(frozen=True, slots=True)
class Entry:
    slot: str  # a fixed path, or `<parquet folder>#<shard>`
    path: str
    kind: str
    bytes: int
    rows: int
    sha256: str
    written: bool  # False when the published file already had these bytes
    staged: bool = False  # written under its pending name, put in place before the manifest


INVENTORY = {
    "slot": pl.String,
    "path": pl.String,
    "kind": pl.String,
    "bytes": pl.Int64,
    "rows": pl.Int64,
    "sha256": pl.String,
    "written": pl.Boolean,
    "staged": pl.Boolean,
}
LISTING = ["path", "bytes", "rows", "sha256"]


def _inventory(entries: list[Entry]) -> pl.DataFrame:
    """Entries as columns: a first publication has millions of files, and a frame holds them in
    a fraction of the memory of the objects."""
    return pl.DataFrame(
        {name: [getattr(e, name) for e in entries] for name in INVENTORY}, schema=INVENTORY
    )


@dataclass
class PublishSummary:
    publication_id: str = ""
    runs: list[str] = field(default_factory=list)
    files: int = 0  # written (new or changed)
    unchanged: int = 0  # built, but already published with the same bytes
    bytes: int = 0
    shards: int = 0
    removed: int = 0
    manifest: str = ""


@dataclass(frozen=True)
class Scope:
    """What a publication rewrites: runs it covers, and the outputs their changes touch."""

    runs: list[str]
    touched: pl.DataFrame  # customer-periods with events: activity exports, deltas partitions
    moved: pl.DataFrame  # partitions whose summaries may have moved
    checkpointed: pl.DataFrame  # customer-periods with new checkpoint versions
    # False for a part of its runs' changes (a backfill's period): the runs stay unpublished,
    # so that what the part leaves out is still published by a later, complete publication.
    complete: bool = True


def publish_scope(con: duckdb.DuckDBPyConnection, runs: list[str]) -> Scope:
    frame = pl.DataFrame({"run_id": runs}, schema={"run_id": pl.String})
    with staged(con, staged_runs=frame):
        return Scope(
            runs=runs,
            touched=query_frame(con, "select_touched_customer_periods"),
            moved=query_frame(con, "select_moved_summary_partitions"),
            checkpointed=query_frame(con, "select_new_checkpoint_scope"),
        )


def plan_shards(con: duckdb.DuckDBPyConnection, scope: Scope) -> list[ShardWork]:
    """The shards a scope touches, each knowing which of its outputs to rewrite."""
    tables = {
        "deltas": scope.touched.select(PARTITION).unique(),
        "customer_periods": scope.moved.select(PARTITION).unique(),
        "checkpoints": scope.checkpointed.select(PARTITION).unique(),
    }
    partitions = pl.concat(list(tables.values())).unique().sort(PARTITION)
    if partitions.is_empty():
        return []
    with staged(con, staged_partitions=partitions):
        sizes = {tuple(r[:3]): r[3] for r in query_frame(con, "select_partition_sizes").rows()}
    table_sets = {name: {tuple(r) for r in frame.rows()} for name, frame in tables.items()}
    work = []
    for key in partitions.rows():
        shards = max(1, math.ceil((sizes.get(tuple(key)) or 0) / SHARD_DELTAS))
        for shard in range(shards):
            work.append(
                ShardWork(
                    tenant_id=key[0],
                    environment=key[1],
                    period=key[2],
                    shard=shard,
                    shards=shards,
                    tables=frozenset(n for n, keys in table_sets.items() if tuple(key) in keys),
                    activity=_customers(scope.touched, key, shard, shards),
                    receipts=_customers(scope.checkpointed, key, shard, shards),
                )
            )
    return work


def _customers(frame: pl.DataFrame, key: tuple, shard: int, shards: int) -> frozenset[str]:
    chosen = frame.filter(
        (pl.col("tenant_id") == key[0])
        & (pl.col("environment") == key[1])
        & (pl.col("period") == key[2])
    )
    if shards > 1:
        chosen = chosen.filter(shard_of(pl.col("customer_id"), shards) == shard)
    return frozenset(chosen["customer_id"].to_list())


def shard_slots(work: ShardWork) -> list[str]:
    slots = [
        f"{partition_path(t, work.tenant_id, work.environment, work.period)}#{work.shard:04d}"
        for t in sorted(work.tables)
    ]
    slots += [
        activity_path(work.tenant_id, work.environment, c, work.period)
        for c in sorted(work.activity)
    ]
    slots += [
        receipt_path(work.tenant_id, work.environment, c, work.period)
        for c in sorted(work.receipts)
    ]
    if work.batch_exports:
        slots += batch_checkpoint_paths(work.tenant_id, work.environment, work.period)
    return slots


@dataclass
class ShardJob:
    """A shard's inputs plus what the worker needs to publish it on its own."""

    inputs: ShardInputs
    output: str
    publication_id: str
    published: dict[str, tuple[str, str]]  # slot -> (path, sha256) as published now
    dry_run: bool = False
    exact: bool = False  # `published` lists every file a manifest at LATEST lists


def publish_shard(job: ShardJob) -> list[Entry]:
    """Build one shard's files and write the ones whose bytes changed (the task-runner work:
    it reads only its job and writes only its own files)."""
    location = open_location(job.output)
    return [
        _write(location, job.publication_id, file, job.published, job.dry_run, job.exact)
        for file in build_shard(job.inputs, job.publication_id)
    ]


def _slot(file: OutputFile) -> str:
    if file.kind == "parquet":
        folder, name = file.path.rsplit("/", 1)
        return f"{folder}#{name.rsplit('-', 1)[1].split('.')[0]}"
    return file.path


def _write(
    location: Location,
    publication_id: str,
    file: OutputFile,
    published: dict[str, tuple[str, str]],
    dry_run: bool,
    exact: bool,
) -> Entry:
    slot = _slot(file)
    sha = hashlib.sha256(file.data).hexdigest()
    current = published.get(slot)
    if current is not None and current[1] == sha:
        return Entry(slot, current[0], file.kind, len(file.data), file.rows, sha, written=False)
    staged = False
    if not dry_run:
        # A file no publication has made goes straight to its place (whole at once): nothing a
        # manifest lists is replaced before its time. A replacement waits to be moved in, and
        # so does every Parquet part: a directory scan of the BI feed would otherwise count a
        # rewritten partition twice, its old part and its new one, until the old one goes.
        in_place = (
            file.kind != "parquet"
            and current is None
            and location.write_new(file.path, file.data, unlisted=exact)
        )
        if not in_place:
            location.write_bytes(
                _waiting_path(location, file.path, publication_id), file.data, atomic=False
            )
            staged = True
    progress.advance(STEP)
    return Entry(
        slot, file.path, file.kind, len(file.data), file.rows, sha, written=True, staged=staged
    )


ShardRunner = Callable[
    [Callable[[ShardJob], list[Entry]], Iterable[ShardJob]], Iterator[list[Entry]]
]


def threads(workers: int = 2) -> ShardRunner:
    """Run shards on local threads, a bounded number in flight."""

    def run(
        work: Callable[[ShardJob], list[Entry]], jobs: Iterable[ShardJob]
    ) -> Iterator[list[Entry]]:
        with ThreadPoolExecutor(workers) as pool:
            pending = []
            for job in jobs:
                pending.append(pool.submit(work, job))
                while len(pending) >= 2 * workers:
                    yield pending.pop(0).result()
            for future in pending:
                yield future.result()

    return run


def require_output(settings: Settings) -> None:
    """Refuse an S3 output whose bucket is missing or not ours before a run changes anything:
    found at publish time, the run's ingest and checkpoints were already committed and the
    error named a staging key. (A local output folder is made when first written.)"""
    location = open_location(settings.output)
    if location.is_s3:
        location.require_folder("output")


def publish(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    publication_id: str,
    *,
    scope: Scope | None = None,
    runner: ShardRunner | None = None,
    dry_run: bool = False,
) -> PublishSummary:
    """Publish what the unpublished runs changed (or `scope`), then mark those runs published.

    With `dry_run` no file is written: the summary says what would be. The inventory is still
    recorded, as if the files had been written, so that a dry backfill's later periods see what
    its earlier ones would have published; dry runs therefore work on a scratch copy of the
    warehouse (see `flows.backfill`).
    """
    runner = runner or threads()
    location = open_location(settings.output)
    previous = read_latest(location)
    # An output root that does not hold the warehouse's last publication (a new root, one
    # emptied, or one the warehouse stopped publishing to) gets everything the warehouse holds,
    # whatever the scope asked for (a backfill's months): publishing only what the last runs
    # changed left a partial tree (24 of 80 receipts and no JWKS, in a review), and the next
    # run, finding its LATEST, would never have completed it.
    fresh = not dry_run and not _holds_last_publication(con, previous)
    exact = _inventory_is_exact(con, previous)
    if fresh:
        log.warning(
            "%s does not hold this warehouse's last publication: publishing everything",
            location.uri,
        )
        scope = publish_scope(con, query_frame(con, "select_all_runs")["run_id"].to_list())
    elif scope is None:
        scope = publish_scope(con, query_frame(con, "select_unpublished_runs")["run_id"].to_list())
    summary = PublishSummary(publication_id=publication_id, runs=scope.runs)
    parts = [_inventory([])]

    work = plan_shards(con, scope)
    summary.shards = len(work)
    published = {} if fresh else _published(con, [s for w in work for s in shard_slots(w)])
    with progress.step(STEP):
        jobs = (
            ShardJob(
                load_shard(con, w),
                settings.output,
                publication_id,
                {s: published[s] for s in shard_slots(w) if s in published},
                dry_run,
                exact,
            )
            for w in work
        )
        for result in runner(publish_shard, jobs):
            parts.append(_inventory(result))
        for files in _flow_files(con, settings, scope, work):
            now = {} if fresh else _published(con, [f.path for f in files])
            parts.append(
                _inventory(
                    [_write(location, publication_id, f, now, dry_run, exact) for f in files]
                )
            )

    inventory = pl.concat(parts)
    written = inventory.filter("written")
    summary.files, summary.unchanged = written.height, inventory.height - written.height
    summary.bytes = int(written["bytes"].sum())
    new_parquet = inventory.filter(pl.col("kind") == "parquet")
    folders = set(new_parquet["slot"].str.split("#").list.first().to_list())
    covered = scope.runs if scope.complete else []
    if dry_run:
        _record(con, publication_id, covered, inventory, folders, fresh=fresh, manifest=None)
        return summary

    parquet = _current_parquet(con, folders, new_parquet, fresh=fresh)
    # Parquet parts move in last and their superseded parts go first thing after LATEST: the
    # time in which a directory scan sees both is a few renames long.
    waiting = written.filter("staged")
    for kind in (pl.col("kind") != "parquet", pl.col("kind") == "parquet"):
        _promote(location, publication_id, waiting.filter(kind)["path"].to_list())
    summary.manifest = _write_manifest(
        location, publication_id, scope.runs, previous, written, parquet
    )
    location.write_bytes(LATEST, json.dumps({"manifest": summary.manifest}).encode())
    summary.removed = _clean_up(location, folders, parquet)
    _record(
        con, publication_id, covered, inventory, folders, fresh=fresh, manifest=summary.manifest
    )
    log.info(
        "published %d files (%d unchanged, %d bytes) in %s",
        summary.files,
        summary.unchanged,
        summary.bytes,
        summary.manifest,
    )
    return summary


def _flow_files(
    con: duckdb.DuckDBPyConnection, settings: Settings, scope: Scope, work: list[ShardWork]
) -> Iterator[list[OutputFile]]:
    """What the flow builds itself, small files that span shards, a group at a time: the JWKS
    and quarantine CSVs, then the batch exports of partitions split into shards (the shard of
    a whole partition builds them), a few partitions at once (a first run has a million
    checkpoints; holding all their exports at once would cost gigabytes)."""
    files = [
        OutputFile(
            JWKS_PATH,
            (json.dumps(jwks(settings), indent=2, sort_keys=True) + "\n").encode(),
            0,
            "fixed",
        )
    ]
    with staged(
        con, staged_runs=pl.DataFrame({"run_id": scope.runs}, schema={"run_id": pl.String})
    ):
        landed = set(query_frame(con, "select_runs_with_landing")["run_id"].to_list())
    files += [quarantine_file(con, run_id) for run_id in scope.runs if run_id in landed]
    yield files
    built = pl.DataFrame(
        [(w.tenant_id, w.environment, w.period) for w in work if w.batch_exports],
        schema=dict.fromkeys(PARTITION, pl.String),
        orient="row",
    )
    partitions = (
        scope.checkpointed.select(PARTITION)
        .unique()
        .join(built, on=PARTITION, how="anti")
        .sort(PARTITION)
    )
    for group in partitions.iter_slices(BATCH_PARTITIONS):
        yield batch_checkpoint_files(load_batch_checkpoints(con, group))


def _published(con: duckdb.DuckDBPyConnection, slots: list[str]) -> dict[str, tuple[str, str]]:
    if not slots:
        return {}
    with staged(con, staged_slots=pl.DataFrame({"slot": slots})):
        rows = query_frame(con, "select_published_slots")
    return {r["slot"]: (r["path"], r["sha256"]) for r in rows.to_dicts()}


def _current_parquet(
    con: duckdb.DuckDBPyConnection, rewritten: set[str], new: pl.DataFrame, *, fresh: bool
) -> dict[str, list[dict[str, Any]]]:
    """The complete Parquet listing after this publication, per table (`fresh`: an output root
    that holds nothing of the inventory)."""
    kept = [
        r
        for r in ([] if fresh else query_frame(con, "select_published_parquet").to_dicts())
        if r["slot"].split("#")[0] not in rewritten
    ]
    listing: dict[str, list[dict[str, Any]]] = {}
    for row in [*kept, *new.select("slot", *LISTING).to_dicts()]:
        table = row["path"].split("/")[1]
        listing.setdefault(table, []).append(
            {k: row[k] for k in ("path", "bytes", "rows", "sha256")}
        )
    return {
        table: sorted(items, key=lambda e: e["path"]) for table, items in sorted(listing.items())
    }


def _write_manifest(
    location: Location,
    publication_id: str,
    runs: list[str],
    previous: dict[str, Any] | None,
    written: pl.DataFrame,
    parquet: dict[str, list[dict[str, Any]]],
) -> str:
    files = written.select(LISTING)
    buffer = io.BytesIO()
    files.sort("path").write_parquet(buffer, compression="zstd")
    listing = buffer.getvalue()
    listing_path = f"manifests/{publication_id}.files.parquet"
    location.write_bytes(listing_path, listing)
    manifest = {
        "spec": MANIFEST_SPEC,
        "publicationId": publication_id,
        "createdAt": clock.now_text(),
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
        "parquet": parquet,
    }
    path = f"manifests/{publication_id}.json"
    location.write_bytes(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


def _waiting_path(location: Location, path: str, publication_id: str) -> str:
    """Where the file of `path` waits to be moved into place. A Parquet part's name carries its run
    (`part-<run>-0003.parquet`); the name it waits under does not (`.part-0003.parquet.pending`
    on a disk), so the next publication writes over what a crashed one left, as for every
    other file."""
    folder, name = path.rsplit("/", 1)
    if folder.startswith("parquet/"):
        path = f"{folder}/part-{name.rsplit('-', 1)[1]}"
    return location.pending_path(path, publication_id)


def _promote(location: Location, publication_id: str, paths: list[str]) -> None:
    workers = 32 if location.is_s3 else 8

    def promote(chunk: list[str]) -> None:
        for path in chunk:
            location.promote(_waiting_path(location, path, publication_id), path)

    # In chunks: `map` submits every item at once, and a future per file was gigabytes of
    # futures at 1.8 million files.
    chunks = [paths[i : i + PROMOTE_CHUNK] for i in range(0, len(paths), PROMOTE_CHUNK)]
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(promote, chunks))


def _holds_last_publication(con: duckdb.DuckDBPyConnection, latest: dict[str, Any] | None) -> bool:
    """Whether the output root whose LATEST manifest is `latest` holds what the inventory says:
    LATEST names the warehouse's last recorded publication, or one that a crash left unrecorded
    right after it (LATEST switched, the publication not yet recorded). True before any
    publication. (Two crashes in a row at that point make the next run publish everything:
    slow, never wrong.)"""
    last = query_frame(con, "select_last_publication")["manifest"].to_list()
    if not last:
        return latest is None or latest.get("previous") is None
    if latest is None:
        return False
    return last[0] in (latest.get("path"), latest.get("previous"))


def _inventory_is_exact(con: duckdb.DuckDBPyConnection, latest: dict[str, Any] | None) -> bool:
    """Whether every file that the manifest at LATEST lists is in the inventory, so that a path
    the inventory lacks is listed by no manifest a reader holds: there is no LATEST, or it
    names the warehouse's last recorded publication (not one a crash left unrecorded)."""
    if latest is None:
        return True
    last = query_frame(con, "select_last_publication")["manifest"].to_list()
    return bool(last) and last[0] == latest.get("path")


def read_latest(location: Location) -> dict[str, Any] | None:
    """The current manifest (with its own `path`), or None before the first publication."""
    if not location.exists(LATEST):
        return None
    pointer = json.loads(location.read_bytes(LATEST))
    manifest = json.loads(location.read_bytes(pointer["manifest"]))
    return {**manifest, "path": pointer["manifest"]}


def _clean_up(
    location: Location, folders: set[str], current: dict[str, list[dict[str, Any]]]
) -> int:
    """Delete Parquet files of rewritten partitions that the new listing does not name (the
    superseded ones and leftovers of crashed runs), and every staging folder."""
    keep = {e["path"] for entries in current.values() for e in entries}
    removed = 0
    for folder in folders:
        for stored in location.list_files(folder):
            in_folder = stored.relative.rsplit("/", 1)[0] == folder
            if in_folder and stored.relative not in keep:
                location.delete(stored.relative)
                removed += 1
    location.delete_folder(STAGING)
    location.forget_folders()
    return removed


def _record(
    con: duckdb.DuckDBPyConnection,
    publication_id: str,
    runs: list[str],
    inventory: pl.DataFrame,
    folders: set[str],
    *,
    fresh: bool,
    manifest: str | None,
) -> None:
    """Record what the output root holds now, the runs the publication covered, and the
    publication itself (`manifest`, which LATEST names; None for a dry run); `fresh`: the root
    holds nothing else (the inventory of another root is forgotten)."""
    rows = inventory.select(
        "slot",
        "path",
        "kind",
        "bytes",
        "rows",
        "sha256",
        publication_id=pl.when("written").then(pl.lit(publication_id)),
    )
    if rows.height:
        with staged(con, staged_slots=rows.select("slot")):
            kept = query_frame(con, "select_published_slots").select("slot", "publication_id")
        rows = (
            rows.join(kept, on="slot", how="left", suffix="_old")
            .with_columns(publication_id=pl.coalesce("publication_id", "publication_id_old"))
            .drop("publication_id_old")
        )
    with (
        transaction(con),
        staged(
            con,
            staged_slots=rows.select("slot"),
            staged_folders=pl.DataFrame({"folder": sorted(folders)}, schema={"folder": pl.String}),
            staged_published_files=rows,
            staged_runs=pl.DataFrame({"run_id": runs}, schema={"run_id": pl.String}),
        ),
    ):
        execute(con, "delete_published_files" if fresh else "delete_published_slots")
        if rows.height:
            execute(con, "insert_published_files")
        execute(
            con,
            "mark_runs_published",
            {"published_at": clock.now_naive(), "publication_id": publication_id},
        )
        if manifest is not None:
            execute(
                con,
                "insert_publication",
                {
                    "publication_id": publication_id,
                    "manifest": manifest,
                    "recorded_at": clock.now_naive(),
                },
            )


def publish_jwks(settings: Settings) -> str:
    """Write every signing public key to `.well-known/jwks.json` at once; return its path."""
    document = json.dumps(jwks(settings), indent=2, sort_keys=True) + "\n"
    open_location(settings.output).write_bytes(JWKS_PATH, document.encode())
    return JWKS_PATH
