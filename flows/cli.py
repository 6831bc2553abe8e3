"""The `tallyproof` command. It parses options and delegates; the work happens in flows/.

Every option also reads from the environment. An option that is a setting (`--inbox`,
`--output`, `--warehouse`, `--runner`, `--dask-address`, the API's `--host` and `--port`) reads
the setting's own `TALLYPROOF_*` variable, as `Settings` does; every other option reads Click's
automatic name, `TALLYPROOF_<COMMAND>_<OPTION>` (`TALLYPROOF_RUN_AS_OF`,
`TALLYPROOF_RUN_INCLUDE_OPEN_PERIOD`, `TALLYPROOF_RUNS_LIMIT`), so one variable never means two
things. `--help` shows each option's variable. A known failure is one red line and exit code 1,
a usage error (a bad option or value, from the command line or a variable, which it names) one
red line and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

# Typer 0.29 carries its own copy of Click; its exceptions and parameter sources live there.
from typer._click import exceptions as click_errors
from typer._click.core import Context as ClickContext
from typer._click.core import Parameter, ParameterSource

from flows import progress
from flows.clock import instant_text
from flows.config import Settings, get_settings
from flows.errors import InvalidRequestError, TallyproofError

app = typer.Typer(
    name="tallyproof",
    help="Balance-ledger pipeline: ingest deltas, checkpoint them, publish verifiable outputs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"auto_envvar_prefix": "TALLYPROOF"},
)
# soft_wrap: lines are never broken at the width, which is 80 when not on a terminal: paths in
# messages broke across lines in cron and systemd logs.
console = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)

Inbox = Annotated[
    str | None,
    typer.Option(envvar="TALLYPROOF_INBOX", help="landing files: a folder or s3://bucket/prefix"),
]
Output = Annotated[
    str | None,
    typer.Option(envvar="TALLYPROOF_OUTPUT", help="output root: a folder or s3://bucket/prefix"),
]
Warehouse = Annotated[
    Path | None, typer.Option(envvar="TALLYPROOF_WAREHOUSE", help="the DuckDB file")
]
AsOf = Annotated[
    str | None, typer.Option("--as-of", help="the run's date, YYYY-MM-DD (default: today in UTC)")
]


def _json_flag(command: str, what: str = "one JSON object") -> Any:
    """`--json` of one command. Its variable is spelled out (`TALLYPROOF_RUN_JSON`) because
    Click's automatic name follows the Python parameter, `as_json`; so do the few other options
    whose flag is not their parameter's name."""
    return typer.Option(
        "--json/--no-json", envvar=f"TALLYPROOF_{command}_JSON", help=f"print {what} for machines"
    )


class FileFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"
    parquet = "parquet"


_state: dict[str, bool] = {"debug": False}


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option(help="show tracebacks")] = False,
    verbose: Annotated[bool, typer.Option(help="show Prefect's logs")] = False,
) -> None:
    _state["debug"] = debug
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    # Prefect waits 20 s for its temporary server; its first start on a new PREFECT_HOME creates
    # the server's database and took longer than that on this 2-core machine while it was busy.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "true")


def _settings(**overrides: Any) -> Settings:
    return get_settings().with_overrides(**overrides)


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):  # fromisoformat also takes 20261201
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date (YYYY-MM-DD)", param_hint=option
        ) from None


def _parse_as_of(value: str | None) -> date | None:
    """`--as-of`: a date, not after today (see `flows.checkpoints.run_date`)."""
    from flows.checkpoints import run_date

    as_of = _parse_date(value, "--as-of")
    try:
        run_date(as_of)
    except InvalidRequestError as err:
        raise typer.BadParameter(err.message, param_hint="--as-of") from None
    return as_of


class RichReporter:
    """Progress bars for long steps, shown only on a terminal."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}

    def start(self, step: str, total: int | None) -> None:
        self.tasks[step] = self.bar.add_task(step, total=total)

    def advance(self, step: str, amount: int = 1) -> None:
        if step in self.tasks:
            self.bar.advance(self.tasks[step], amount)

    def finish(self, step: str) -> None:
        if step in self.tasks:
            task = self.bar.tasks[self.tasks[step]]
            self.bar.update(self.tasks[step], completed=task.total or task.completed)


def _with_progress(enabled: bool, work: Any) -> Any:
    if not (enabled and console.is_terminal):
        return work()
    bar = Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    with bar:
        progress.install(RichReporter(bar))
        try:
            return work()
        finally:
            progress.install(None)


@app.command()
def generate(
    out_dir: Annotated[
        str | None,
        typer.Option(
            "--out", envvar="TALLYPROOF_GENERATE_OUT", help="where to write (default: the inbox)"
        ),
    ] = None,
    tenants: Annotated[int, typer.Option(min=1)] = 2,
    customers: Annotated[
        int,
        typer.Option(
            min=1,
            help="customers per tenant, production and sandbox together (a fifth in sandbox)",
        ),
    ] = 50,
    months: Annotated[int, typer.Option(min=1, max=12 * 100)] = 3,
    deltas_per_month: Annotated[
        int, typer.Option(min=1, help="per tenant, over its customers")
    ] = 2_000,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1)] = 7,
    end_month: Annotated[
        str | None, typer.Option(help="last month with activity, YYYY-MM (default: last month)")
    ] = None,
    file_format: Annotated[
        FileFormat, typer.Option("--format", envvar="TALLYPROOF_GENERATE_FORMAT")
    ] = FileFormat.csv,
    bad_rows: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.9,
            help="share of rows that break a rule (at least one of every code when > 0)",
        ),
    ] = 0.0,
) -> None:
    """Write realistic synthetic landing files, seeded and reproducible."""
    from flows.checkpoints import is_period

    if end_month is not None and not is_period(end_month):
        raise typer.BadParameter(
            f"{end_month!r} is not a month (YYYY-MM)", param_hint="--end-month"
        )
    from flows.generate import generate_landing_files
    from transforms.synthetic import GeneratorSpec

    spec = GeneratorSpec(
        tenants=tenants,
        customers=customers,
        months=months,
        deltas_per_month=deltas_per_month,
        seed=seed,
        end_month=end_month or _last_month(),
        bad_rows=bad_rows,
        format=file_format.value,
    )
    year, month = (int(part) for part in spec.end_month.split("-"))
    if year * 12 + month - months < 1970 * 12:  # the first month's index, counted from year 0
        raise typer.BadParameter(
            f"{months} months up to {spec.end_month} start before 1970-01, where timestamps begin",
            param_hint="--months",
        )
    target = out_dir or _settings().inbox
    made = _with_progress(True, lambda: generate_landing_files(spec, target))
    console.print(
        f"[green]wrote[/] {made.files} files, {made.rows:,} rows, "
        f"{made.bytes / 1e6:.1f} MB to {target} ({made.first_day} .. {made.last_day})"
    )


def _last_month(as_of: date | None = None) -> str:
    """The last month closed on `as_of` (default today, UTC)."""
    today = as_of or datetime.now(UTC).date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return f"{year:04d}-{month:02d}"


class RunnerKind(StrEnum):
    threads = "threads"
    dask = "dask"


Runner = Annotated[
    RunnerKind | None,
    typer.Option(envvar="TALLYPROOF_RUNNER", help="where shard work runs"),
]
DaskAddress = Annotated[
    str | None,
    typer.Option(
        envvar="TALLYPROOF_DASK_ADDRESS",
        help="a Dask scheduler, tcp://host:8786 (implies --runner dask)",
    ),
]
NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait/--wait", help="fail at once if another run holds the warehouse (or wait)"
    ),
]


def _run_settings(
    inbox: str | None,
    output: str | None,
    warehouse: Path | None,
    runner: RunnerKind | None,
    dask_address: str | None,
) -> Settings:
    """Settings for a writing run: where it reads and writes, and where shard work runs."""
    return _settings(
        inbox=inbox,
        output=output,
        warehouse=warehouse,
        runner=runner and runner.value,
        dask_address=dask_address,
    )


class _OwnErrorsInOneLine(logging.Filter):
    """Keeps Prefect's records that carry one of our own errors off the console.

    Prefect logs a failed task's and flow's exception with its traceback; for a
    `TallyproofError` the command prints the one line that matters (`error CODE: message`), and
    `--debug` shows the tracebacks again. Prefect's API handler, on the run loggers themselves,
    still gets every record for the UI.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return _state["debug"] or not isinstance(error, TallyproofError)


def _flow_with_runner(flow_: Any, settings: Settings) -> Any:
    """The flow on the configured task runner, once a Dask scheduler it names has answered."""
    from flows.runners import check_runner, task_runner

    check_runner(settings)

    # Importing the flow has set up Prefect's logging: its console handler is on the root logger.
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _OwnErrorsInOneLine) for f in handler.filters):
            handler.addFilter(_OwnErrorsInOneLine())
    return flow_.with_options(task_runner=task_runner(settings))


@app.command()
def run(
    inbox: Inbox = None,
    output: Output = None,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    include_open_period: Annotated[
        bool, typer.Option(help="also checkpoint the current month")
    ] = False,
    recheck_checkpoints: Annotated[
        bool,
        typer.Option(
            help="check every customer's checkpoints, not only those whose data changed "
            "(after editing the warehouse by hand)"
        ),
    ] = False,
    runner: Runner = None,
    dask_address: DaskAddress = None,
    no_wait: NoWait = False,
    as_json: Annotated[bool, _json_flag("RUN")] = False,
) -> None:
    """One nightly run: ingest, summaries, checkpoints, outputs. Idempotent."""
    from flows.pipeline import nightly_flow

    run_date = _parse_as_of(as_of)
    settings = _run_settings(inbox, output, warehouse, runner, dask_address)
    summary = _with_progress(
        not as_json,
        lambda: _flow_with_runner(nightly_flow, settings)(
            as_of=run_date,
            include_open_period=include_open_period,
            recheck_checkpoints=recheck_checkpoints,
            wait_for_lock=not no_wait,
            **_locations(settings),
        ),
    )
    if as_json:
        out.print_json(json.dumps(summary))
    else:
        print_run_summary(summary)


@app.command()
def backfill(
    period_from: Annotated[
        str,
        typer.Option("--from", envvar="TALLYPROOF_BACKFILL_FROM", help="the first month, YYYY-MM"),
    ],
    period_to: Annotated[
        str,
        typer.Option(
            "--to", envvar="TALLYPROOF_BACKFILL_TO", help="the last month, YYYY-MM (closed)"
        ),
    ],
    inbox: Inbox = None,
    output: Output = None,
    warehouse: Warehouse = None,
    as_of: AsOf = None,
    dry_run: Annotated[bool, typer.Option(help="say what would change; write nothing")] = False,
    runner: Runner = None,
    dask_address: DaskAddress = None,
    no_wait: NoWait = False,
    as_json: Annotated[bool, _json_flag("BACKFILL")] = False,
) -> None:
    """Recompute and republish past periods, oldest first; a no-op when nothing changed."""
    from flows.backfill import backfill_flow

    settings = _run_settings(inbox, output, warehouse, runner, dask_address)
    summary = _with_progress(
        not as_json,
        lambda: _flow_with_runner(backfill_flow, settings)(
            period_from=period_from,
            period_to=period_to,
            as_of=_parse_as_of(as_of),
            dry_run=dry_run,
            wait_for_lock=not no_wait,
            **_locations(settings),
        ),
    )
    if as_json:
        out.print_json(json.dumps(summary))
        return
    verb = "would" if dry_run else "did"
    table = Table(
        title=f"backfill {period_from}..{period_to} ({'dry run' if dry_run else summary['runId']})"
    )
    for column in ("period", "customers", "new versions", "files written", "files unchanged"):
        table.add_column(column, justify="right" if column != "period" else "left")
    for p in summary["periods"]:
        table.add_row(
            p["period"],
            f"{p['customers']:,}",
            f"{p['newVersions']:,}",
            f"{p['filesWritten']:,}",
            f"{p['filesUnchanged']:,}",
        )
    out.print(table)
    out.print(
        f"rows ingested: {summary['rowsAccepted']:,}; outside the periods (later ones "
        f"re-linked, other late data): {summary['relinkedVersions']:,} versions, "
        f"{summary['relinkedFiles']:,} files"
    )
    out.print(
        "[green]nothing changed[/]"
        if not summary["changed"]
        else f"the backfill {verb} change the periods above"
    )


def _run_as_json(row: dict[str, Any]) -> dict[str, Any]:
    """A `runs` row for machines: the summary as an object, times in RFC 3339 UTC."""
    as_json: dict[str, Any] = {}
    for name, value in row.items():
        if name == "summary":
            value = json.loads(value) if value else None
        elif isinstance(value, datetime):
            value = instant_text(value)
        elif isinstance(value, date):
            value = value.isoformat()
        as_json[name] = value
    return as_json


@app.command()
def runs(
    limit: Annotated[int, typer.Option(min=1, max=1000, help="how many")] = 20,
    warehouse: Warehouse = None,
    as_json: Annotated[bool, _json_flag("RUNS", "the runs as one JSON array")] = False,
) -> None:
    """The most recent runs, newest first."""
    from flows.reports import recent_runs

    with _reading_warehouse(warehouse) as (con, live):
        rows = recent_runs(con, limit).to_dicts()
    if live:
        # Read under the shared lock, so no writer holds it: a run still `running` died holding
        # it (the next writer records it so), and monitoring reading `--json` must not wait.
        for row in rows:
            if row["status"] == "running":
                row["status"] = "crashed"
    if as_json:
        out.print_json(json.dumps([_run_as_json(r) for r in rows]))
        return
    table = Table(title="runs")
    table.add_column("run", no_wrap=True)
    for column in (
        "kind",
        "as of",
        "started (UTC)",
        "seconds",
        "status",
        "accepted",
        "quarantined",
        "new checkpoints",
        "files",
        "published",
    ):
        table.add_column(column)
    for r in rows:
        summary = json.loads(r["summary"]) if r["summary"] else {}
        seconds = (r["finished_at"] - r["started_at"]).total_seconds() if r["finished_at"] else None
        table.add_row(
            r["run_id"],
            r["kind"],
            str(r["as_of"] or ""),
            f"{r['started_at']:%Y-%m-%d %H:%M:%S}",
            f"{seconds:.1f}" if seconds is not None else "",
            r["status"],
            str(summary.get("rowsAccepted", "")),
            str(summary.get("rowsQuarantined", "")),
            str(summary.get("checkpointsNew", "")),
            str(summary.get("filesPublished", "")),
            "yes" if r["published_at"] else "no",
        )
    # Off a terminal (a log, a pipe) the width is 80, which cut every column to an ellipsis:
    # print the table at its own width there.
    if out.is_terminal:
        out.print(table)
        return
    width = Measurement.get(out, out.options.update_width(10_000), table).maximum
    Console(width=width).print(table)  # `print(width=)` is capped at the console's width


@app.command()
def schedule(
    cron: Annotated[str, typer.Option(help="when, as a cron expression")] = "0 2 * * *",
    timezone: Annotated[str, typer.Option(help="the cron's time zone")] = "UTC",
    name: Annotated[str, typer.Option(help="the deployment's name")] = "nightly",
    include_open_period: Annotated[
        bool, typer.Option(help="also checkpoint the current month, every run")
    ] = False,
    inbox: Inbox = None,
    output: Output = None,
    warehouse: Warehouse = None,
    runner: Runner = None,
    dask_address: DaskAddress = None,
) -> None:
    """Serve the nightly deployment on its cron schedule (needs a Prefect server)."""
    from flows.errors import ConfigError

    start_one = (
        "start one with `uv run prefect server start`, then set PREFECT_API_URL="
        "http://127.0.0.1:4200/api (or run `tallyproof run` from cron; see the README)"
    )
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    api_url = PREFECT_API_URL.value()  # the variable, or the active Prefect profile
    if not api_url:
        raise ConfigError(f"schedules need a Prefect server: {start_one}")

    with get_client(sync_client=True) as client:
        failure = client.api_healthcheck()
    if failure is not None:
        raise ConfigError(
            f"the Prefect server at PREFECT_API_URL={api_url} does not answer ({failure}): "
            + start_one
        )
    settings = _run_settings(inbox, output, warehouse, runner, dask_address)
    served, options = nightly_deployment(
        settings, name=name, cron=cron, timezone=timezone, include_open_period=include_open_period
    )
    console.print(f"[green]serving[/] {name}: {cron} ({timezone}); Ctrl-C to stop")
    served.serve(**options)


def nightly_deployment(
    settings: Settings, *, name: str, cron: str, timezone: str, include_open_period: bool
) -> tuple[Any, dict[str, Any]]:
    """The nightly flow with the configured task runner, and its deployment's options. Served
    runs execute this flow object (not a fresh import), so the runner choice carries over."""
    from flows.pipeline import nightly_flow

    options = {
        "name": name,
        "schedule": nightly_schedule(cron, timezone),
        "parameters": {**_locations(settings), "include_open_period": include_open_period},
    }
    return _flow_with_runner(nightly_flow, settings), options


def nightly_schedule(cron: str, timezone: str) -> Any:
    """A validated cron schedule in a time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect.schedules import Cron

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"unknown time zone {timezone!r}", param_hint="--timezone"
        ) from None
    try:
        return Cron(cron, timezone=timezone)
    except ValueError as err:
        raise typer.BadParameter(f"{cron!r}: {err}", param_hint="--cron") from None


def _locations(settings: Settings) -> dict[str, str]:
    """The flow parameters that say where a run reads and writes."""
    return {
        "inbox": settings.inbox,
        "output": settings.output,
        "warehouse": str(settings.warehouse),
    }


def print_run_summary(summary: dict[str, Any]) -> None:
    table = Table(title=f"run {summary['runId']} (as of {summary['asOf']})", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row(
        "files seen / ingested / skipped",
        f"{summary['filesSeen']} / {summary['filesIngested']} / {summary['filesSkipped']}",
    )
    table.add_row("files quarantined", str(summary["filesQuarantined"]))
    table.add_row("rows accepted", f"{summary['rowsAccepted']:,}")
    table.add_row("rows duplicate", f"{summary['rowsDuplicate']:,}")
    table.add_row("rows quarantined", f"{summary['rowsQuarantined']:,}")
    for code, count in summary["quarantineByCode"].items():
        table.add_row(f"  {code}", f"{count:,}")
    table.add_row("customers touched", f"{summary['customersTouched']:,}")
    table.add_row("customer-periods touched", f"{summary['customerPeriodsTouched']:,}")
    table.add_row(
        f"checkpoints through {summary['checkpointedThrough']}",
        f"{summary['checkpointsNew']:,} new ({summary['checkpointsFirstVersions']:,} "
        "first versions)",
    )
    table.add_row(
        "leaves hashed", f"{summary['leavesHashed']:,} in {summary['treesHashed']:,} trees"
    )
    table.add_row(
        "files published",
        f"{summary['filesPublished']:,} ({summary['bytesPublished'] / 1e6:,.1f} MB, "
        f"{summary['runsPublished']} runs)",
    )
    for stage, seconds in summary["stageSeconds"].items():
        table.add_row(f"time: {stage}", f"{seconds:.2f} s")
    table.add_row("time", f"{summary['seconds']:.2f} s")
    out.print(table)


@app.command()
def demo(
    as_of: AsOf = None,
) -> None:
    """Generate sample data into the inbox, run the pipeline, and say where everything is."""
    from flows.generate import generate_landing_files
    from flows.pipeline import nightly_flow
    from transforms.synthetic import GeneratorSpec

    run_date = _parse_as_of(as_of)  # before anything is written
    settings = _settings()
    spec = GeneratorSpec(
        tenants=2,
        customers=40,
        months=3,
        deltas_per_month=3_000,
        end_month=_last_month(run_date),  # closed on the run's date: all checkpointed
        bad_rows=0.002,
    )
    made = _with_progress(True, lambda: generate_landing_files(spec, settings.inbox))
    console.print(
        f"[green]generated[/] {made.files} landing files ({made.rows:,} rows, a few "
        f"deliberately bad) in {settings.inbox}"
    )
    summary = _with_progress(True, lambda: nightly_flow(as_of=run_date, **_locations(settings)))
    print_run_summary(summary)
    root = settings.output.rstrip("/")
    glob = f"{root}/parquet/deltas/**/*.parquet"
    query = (
        "SELECT tenant, environment, period, count(*) AS deltas, "
        "sum(amount) FILTER (WHERE status = 'verified') AS verified_net "
        f"FROM read_parquet('{glob}', hive_partitioning=1) GROUP BY ALL ORDER BY ALL"
    )
    guide = DEMO_GUIDE.format(
        inbox=settings.inbox,
        warehouse=settings.warehouse,
        root=root,
        query=query,
        period=spec.end_month,
    )
    out.print(guide, highlight=False, soft_wrap=True)


DEMO_GUIDE = """
[bold]Where things are[/]
  inbox      {inbox}  (landing files; a few are broken on purpose)
  warehouse  {warehouse}  (DuckDB: deltas, delta_events, quarantine, checkpoints, runs)
  output     {root}
    parquet/<table>/tenant=/environment=/period=/    BI feed: deltas, customer_periods, checkpoints
    exports/<tenant>/<env>/customers/<customer>/<period>.csv   each customer's activity
    exports/<tenant>/<env>/batch-checkpoints/<period>.json     every customer's checkpoint
    receipts/<tenant>/<env>/<customer>/<period>.json           signed checkpoint and its leaves
    quarantine/<run>.csv   manifests/LATEST   .well-known/jwks.json

[bold]Try[/]
  uv run tallyproof verify {root}/receipts/acme/production/cust_00000/{period}.json
  uv run tallyproof package --tenant acme --customer cust_00000 --period {period} --sample-size 5
  uv run python -c "import duckdb; print(duckdb.sql(\\"{query}\\"))"

Run it again: nothing changes (every file is already ingested and published).
"""


def main() -> None:
    command = typer.main.get_command(app)
    for param in command.params:
        # Typer's completion options would read TALLYPROOF_INSTALL_COMPLETION through the
        # prefix: a stray variable would then turn every run into a silent no-op that edits
        # ~/.bashrc. Asked for on the command line only.
        if param.name in ("install_completion", "show_completion"):
            param.allow_from_autoenv = False
    try:
        code = command.main(prog_name="tallyproof", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as err:  # Typer has printed the help already
        sys.exit(err.exit_code)
    except click_errors.ClickException as err:  # a usage error: a bad option, value or variable
        if _state["debug"]:
            raise
        console.print(f"[red]error[/] USAGE: {_usage_message(err)}", soft_wrap=True)
        sys.exit(err.exit_code)
    except typer.Abort:
        console.print("[red]error[/] ABORTED", soft_wrap=True)
        sys.exit(1)
    except TallyproofError as err:
        if _state["debug"]:
            raise
        # One line whatever the width: cron and systemd logs are read line by line.
        console.print(f"[red]error[/] {err.code}: {err.message}", soft_wrap=True)
        sys.exit(1)
    except OSError as err:  # a path the command was given: missing, a folder, not writable
        if _state["debug"]:
            raise
        console.print(f"[red]error[/] IO_ERROR: {err}", soft_wrap=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # typer.Exit(code), --help and the like
        sys.exit(code)


def _usage_message(err: click_errors.ClickException) -> str:
    """The error on one line, naming the variable when the bad value came from one (Click names
    the option only, which is not what the operator set)."""
    message = " ".join(err.format_message().split())
    if isinstance(err, click_errors.UsageError) and err.ctx is not None:
        param = getattr(err, "param", None) or _param_of_hint(err)
        if param is not None and param.name is not None:
            source = err.ctx.get_parameter_source(param.name)
            if source is ParameterSource.ENVIRONMENT:
                message += f" (from {_envvar_of(param, err.ctx)})"
        message += f" (see {err.ctx.command_path} --help)"
    return message


def _param_of_hint(err: click_errors.ClickException) -> Parameter | None:
    """The parameter a BadParameter raised by a command names by `param_hint` ('--as-of')."""
    hint = getattr(err, "param_hint", None)
    ctx = getattr(err, "ctx", None)
    if not isinstance(hint, str) or ctx is None:
        return None
    return next((p for p in ctx.command.params if hint in getattr(p, "opts", ())), None)


def _envvar_of(param: Parameter, ctx: ClickContext) -> str:
    if isinstance(param.envvar, str):
        return param.envvar
    if isinstance(param.envvar, list | tuple) and param.envvar:
        return " or ".join(param.envvar)
    return f"{ctx.auto_envvar_prefix}_{(param.name or '').upper()}"


# --- checkpoints, receipts, verification ------------------------------------------------------
keys_app = typer.Typer(help="Signing keys: list them, rotate to a new one.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

Tenant = Annotated[str, typer.Option(help="the tenant")]
Environment = Annotated[str, typer.Option("--env", help="sandbox or production")]
CustomerOpt = Annotated[str, typer.Option("--customer", help="the customer id")]


@keys_app.command("list")
def keys_list(output: Output = None) -> None:
    """Print the JWKS: every signing key, the active one first."""
    from flows.signing import jwks

    out.print_json(json.dumps(jwks(_settings(output=output))))


@keys_app.command("rotate")
def keys_rotate(output: Output = None) -> None:
    """Make a new signing key the active one; old keys stay in the JWKS."""
    from flows.publish import publish_jwks
    from flows.signing import activate_signing_key, add_signing_key

    settings = _settings(output=output)
    # Published before it signs anything: a key that failed to reach the JWKS would sign
    # packages nobody can verify. If publishing fails, the old key stays active.
    kid = add_signing_key(settings)
    publish_jwks(settings)
    activate_signing_key(settings, kid)
    path = publish_jwks(settings)  # again, to list the key now active first
    console.print(f"[green]new signing key[/] {kid}; JWKS written to {settings.output}/{path}")


def _customer(con: Any, tenant: str, env: str, customer: str, period: str | None):  # -> Customer
    """The customer, refused as the API refuses it: a bad --env or --period, or a customer
    the warehouse does not have in that tenant and environment."""
    from flows.checkpoints import is_period
    from flows.fingerprints import Customer, require_customer

    if env not in ("sandbox", "production"):
        raise InvalidRequestError("env", f"--env must be sandbox or production, not {env!r}")
    if period is not None and not is_period(period):
        raise InvalidRequestError("period", f"--period must be a month, YYYY-MM, not {period!r}")
    who = Customer(tenant, env, customer)
    require_customer(con, who)
    return who


@contextmanager
def _reading_warehouse(warehouse: Path | None) -> Iterator[tuple[Any, bool]]:
    """A read-only connection to the warehouse, and whether it is the live one: read under the
    writer lock's shared side, so that a run waits for the read instead of failing; while a
    run writes, the snapshot the last run left, as the API reads."""
    import duckdb

    from flows.errors import ConfigError, WarehouseBusyError
    from flows.locks import reader_lock
    from flows.snapshots import current_snapshot
    from flows.warehouse import connect

    settings = _settings(warehouse=warehouse)
    if not Path(settings.warehouse).exists():
        raise ConfigError(f"no warehouse at {settings.warehouse}; run `tallyproof run` first")
    with ExitStack() as stack:
        try:
            stack.enter_context(reader_lock(settings.warehouse))
            con = connect(settings.warehouse, read_only=True)
            live = True
        except (WarehouseBusyError, duckdb.IOException, duckdb.ConnectionException) as err:
            held = isinstance(err, WarehouseBusyError) or "lock" in str(err).lower()
            if not held:  # no run holds it: the file itself is wrong
                raise ConfigError(f"cannot open the warehouse {settings.warehouse}: {err}") from err
            # A run holds the warehouse (or another program has it open for writing).
            stack.close()
            snapshot = current_snapshot(settings)
            if snapshot is None:
                raise WarehouseBusyError(
                    "a run is writing the warehouse and no run has left a snapshot to read "
                    "yet; try again when it ends"
                ) from err
            console.print(f"[yellow]a run is writing the warehouse; reading {snapshot.name}[/]")
            con = connect(snapshot, read_only=True)
            live = False
        try:
            yield con, live
        finally:
            con.close()


@app.command()
def receipt(
    tenant: Tenant,
    customer: CustomerOpt,
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    env: Environment = "production",
    warehouse: Warehouse = None,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", envvar="TALLYPROOF_RECEIPT_OUT", help="write here, not stdout"),
    ] = None,
) -> None:
    """The receipt of a customer's period: latest checkpoint and every leaf."""
    from flows.receipts import build_receipt

    with _reading_warehouse(warehouse) as (con, _):
        document = build_receipt(con, _customer(con, tenant, env, customer, period), period)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out_file:
        out_file.write_text(text, encoding="utf-8")
        console.print(f"[green]receipt[/] {document['receiptId']} written to {out_file}")
    else:
        sys.stdout.write(text)


@app.command()
def package(
    tenant: Tenant,
    customer: CustomerOpt,
    period: Annotated[str, typer.Option(help="YYYY-MM")],
    sample_size: Annotated[int, typer.Option(help="leaves to sample, 1-1000")] = 10,
    nonce: Annotated[str | None, typer.Option(help="default: 32 random hex")] = None,
    chain: Annotated[int, typer.Option(help="earlier checkpoints to include")] = 1,
    env: Environment = "production",
    warehouse: Warehouse = None,
    output: Output = None,
) -> None:
    """Make a signed verification package and store it under packages/ in the output."""
    from flows.packages import build_package, store_package
    from flows.signing import active_signing_key
    from flows.storage import open_location

    settings = _settings(warehouse=warehouse, output=output)
    with _reading_warehouse(warehouse) as (con, _):
        who = _customer(con, tenant, env, customer, period)
        document = build_package(
            con,
            who,
            period,
            sample_size=sample_size,
            nonce=nonce,
            chain_length=chain,
            key=active_signing_key(settings),
        )
    path = store_package(open_location(settings.output), who, document)
    written = f"{str(settings.output).rstrip('/')}/{path}"
    console.print(
        f"[green]package[/] {document['packageId']}: {len(document['entries'])} of "
        f"{document['sample']['population']} leaves, written to {written}"
    )
    sys.stdout.write(f"{written}\n")  # what `verify` reads, a path or an s3:// URI


@app.command()
def fingerprints(
    tenant: Tenant,
    customer: CustomerOpt,
    env: Environment = "production",
    period: Annotated[str | None, typer.Option(help="YYYY-MM")] = None,
    fingerprint: Annotated[
        str | None, typer.Option(help="a fingerprint or a prefix of 8+ hex")
    ] = None,
    warehouse: Warehouse = None,
) -> None:
    """Every checkpoint version of a customer, newest first, with its tamper check."""
    from flows.fingerprints import fingerprint_candidates

    with _reading_warehouse(warehouse) as (con, _):
        found = fingerprint_candidates(
            con,
            _customer(con, tenant, env, customer, period),
            period=period,
            fingerprint=fingerprint,
        )
    out.print_json(json.dumps(found))
    if any(not c["tamperCheck"]["ok"] for c in found):
        console.print("[red]tamper check failed[/] for at least one version")
        raise typer.Exit(1)


@app.command()
def verify(
    document: Annotated[str, typer.Argument(help="a file or s3:// URI")],
    jwks_file: Annotated[
        str | None,
        typer.Option(
            "--jwks",
            envvar="TALLYPROOF_VERIFY_JWKS",
            help="a JWKS file or URI (default: the output root's)",
        ),
    ] = None,
    output: Output = None,
    as_json: Annotated[bool, _json_flag("VERIFY")] = False,
) -> None:
    """Check a receipt, package or checkpoint export offline; exit 0 only if all checks pass."""
    from flows.outputs import output_root_of
    from flows.publish import JWKS_PATH
    from flows.verify import parse_json, verify_document

    data = _read_uri(document)
    root = output or output_root_of(document) or _settings().output
    jwks_source = jwks_file or f"{root.rstrip('/')}/{JWKS_PATH}"
    try:
        parsed = parse_json(data)
    except ValueError as err:
        hint = ""
        if "/batch-checkpoints/" in document and document.endswith(".csv"):
            hint = "; the CSV batch export has no signatures: verify the .json beside it"
        elif document.endswith(".csv"):  # SPEC section 6's CSV exports carry no signatures
            hint = "; CSV exports have no signatures: verify a receipt, a package or a batch .json"
        console.print(f"[red]FAIL[/] {document} is not JSON ({err}){hint}", soft_wrap=True)
        raise typer.Exit(1) from None
    try:
        keys = parse_json(_read_uri(jwks_source))
    except ValueError as err:
        console.print(f"[red]FAIL[/] the JWKS {jwks_source} is not JSON ({err})")
        raise typer.Exit(1) from None
    kind, checks = verify_document(parsed, keys)
    if as_json:
        out.print_json(
            json.dumps(
                {
                    "kind": kind,
                    "ok": checks.ok,
                    "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
                }
            )
        )
    else:
        out.print(f"[bold]{document}[/] ({kind}), keys from {jwks_source}")
        for check in checks:
            mark = "[green]PASS[/]" if check.ok else "[red]FAIL[/]"
            out.print(f"  {mark} {check.name}: {check.detail}", highlight=False, soft_wrap=True)
        failed = sum(not c.ok for c in checks)
        out.print(
            "[green]all checks passed[/]"
            if not failed
            else f"[red]{failed} of {len(checks)} checks failed[/]"
        )
    if not checks.ok:
        raise typer.Exit(1)


def _read_uri(uri: str) -> bytes:
    from flows.storage import has_odd_segment, open_location

    if uri.startswith("s3://"):
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        if not bucket or has_odd_segment(key):
            # A bucket alone, or a key S3 would not read as written (`a/../b` is its own key).
            raise InvalidRequestError(
                "document", f"{uri!r} does not name one object, s3://bucket/key"
            )
        folder, _, name = key.rpartition("/")
        return open_location(f"s3://{bucket}/{folder}").read_bytes(name)
    path = Path(uri)
    if not path.exists():
        raise InvalidRequestError("document", f"no such file: {uri}")
    return path.read_bytes()


# --- the dashboard API ------------------------------------------------------------------------
@app.command()
def api(
    host: Annotated[str | None, typer.Option(envvar="TALLYPROOF_API_HOST")] = None,
    port: Annotated[
        int | None, typer.Option(envvar="TALLYPROOF_API_PORT", min=1, max=65535)
    ] = None,
    output: Output = None,
    warehouse: Warehouse = None,
) -> None:
    """Serve the dashboard API (reads the latest snapshot a run left)."""
    from api.app import run as serve

    settings = _settings(output=output, warehouse=warehouse)
    serve(settings, host or settings.api_host, port or settings.api_port)


@app.command()
def token(
    tenant: Tenant,
    env: Annotated[
        str | None,
        typer.Option(help="allowed environments, e.g. sandbox,production (default: any)"),
    ] = None,
    ttl: Annotated[str, typer.Option(help="lifetime: 30m, 1h, 7d")] = "1h",
) -> None:
    """Mint a development JWT (HS256, the configured or development secret)."""
    from api.security import is_tenant_id, mint_token

    if not is_tenant_id(tenant):  # the API would refuse the token
        raise typer.BadParameter(
            f"{tenant!r} is not a tenant id (1 to 64 of A-Z a-z 0-9 _ . : -, not . or ..)",
            param_hint="--tenant",
        )
    environments = [e.strip() for e in env.split(",")] if env else None
    if environments and any(e not in ("sandbox", "production") for e in environments):
        raise typer.BadParameter("environments are sandbox and production", param_hint="--env")
    out.print(mint_token(_settings(), tenant, environments, _seconds(ttl)), soft_wrap=True)


def _seconds(ttl: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        value = int(ttl[:-1]) * units[ttl[-1]] if ttl[-1] in units else int(ttl)
    except (ValueError, IndexError):
        raise typer.BadParameter(
            f"{ttl!r} is not a duration (30m, 1h, 7d)", param_hint="--ttl"
        ) from None
    if value <= 0:
        raise typer.BadParameter("the lifetime must be positive", param_hint="--ttl")
    return value


if __name__ == "__main__":
    main()
