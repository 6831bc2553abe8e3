"""Backfills: recompute and republish past periods (SPEC section 8, `backfill`).

A backfill ingests what is new in the inbox (late files for past months, typically), then walks
the periods oldest first, one subflow each, because each period's checkpoints chain to the one
before: it makes the checkpoint versions that are due and republishes the period's outputs,
rewriting only files whose bytes change. At the end it checkpoints what the periods left: later
periods that a changed period re-links, and the customers of whatever else the run ingested;
and publishes everything the run changed outside the periods already republished (earlier
periods whose late data a period's pass checkpointed, later ones re-linked, the deltas and
summaries of other periods). The periods' publications do not mark the run published; only that
last one does, so a backfill stopped before it is published in full by the next run. It is safe
to interrupt and run again (every step is idempotent and each period commits on its own), and a
no-op when nothing changed.

`--dry-run` does all of it on a copy of the warehouse, writing nothing anywhere, and reports
what would change.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
from prefect import flow

from flows.checkpoints import (
    CUSTOMER,
    CheckpointSummary,
    checkpoint_customers,
    is_period,
    last_period,
    run_date,
)
from flows.config import Settings, get_settings
from flows.errors import InvalidRequestError
from flows.locks import writer_lock
from flows.pipeline import (
    RunReport,
    ingest_task,
    open_warehouse,
    prefect_shards,
    stage,
    summaries_task,
    timed,
    writing_run,
)
from flows.publish import (
    PublishSummary,
    Scope,
    publish,
    publish_scope,
    require_output,
    threads,
)
from flows.reports import publish_artifacts
from flows.runs import mark_crashed_runs, new_run_id
from flows.signing import active_signing_key
from flows.summaries import refresh_customer_periods
from flows.warehouse import fetch_one, query_frame, staged


@dataclass
class PeriodReport:
    period: str
    customers: int = 0
    new_versions: int = 0
    files_written: int = 0
    files_unchanged: int = 0
    checkpoints: CheckpointSummary = field(default_factory=CheckpointSummary)
    publication: PublishSummary = field(default_factory=PublishSummary)

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "customers": self.customers,
            "newVersions": self.new_versions,
            "filesWritten": self.files_written,
            "filesUnchanged": self.files_unchanged,
        }


@dataclass
class BackfillReport:
    run: RunReport
    period_from: str
    period_to: str
    dry_run: bool
    periods: list[PeriodReport] = field(default_factory=list)
    relinked_versions: int = 0
    relinked_files: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.run.ingest.rows_accepted
            or self.relinked_versions
            or self.relinked_files
            or any(p.new_versions or p.files_written for p in self.periods)
        )

    def as_json(self) -> dict[str, Any]:
        return {
            **self.run.as_json(),
            "from": self.period_from,
            "to": self.period_to,
            "dryRun": self.dry_run,
            "changed": self.changed,
            "periods": [p.as_json() for p in self.periods],
            "relinkedVersions": self.relinked_versions,
            "relinkedFiles": self.relinked_files,
        }


def months(period_from: str, period_to: str) -> list[str]:
    year, month = (int(x) for x in period_from.split("-"))
    out = []
    while f"{year:04d}-{month:02d}" <= period_to:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return out


def run_backfill(
    settings: Settings,
    *,
    period_from: str,
    period_to: str,
    as_of: date | None = None,
    dry_run: bool = False,
    orchestrated: bool = True,
    wait_seconds: float | None = None,
) -> BackfillReport:
    """Backfill `period_from`..`period_to` (closed periods only, oldest first)."""
    as_of = run_date(as_of)
    closed = last_period(as_of, include_open_period=False)
    for name, value in (("from", period_from), ("to", period_to)):
        if not is_period(value):
            raise InvalidRequestError(name, f"--{name} must be a month, YYYY-MM")
    if period_from > period_to:
        raise InvalidRequestError("from", "--from must not be after --to")
    if period_to > closed:
        raise InvalidRequestError(
            "to", f"--to {period_to} is not closed on {as_of} (the last closed period is {closed})"
        )
    report = BackfillReport(
        RunReport(new_run_id(), "backfill", as_of), period_from, period_to, dry_run
    )
    report.run.last_period = closed
    if not dry_run:
        require_output(settings)
    with _backfill_warehouse(settings, report, dry_run, wait_seconds) as (con, work_settings):
        _backfill(con, work_settings, report, orchestrated)
    return report


@contextmanager
def _backfill_warehouse(
    settings: Settings, report: BackfillReport, dry_run: bool, wait_seconds: float | None
) -> Iterator[tuple[duckdb.DuckDBPyConnection, Settings]]:
    if not dry_run:
        with writing_run(settings, report.run, wait_seconds) as con:
            yield con, settings
        return
    # A dry run works on a copy taken under the lock, and never touches the real one again.
    # Before the copy it does what any holder of the lock does (runs that died holding it
    # are marked crashed) and folds the write-ahead log into the file: a run that died left
    # what it committed since its last checkpoint in the `.wal`, which a copy of the file
    # alone would leave out.
    scratch = Path(tempfile.mkdtemp(prefix="tallyproof-dry-run-"))
    try:
        copy = scratch / "warehouse.duckdb"
        wait = settings.lock_wait_seconds if wait_seconds is None else wait_seconds
        with writer_lock(
            settings.warehouse, purpose=f"dry run {report.run.run_id}", wait_seconds=wait
        ):
            if Path(settings.warehouse).exists():
                with open_warehouse(settings) as real:
                    mark_crashed_runs(real)
                    real.execute("CHECKPOINT").fetchall()
                shutil.copyfile(settings.warehouse, copy)
        dry = settings.with_overrides(warehouse=copy)
        with open_warehouse(dry) as con:
            from flows.runs import start_run

            start_run(con, report.run.run_id, "backfill", report.run.as_of)
            yield con, dry
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _backfill(
    con: duckdb.DuckDBPyConnection, settings: Settings, report: BackfillReport, orchestrated: bool
) -> None:
    run, dry = report.run, report.dry_run
    with timed(run, "ingest"):
        run.ingest = stage(ingest_task, orchestrated)(con, settings, run.run_id)
    run.customers_touched, run.customer_periods_touched = fetch_one(
        con, "select_run_touch_counts", {"run_id": run.run_id}
    )
    with timed(run, "summaries"):
        run.summaries_written = stage(summaries_task, orchestrated)(con, run.run_id)
        customers = _customers(con, report.period_from, report.period_to)
        refresh_customer_periods(con, run.run_id, customers)  # recompute, do not trust
    for period in months(report.period_from, report.period_to):
        if orchestrated:
            result = backfill_period_flow(settings, period, run.run_id, dry)
        else:
            result = backfill_period(con, settings, period, run.run_id, dry, threads())
        report.periods.append(result)
    # Later periods re-linked by changed ones, and whatever else the run ingested.
    with timed(run, "checkpoints"):
        relinked = checkpoint_customers(
            con,
            run_id=run.run_id,
            max_period=run.last_period,
            key=active_signing_key(settings),
            customers=pl.concat([customers, _ingested_customers(con, run.run_id)]).unique(),
            open_period=f"{run.as_of:%Y-%m}",
        )
        report.relinked_versions = relinked.new_versions
        run.checkpoints = _total_checkpoints([*(p.checkpoints for p in report.periods), relinked])
    with timed(run, "publish"):
        runner = prefect_shards() if orchestrated else threads()
        unpublished = query_frame(con, "select_unpublished_runs")["run_id"].to_list()
        rest = _outside(
            publish_scope(con, unpublished), months(report.period_from, report.period_to)
        )
        final = publish(con, settings, run.run_id, scope=rest, runner=runner, dry_run=dry)
        report.relinked_files = final.files
        run.publication = _total_publication([*(p.publication for p in report.periods)], final)


def _ingested_customers(con: duckdb.DuckDBPyConnection, run_id: str) -> pl.DataFrame:
    """The customers whose events the run ingested, in any period."""
    runs = pl.DataFrame({"run_id": [run_id]})
    with staged(con, staged_runs=runs):
        return query_frame(con, "select_touched_customer_periods").select(CUSTOMER).unique()


def _outside(scope: Scope, periods: list[str]) -> Scope:
    """`scope` less `periods`, which the backfill's period passes republished whole: every
    customer of each (see `backfill_period`), from the warehouse as it is now, since a later
    pass never changes an earlier period."""
    keep = ~pl.col("period").is_in(periods)
    return Scope(
        runs=scope.runs,
        touched=scope.touched.filter(keep),
        moved=scope.moved.filter(keep),
        checkpointed=scope.checkpointed.filter(keep),
    )


def _total_checkpoints(parts: list[CheckpointSummary]) -> CheckpointSummary:
    total = CheckpointSummary()
    for part in parts:
        for name in vars(total):
            setattr(total, name, getattr(total, name) + getattr(part, name))
    return total


def _total_publication(parts: list[PublishSummary], final: PublishSummary) -> PublishSummary:
    """The run's publications as one: the periods' and the final one, whose manifest is the
    latest and which covers the runs."""
    total = PublishSummary(final.publication_id, final.runs, manifest=final.manifest)
    for part in [*parts, final]:
        total.files += part.files
        total.unchanged += part.unchanged
        total.bytes += part.bytes
        total.shards += part.shards
        total.removed += part.removed
    return total


def _customers(con: duckdb.DuckDBPyConnection, first: str, last: str) -> pl.DataFrame:
    return query_frame(con, "select_customers_in_periods", {"first": first, "last": last})


def backfill_period(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    period: str,
    run_id: str,
    dry_run: bool,
    runner: Any,
) -> PeriodReport:
    """Checkpoint one period's customers and republish the period's outputs."""
    result = PeriodReport(period)
    customers = _customers(con, period, period)
    result.customers = customers.height
    made = checkpoint_customers(
        con, run_id=run_id, max_period=period, key=active_signing_key(settings), customers=customers
    )
    result.new_versions, result.checkpoints = made.new_versions, made
    scope = Scope(
        runs=[run_id],
        touched=customers.with_columns(period=pl.lit(period)),
        moved=customers.select("tenant_id", "environment")
        .unique()
        .with_columns(period=pl.lit(period)),
        checkpointed=customers.with_columns(period=pl.lit(period)),
        complete=False,  # the run is published whole at its end (`_backfill`)
    )
    published = publish(
        con, settings, f"{run_id}-{period}", scope=scope, runner=runner, dry_run=dry_run
    )
    result.files_written, result.files_unchanged = published.files, published.unchanged
    result.publication = published
    return result


@flow(
    name="tallyproof-backfill-period", flow_run_name="backfill {period}", validate_parameters=False
)
def backfill_period_flow(
    settings: Settings, period: str, run_id: str, dry_run: bool
) -> PeriodReport:
    """One period of a backfill, as a subflow of its own (its own connection to the same
    in-process database as the parent flow)."""
    from flows.warehouse import connect

    con = connect(settings.warehouse)
    try:
        return backfill_period(con, settings, period, run_id, dry_run, prefect_shards())
    finally:
        con.close()


@flow(name="tallyproof-backfill")
def backfill_flow(
    period_from: str,
    period_to: str,
    as_of: date | None = None,
    dry_run: bool = False,
    inbox: str | None = None,
    output: str | None = None,
    warehouse: str | None = None,
    wait_for_lock: bool = True,
) -> dict[str, Any]:
    """Recompute and republish `period_from`..`period_to`, oldest first."""
    settings = get_settings().with_overrides(inbox=inbox, output=output, warehouse=warehouse)
    report = run_backfill(
        settings,
        period_from=period_from,
        period_to=period_to,
        as_of=as_of,
        dry_run=dry_run,
        wait_seconds=None if wait_for_lock else 0.0,
    )
    summary = report.as_json()
    if not dry_run:
        publish_artifacts(summary)
    return summary
