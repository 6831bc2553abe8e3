"""The nightly flow: a recipe of tasks over one warehouse connection.

Each task wraps a plain function of its module (tested on its own); the flow adds retries on
the I/O steps, the writer lock, run records, timings and the read snapshot. Task results are
small (counts, ids, file entries), never warehouse frames. Publishing fans out: one task per
shard on the flow's task runner (threads, or a Dask cluster; see `flows.runners`).
"""

# No `from __future__ import annotations` here: a scheduled run receives the served flow pickled
# by value, and Pydantic resolved its string annotations (`date | None`) against module globals
# that the pickle does not carry, failing every run.
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import duckdb
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from flows.checkpoints import CheckpointSummary, checkpoint_customers, last_period, run_date
from flows.config import Settings, get_settings
from flows.errors import ConfigError, StorageError, WarehouseBusyError
from flows.ingest import IngestSummary, ingest_inbox
from flows.keys import salt_key
from flows.locks import writer_lock
from flows.publish import (
    PublishSummary,
    ShardJob,
    ShardRunner,
    publish,
    publish_shard,
    require_output,
    threads,
)
from flows.reports import publish_artifacts
from flows.runs import finish_run, new_run_id, start_run
from flows.signing import active_signing_key
from flows.snapshots import take_snapshot
from flows.summaries import refresh_customer_periods
from flows.warehouse import connect, ensure_schema, fetch_one


@dataclass
class RunReport:
    """What a run did: printed by the CLI, stored in `runs.summary`, shown as artifacts."""

    run_id: str
    kind: str
    as_of: date
    ingest: IngestSummary = field(default_factory=IngestSummary)
    customers_touched: int = 0
    customer_periods_touched: int = 0
    summaries_written: int = 0
    checkpoints: CheckpointSummary = field(default_factory=CheckpointSummary)
    last_period: str = ""
    publication: PublishSummary = field(default_factory=PublishSummary)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # perf_counter() at the start and end of each stage, for tools that line up samples (bench).
    stage_spans: dict[str, tuple[float, float]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        i = self.ingest
        return {
            "runId": self.run_id,
            "kind": self.kind,
            "asOf": self.as_of.isoformat(),
            "filesSeen": i.files_seen,
            "filesIngested": i.files_ingested,
            "filesSkipped": i.files_skipped,
            "filesQuarantined": i.files_quarantined,
            "rowsRead": i.rows_read,
            "rowsAccepted": i.rows_accepted,
            "rowsDuplicate": i.rows_duplicate,
            "rowsQuarantined": i.rows_quarantined,
            "quarantineByCode": dict(sorted(i.quarantine_by_code.items())),
            "customersTouched": self.customers_touched,
            "customerPeriodsTouched": self.customer_periods_touched,
            "summariesWritten": self.summaries_written,
            "checkpointedThrough": self.last_period,
            "checkpointCustomers": self.checkpoints.customers,
            "checkpointsNew": self.checkpoints.new_versions,
            "checkpointsFirstVersions": self.checkpoints.first_versions,
            "treesHashed": self.checkpoints.trees_hashed,
            "leavesHashed": self.checkpoints.leaves_hashed,
            "filesPublished": self.publication.files,
            "filesUnchanged": self.publication.unchanged,
            "bytesPublished": self.publication.bytes,
            "shards": self.publication.shards,
            "runsPublished": len(self.publication.runs),
            "manifest": self.publication.manifest,
            "stageSeconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
            "seconds": round(sum(self.stage_seconds.values()), 3),
        }


@contextmanager
def open_warehouse(settings: Settings) -> Iterator[duckdb.DuckDBPyConnection]:
    try:
        con = connect(
            settings.warehouse,
            threads=settings.duckdb_threads,
            memory_limit=settings.duckdb_memory_limit,
        )
    except duckdb.IOException as err:  # a folder, a file that is not a DuckDB database,
        if "conflicting lock" in str(err).lower():  # or one another program has open
            raise WarehouseBusyError(
                f"the warehouse {settings.warehouse} is open in another program: {err}"
            ) from err
        raise ConfigError(f"cannot open the warehouse {settings.warehouse}: {err}") from err
    try:
        ensure_schema(con)
        yield con
    finally:
        con.close()


@contextmanager
def timed(report: RunReport, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        ended = time.perf_counter()
        report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + (ended - started)
        report.stage_spans[stage] = (report.stage_spans.get(stage, (started, 0.0))[0], ended)


@contextmanager
def writing_run(
    settings: Settings, report: RunReport, wait_seconds: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """The frame of every run that writes: the writer lock, crash recovery, the run record, and
    the read snapshot once the warehouse is closed."""
    wait = settings.lock_wait_seconds if wait_seconds is None else wait_seconds
    purpose = f"{report.kind} run {report.run_id}"
    with writer_lock(settings.warehouse, purpose=purpose, wait_seconds=wait):
        with open_warehouse(settings) as con:
            start_run(con, report.run_id, report.kind, report.as_of)  # marks dead runs crashed
            try:
                yield con
            except BaseException:
                finish_run(con, report.run_id, "failed", report.as_json())
                raise
            finish_run(con, report.run_id, "succeeded", report.as_json())
            con.execute("CHECKPOINT").fetchall()
        with timed(report, "snapshot"):
            take_snapshot(settings, report.run_id)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what may pass on its own: local I/O errors, not bugs or bad data. A
    StorageError is not retried here: `flows.storage` has retried it already (three layers of
    retries held a run for minutes against an endpoint that was down, and a missing bucket
    for three attempts)."""
    try:
        state.result()
    except StorageError:
        return False
    except OSError:
        return True
    except Exception:  # noqa: BLE001 - anything else is not worth a retry
        return False
    return False


IO_RETRIES: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": [2, 10],
    "retry_condition_fn": _transient,
    "cache_policy": NO_CACHE,
}


@task(name="ingest", **IO_RETRIES)
def ingest_task(con: duckdb.DuckDBPyConnection, settings: Settings, run_id: str) -> IngestSummary:
    return ingest_inbox(
        con,
        inbox=settings.inbox,
        run_id=run_id,
        salt_key=salt_key(settings),
        batch_rows=settings.batch_rows,
        rehash=settings.rehash_inbox,
    )


@task(name="summaries", cache_policy=NO_CACHE)
def summaries_task(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    return refresh_customer_periods(con, run_id)


@task(name="checkpoints", cache_policy=NO_CACHE)
def checkpoints_task(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    run_id: str,
    max_period: str,
    recheck: bool = False,
    open_period: str | None = None,
) -> CheckpointSummary:
    return checkpoint_customers(
        con,
        run_id=run_id,
        max_period=max_period,
        key=active_signing_key(settings),
        recheck=recheck,
        open_period=open_period,
    )


@task(name="publish-shard", task_run_name="publish {job.inputs.work.label}", **IO_RETRIES)
def publish_shard_task(job: ShardJob) -> list:
    return publish_shard(job)


def prefect_shards(in_flight: int = 8) -> ShardRunner:
    """Shards as tasks of the current flow run, on its task runner (threads or Dask)."""

    def run(work: Callable, jobs: Any) -> Iterator[list]:
        pending = []
        for job in jobs:
            pending.append(publish_shard_task.submit(job))
            while len(pending) >= in_flight:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()

    return run


def stage(task_: Any, orchestrated: bool) -> Any:
    """The Prefect task, or its plain function outside a flow run."""
    return task_ if orchestrated else task_.fn


def run_nightly(
    settings: Settings,
    *,
    as_of: date | None = None,
    include_open_period: bool = False,
    recheck_checkpoints: bool = False,
    kind: str = "nightly",
    wait_seconds: float | None = None,
    orchestrated: bool = True,
) -> RunReport:
    """One nightly run against `settings`' warehouse; the body of `nightly_flow`.

    `recheck_checkpoints` looks at every customer's checkpoints, not only at those that can be
    stale (see `flows.checkpoints.checkpoint_customers`). `orchestrated=False` calls the stages
    as plain functions (tests, tools) instead of as Prefect tasks of the current flow run.
    """
    report = RunReport(new_run_id(), kind, run_date(as_of))
    report.last_period = last_period(report.as_of, include_open_period)
    require_output(settings)
    with writing_run(settings, report, wait_seconds) as con:
        with timed(report, "ingest"):
            report.ingest = stage(ingest_task, orchestrated)(con, settings, report.run_id)
        report.customers_touched, report.customer_periods_touched = fetch_one(
            con, "select_run_touch_counts", {"run_id": report.run_id}
        )
        with timed(report, "summaries"):
            report.summaries_written = stage(summaries_task, orchestrated)(con, report.run_id)
        with timed(report, "checkpoints"):
            report.checkpoints = stage(checkpoints_task, orchestrated)(
                con,
                settings,
                report.run_id,
                report.last_period,
                recheck_checkpoints,
                open_period=f"{report.as_of:%Y-%m}",
            )
        with timed(report, "publish"):
            runner = prefect_shards() if orchestrated else threads()
            report.publication = publish(con, settings, report.run_id, runner=runner)
    return report


@flow(name="tallyproof-nightly")
def nightly_flow(
    as_of: date | None = None,
    include_open_period: bool = False,
    inbox: str | None = None,
    output: str | None = None,
    warehouse: str | None = None,
    wait_for_lock: bool = True,
    recheck_checkpoints: bool = False,
) -> dict[str, Any]:
    """Ingest new landing files, refresh summaries, make the checkpoints that are due, publish
    the outputs, and leave a read snapshot for the API."""
    settings = get_settings().with_overrides(inbox=inbox, output=output, warehouse=warehouse)
    report = run_nightly(
        settings,
        as_of=as_of,
        include_open_period=include_open_period,
        recheck_checkpoints=recheck_checkpoints,
        wait_seconds=None if wait_for_lock else 0.0,
    )
    summary = report.as_json()
    publish_artifacts(summary)
    return summary
