"""Orchestration (issue 6): the flow's artifacts and run record, backfills against nightly runs,
two runs at once, the Dask runner against threads, and runs killed at random points."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest

from flows.backfill import run_backfill
from flows.config import Settings
from flows.generate import generate_landing_files
from flows.pipeline import run_nightly
from flows.signing import active_signing_key
from tests.conftest import REPO, ingest_and_die
from transforms.synthetic import GeneratorSpec

AS_OF = date(2026, 11, 2)
SPEC = GeneratorSpec(
    tenants=2,
    customers=30,
    months=3,
    deltas_per_month=600,
    seed=11,
    end_month="2026-10",
    bad_rows=0.01,
)
PART = re.compile(r"part-run_[0-9TZ]+_[0-9a-f]+(-\d{4}-\d{2})?-")


@pytest.fixture
def reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1793491200")  # 2026-11-01T00:00:00Z


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    inbox = tmp_path_factory.mktemp("landing") / "inbox"
    generate_landing_files(SPEC, str(inbox))
    return inbox


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keys") / "keys"
    active_signing_key(Settings(data_dir=folder.parent, keys_dir=folder))
    return folder


def data_dir(root: Path, landing: Path, keys: Path) -> Path:
    """A fresh data folder with the shared inbox and signing keys."""
    shutil.copytree(landing, root / "inbox")
    shutil.copytree(keys, root / "keys")
    return root


def settings_for(root: Path, **overrides: object) -> Settings:
    return Settings(data_dir=root, salt_key="process-tests", **overrides)


def published(root: Path) -> dict[str, str]:
    """Every published file by path (run ids taken out of Parquet names) and SHA-256, without
    the files that name runs by design (manifests, quarantine CSVs)."""
    out = {}
    base = root / "output"
    for path in base.rglob("*"):
        relative = path.relative_to(base).as_posix()
        if path.is_file() and not relative.startswith(("manifests/", "quarantine/", "packages/")):
            out[PART.sub("part-", relative)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def state(root: Path) -> dict[str, object]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return {
            "deltas": con.execute(
                "SELECT tenant_id, environment, delta_id, customer_id, period, amount, status, "
                "salt, leaf_index, first_event_seq, status_event_seq FROM deltas ORDER BY ALL"
            ).fetchall(),
            "events": con.execute(
                "SELECT event_seq, delta_id, outcome, line FROM delta_events ORDER BY event_seq"
            ).fetchall(),
            "checkpoints": con.execute(
                "SELECT customer_id, period, version, fingerprint FROM checkpoints ORDER BY ALL"
            ).fetchall(),
            "quarantine": con.execute(
                "SELECT file, line, code FROM quarantine ORDER BY ALL"
            ).fetchall(),
        }
    finally:
        con.close()


# --- the flow on the real Prefect engine ---------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_the_nightly_flow_leaves_artifacts_and_a_run_record(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL

    from flows.pipeline import nightly_flow

    root = data_dir(tmp_path / "data", landing, keys)
    os.environ["TALLYPROOF_SALT_KEY"] = "process-tests"
    try:
        state_ = nightly_flow(
            as_of=AS_OF,
            inbox=str(root / "inbox"),
            output=str(root / "output"),
            warehouse=str(root / "warehouse.duckdb"),
            return_state=True,
        )
    finally:
        del os.environ["TALLYPROOF_SALT_KEY"]
    summary = state_.result()
    assert summary["rowsAccepted"] > 0 and summary["checkpointsNew"] > 0
    assert summary["filesPublished"] > 0 and summary["shards"] > 0
    flow_run_id = state_.state_details.flow_run_id

    # Read back through the server's REST API (Prefect 3.8's own client sends fields its
    # server refuses on this route).
    def search(route: str, criteria: dict, sort: str) -> list[dict]:
        body = {**criteria, "limit": 200, "offset": 0, "sort": sort}
        return httpx.post(f"{PREFECT_API_URL.value()}/{route}/filter", json=body).json()

    run = [str(flow_run_id)]
    artifacts = search("artifacts", {"artifacts": {"flow_run_id": {"any_": run}}}, "CREATED_DESC")
    task_runs = search(
        "task_runs", {"flow_runs": {"id": {"any_": run}}}, "EXPECTED_START_TIME_DESC"
    )
    by_type = {a["type"]: a for a in artifacts}
    assert set(by_type) == {"table", "markdown"}
    table = by_type["table"]["data"]
    table = json.loads(table) if isinstance(table, str) else table
    metrics = {row["metric"]: row["value"] for row in table}
    assert metrics["files seen / ingested / skipped / quarantined"].startswith(
        f"{summary['filesSeen']} / "
    )
    assert any(k.startswith("quarantine ") for k in metrics)
    markdown = by_type["markdown"]["data"]
    assert summary["runId"] in markdown and "Time per stage" in markdown
    names = {t["name"] for t in task_runs}
    assert {"ingest", "summaries", "checkpoints"} <= {n.rsplit("-", 1)[0] for n in names}
    assert any(n.startswith("publish ") for n in names)
    [(status, stored)] = (
        duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
        .execute("SELECT status, summary FROM runs WHERE run_id = ?", [summary["runId"]])
        .fetchall()
    )
    assert status == "succeeded" and json.loads(stored)["rowsAccepted"] == summary["rowsAccepted"]


# --- backfills ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("reproducible")
def test_a_backfill_equals_nightly_runs_and_a_second_changes_nothing(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    nightly = data_dir(tmp_path / "nightly", landing, keys)
    run_nightly(settings_for(nightly), as_of=AS_OF, orchestrated=False)
    backfilled = data_dir(tmp_path / "backfill", landing, keys)
    first = run_backfill(
        settings_for(backfilled),
        period_from="2026-08",
        period_to="2026-10",
        as_of=AS_OF,
        orchestrated=False,
    )
    assert [p.period for p in first.periods] == ["2026-08", "2026-09", "2026-10"]
    assert all(p.new_versions > 0 and p.files_written > 0 for p in first.periods)

    assert state(backfilled)["checkpoints"] == state(nightly)["checkpoints"]
    assert state(backfilled)["deltas"] == state(nightly)["deltas"]
    assert published(backfilled) == published(nightly)

    before = published(backfilled)
    second = run_backfill(
        settings_for(backfilled),
        period_from="2026-08",
        period_to="2026-10",
        as_of=AS_OF,
        orchestrated=False,
    )
    assert not second.changed
    assert all(
        p.new_versions == p.files_written == 0 and p.files_unchanged > 0 for p in second.periods
    )
    assert published(backfilled) == before


@pytest.mark.usefixtures("reproducible")
def test_a_dry_run_reports_and_writes_nothing(tmp_path: Path, landing: Path, keys: Path) -> None:
    root = data_dir(tmp_path / "data", landing, keys)
    run_nightly(settings_for(root), as_of=AS_OF, orchestrated=False)
    # Late data lands for September.
    late = root / "inbox" / "2026-11-05.csv"
    late.write_text(
        "tenant_id,environment,delta_id,customer_id,amount,reason,reference_id,"
        "status,occurred_at,metadata\nacme,production,late-1,cust_00001,3.5,late,,"
        "verified,2026-09-10T00:00:00Z,\n"
    )
    before_state, before_files = state(root), published(root)
    dry = run_backfill(
        settings_for(root),
        period_from="2026-09",
        period_to="2026-10",
        as_of=AS_OF,
        dry_run=True,
        orchestrated=False,
    )
    assert dry.changed and dry.run.ingest.rows_accepted == 1
    september = dry.periods[0]
    assert september.new_versions == 1 and september.files_written > 0
    assert dry.periods[1].new_versions == 1  # October re-links to September's new version
    assert state(root) == before_state and published(root) == before_files
    real = run_backfill(
        settings_for(root),
        period_from="2026-09",
        period_to="2026-10",
        as_of=AS_OF,
        orchestrated=False,
    )
    assert [p.as_json() for p in real.periods] == [p.as_json() for p in dry.periods]
    assert published(root) != before_files


LATE = (
    "tenant_id,environment,delta_id,customer_id,amount,reason,reference_id,status,occurred_at,"
    "metadata\n"
    "acme,production,late-1,cust_00001,3.5,late,,verified,2026-08-10T00:00:00Z,\n"  # before
    "acme,production,late-2,cust_00002,4,late,,verified,2026-09-10T00:00:00Z,\n"  # in range
    "acme,production,late-3,newcomer,5,late,,verified,2026-10-10T00:00:00Z,\n"  # after, new
)


@pytest.mark.usefixtures("reproducible")
def test_a_backfill_publishes_all_it_changed(tmp_path: Path, landing: Path, keys: Path) -> None:
    """Late data before, in and after the range: the backfill's periods are republished as
    they go, and what they leave (August's new versions, October re-linked, the newcomer) at
    the end, so that the outputs are those of a nightly run on the same inputs. The periods'
    publications used to mark the run published, and the end published nothing."""
    roots = {}
    for name in ("nightly", "backfill"):
        roots[name] = data_dir(tmp_path / name, landing, keys)
        run_nightly(settings_for(roots[name]), as_of=AS_OF, orchestrated=False)
        (roots[name] / "inbox" / "2026-11-05.csv").write_text(LATE)
    run_nightly(settings_for(roots["nightly"]), as_of=AS_OF, orchestrated=False)
    report = run_backfill(
        settings_for(roots["backfill"]),
        period_from="2026-09",
        period_to="2026-09",
        as_of=AS_OF,
        orchestrated=False,
    )
    summary = report.as_json()
    assert summary["relinkedVersions"] > 0 and summary["relinkedFiles"] > 0
    assert summary["filesPublished"] > report.periods[0].files_written > 0
    assert summary["customersTouched"] == 3 and summary["runsPublished"] == 1
    assert state(roots["backfill"])["checkpoints"] == state(roots["nightly"])["checkpoints"]
    assert published(roots["backfill"]) == published(roots["nightly"])
    after = run_nightly(settings_for(roots["backfill"]), as_of=AS_OF, orchestrated=False)
    assert (after.checkpoints.new_versions, after.publication.files) == (0, 0)


def test_backfill_refuses_open_or_inverted_ranges(tmp_path: Path) -> None:
    from flows.errors import InvalidRequestError

    settings = settings_for(tmp_path)
    for start, end in [("2026-11", "2026-11"), ("2026-10", "2026-09"), ("2026-13", "2026-10")]:
        with pytest.raises(InvalidRequestError):
            run_backfill(
                settings, period_from=start, period_to=end, as_of=AS_OF, orchestrated=False
            )


# --- runs in processes of their own ---------------------------------------------------------------


def start(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "SOURCE_DATE_EPOCH": "1793491200", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.flows.run_once", str(root), AS_OF.isoformat(), *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_at_once_wait_or_refuse(tmp_path: Path, landing: Path, keys: Path) -> None:
    single = data_dir(tmp_path / "single", landing, keys)
    assert start(single).wait(300) == 0
    raced = data_dir(tmp_path / "raced", landing, keys)
    first, waiting = start(raced), start(raced)
    assert first.wait(300) == 0 and waiting.wait(300) == 0, waiting.stderr.read()
    refused = start(raced, "--wait", "0")
    holder = start(raced)
    # Whichever got the lock first, the other either waited or was refused: never both in.
    codes = sorted([refused.wait(300), holder.wait(300)])
    assert codes in ([0, 0], [0, 3])
    if codes == [0, 3]:
        assert "in use by" in refused.stdout.read() + holder.stdout.read()
    assert state(raced)["deltas"] == state(single)["deltas"]
    assert state(raced)["checkpoints"] == state(single)["checkpoints"]
    assert len(state(raced)["events"]) == len(state(single)["events"])
    assert published(raced) == published(single)


def holding_lock(root: Path) -> bool:
    note = root / "warehouse.duckdb.lock"
    return note.exists() and note.read_text().strip() != ""


def start_and_wait_for_lock(root: Path, *args: str) -> tuple[subprocess.Popen, float]:
    process = start(root, *args)
    while not holding_lock(root):
        assert process.poll() is None, process.stderr.read()
        time.sleep(0.01)
    return process, time.monotonic()


def test_a_run_killed_anywhere_is_completed_by_the_next(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    whole = data_dir(tmp_path / "whole", landing, keys)
    process, started = start_and_wait_for_lock(whole, "--batch-rows", "1500")
    assert process.wait(300) == 0
    duration = time.monotonic() - started
    want = state(whole)

    interrupted = 0
    for fraction in (0.1, 0.3, 0.5, 0.7):
        killed = data_dir(tmp_path / f"killed-{fraction}", landing, keys)
        victim, started = start_and_wait_for_lock(killed, "--batch-rows", "1500")
        time.sleep(max(0.0, started + fraction * duration - time.monotonic()))
        victim.send_signal(signal.SIGKILL)
        victim.wait(60)
        crashed = holding_lock(killed)  # else the run had finished already (timing varies)
        interrupted += crashed
        after = start(killed, "--batch-rows", "1500")
        assert after.wait(300) == 0, after.stderr.read()
        got = state(killed)
        assert got["deltas"] == want["deltas"], fraction  # no delta lost, none twice
        assert got["events"] == want["events"], fraction
        assert got["checkpoints"] == want["checkpoints"], fraction
        assert got["quarantine"] == want["quarantine"], fraction
        assert published(killed) == published(whole), fraction
        statuses = [
            r[0]
            for r in duckdb.connect(str(killed / "warehouse.duckdb"), read_only=True)
            .execute("SELECT status FROM runs ORDER BY started_at")
            .fetchall()
        ]
        # Killed holding the lock: before the run was recorded as finished (crashed), or after
        # it, while taking the read snapshot (succeeded; the next run takes the snapshot).
        first = {"crashed", "succeeded"} if crashed else {"succeeded"}
        assert statuses[0] in first and statuses[1:] == ["succeeded"], (fraction, statuses)
    assert interrupted >= 3


@pytest.mark.usefixtures("reproducible")
def test_a_run_that_died_after_ingest_has_its_customers_summarised_by_the_next(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    # Deterministic version of one kill point: the dead run's files are in the ledger, so the
    # next run reads nothing; it must still summarise (and checkpoint) what the dead run took.

    whole = data_dir(tmp_path / "whole", landing, keys)
    run_nightly(settings_for(whole), as_of=AS_OF, orchestrated=False)
    died = data_dir(tmp_path / "died", landing, keys)
    settings = settings_for(died)
    ingest_and_die(settings, "run_20260101T000000Z_dead00", AS_OF)
    after = run_nightly(settings, as_of=AS_OF, orchestrated=False)
    assert after.ingest.rows_accepted == 0
    assert state(died)["checkpoints"] == state(whole)["checkpoints"]
    assert published(died) == published(whole)


@pytest.mark.usefixtures("reproducible")
def test_a_dead_run_with_an_earlier_id_than_the_run_before_it_is_still_summarised(
    tmp_path: Path, landing: Path, keys: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Run ids are made before the writer lock is taken, so a run that waited for the lock can
    # carry an earlier id than the run that went first. Here the first run's id sorts last;
    # the run after it ingests the rest of the inbox and dies before its summaries. The next
    # run must still summarise those customers, though their summaries carry a "later" id.

    whole = data_dir(tmp_path / "whole", landing, keys)
    run_nightly(settings_for(whole), as_of=AS_OF, orchestrated=False)
    died = data_dir(tmp_path / "died", landing, keys)
    settings = settings_for(died)
    held_back = tmp_path / "held-back"
    held_back.mkdir()
    for path in sorted((died / "inbox").iterdir())[-5:]:
        path.rename(held_back / path.name)
    monkeypatch.setattr("flows.pipeline.new_run_id", lambda: "run_20991231T235959Z_ffffff")
    run_nightly(settings, as_of=AS_OF, orchestrated=False)
    monkeypatch.undo()
    for path in held_back.iterdir():
        path.rename(died / "inbox" / path.name)
    dead = "run_20260101T000000Z_000000"
    taken = ingest_and_die(settings, dead, AS_OF)
    assert taken.rows_accepted > 0
    run_nightly(settings, as_of=AS_OF, orchestrated=False)
    # The same summaries as one run over the whole inbox (checkpoints differ: the first run
    # checkpointed October before the rest of it arrived).
    assert summaries(died) == summaries(whole)


def summaries(root: Path, database: Path | None = None) -> list[tuple[object, ...]]:
    con = duckdb.connect(str(database or root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute(
            "SELECT * EXCLUDE (updated_run_id) FROM customer_periods ORDER BY ALL"
        ).fetchall()
    finally:
        con.close()


@pytest.mark.usefixtures("reproducible")
def test_a_dead_run_is_recovered_whoever_takes_the_lock_first(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    """Only a nightly run that found the lock's note of a dead holder used to mark the dead
    run crashed. A dry-run backfill (or an API checkpoint) that took the lock first cleared
    the note; the dead run stayed `running`, and its customers were never summarised."""
    from flows.backfill import run_backfill

    whole = data_dir(tmp_path / "whole", landing, keys)
    run_nightly(settings_for(whole), as_of=AS_OF, orchestrated=False)
    died = data_dir(tmp_path / "died", landing, keys)
    settings = settings_for(died)
    dead = "run_20260101T000000Z_dead00"
    ingest_and_die(settings, dead, AS_OF)
    run_backfill(
        settings,
        period_from="2026-09",
        period_to="2026-09",
        as_of=AS_OF,
        dry_run=True,
        orchestrated=False,
    )
    con = duckdb.connect(str(died / "warehouse.duckdb"), read_only=True)
    try:
        assert con.execute("SELECT status FROM runs").fetchall() == [("crashed",)]
    finally:
        con.close()
    run_nightly(settings, as_of=AS_OF, orchestrated=False)
    assert summaries(died) == summaries(whole)
    assert state(died)["checkpoints"] == state(whole)["checkpoints"]


@pytest.mark.usefixtures("reproducible")
def test_an_api_checkpoint_after_a_dead_run_snapshots_its_summaries_too(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    """An API checkpoint that takes the lock after a run died between ingest and summaries
    snapshots the warehouse for the API: it summarises the dead run's customers first, or the
    API served its deltas beside the summaries from before them (SPEC section 7: never a mix)."""
    from flows.checkpoints import ensure_checkpoint
    from flows.fingerprints import Customer
    from flows.snapshots import current_snapshot

    whole = data_dir(tmp_path / "whole", landing, keys)
    run_nightly(settings_for(whole), as_of=AS_OF, orchestrated=False)
    died = data_dir(tmp_path / "died", landing, keys)
    settings = settings_for(died)
    ingest_and_die(settings, "run_20260101T000000Z_dead00", AS_OF)
    con = duckdb.connect(str(died / "warehouse.duckdb"), read_only=True)
    try:
        tenant, environment, customer, period = con.execute(
            "SELECT tenant_id, environment, customer_id, period FROM deltas ORDER BY ALL LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    ensure_checkpoint(
        settings, Customer(tenant, environment, customer), period, today=AS_OF, wait_seconds=0
    )
    snapshot = current_snapshot(settings)  # what the API reads
    assert snapshot is not None and summaries(died, snapshot) == summaries(whole)


# --- Dask --------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness", "reproducible")
def test_the_dask_runner_gives_the_same_bytes_as_threads(
    tmp_path: Path, landing: Path, keys: Path
) -> None:
    from flows.pipeline import nightly_flow
    from flows.runners import task_runner

    results = {}
    for runner in ("threads", "dask"):
        root = data_dir(tmp_path / runner, landing, keys)
        settings = settings_for(root, runner=runner, workers=2)
        flow_ = nightly_flow.with_options(task_runner=task_runner(settings))
        os.environ["TALLYPROOF_SALT_KEY"] = "process-tests"
        try:
            summary = flow_(
                as_of=AS_OF,
                inbox=str(root / "inbox"),
                output=str(root / "output"),
                warehouse=str(root / "warehouse.duckdb"),
            )
        finally:
            del os.environ["TALLYPROOF_SALT_KEY"]
        assert summary["shards"] > 1
        results[runner] = published(root)
    assert results["dask"] == results["threads"]


# --- schedules ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_the_nightly_deployment_carries_its_schedule_parameters_and_runner(
    tmp_path: Path,
) -> None:
    import httpx
    from prefect.settings import PREFECT_API_URL
    from prefect_dask import DaskTaskRunner

    from flows.cli import nightly_deployment

    settings = settings_for(tmp_path).with_overrides(runner="dask")
    served, options = nightly_deployment(
        settings,
        name="nightly-test",
        cron="30 2 * * *",
        timezone="Europe/Berlin",
        include_open_period=True,
    )
    assert isinstance(served.task_runner, DaskTaskRunner)
    deployment_id = served.to_deployment(**options).apply()
    stored = httpx.get(f"{PREFECT_API_URL.value()}/deployments/{deployment_id}").json()
    [schedule] = stored["schedules"]
    assert schedule["schedule"]["cron"] == "30 2 * * *"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin"
    assert stored["parameters"] == {
        "inbox": str(settings.inbox),
        "output": str(settings.output),
        "warehouse": str(settings.warehouse),
        "include_open_period": True,
    }


@pytest.mark.usefixtures("prefect_harness")
def test_the_scheduler_makes_nightly_runs_and_a_served_flow_accepts_them(
    tmp_path: Path,
) -> None:
    """What `tallyproof schedule` serves: the Prefect server's scheduler makes runs from the
    deployment (it made none on SQLAlchemy 2.1), and the served flow, which a run receives
    pickled by value in a process of its own, still validates its parameters (it failed to
    while the pipeline module's annotations were strings naming its globals)."""
    import asyncio
    import pickle

    import cloudpickle
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.server.services.scheduler import schedule_deployments

    from flows.cli import nightly_deployment

    served, options = nightly_deployment(
        settings_for(tmp_path),
        name="nightly-scheduled",
        cron="0 2 * * *",
        timezone="UTC",
        include_open_period=False,
    )
    deployment_id = served.to_deployment(**options).apply()

    async def scheduled() -> list[dict]:
        await schedule_deployments(perpetual=None)  # one pass of the server's scheduler
        async with get_client() as client:
            runs = await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
                limit=10,
            )
        return [run.parameters for run in runs]

    runs = asyncio.run(scheduled())
    assert runs and runs[0] == options["parameters"]
    shipped = pickle.loads(cloudpickle.dumps(served))
    assert shipped.validate_parameters(runs[0])["include_open_period"] is False


def test_schedule_needs_a_prefect_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from flows.cli import app

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = CliRunner().invoke(app, ["schedule"])
    assert result.exit_code != 0
    assert "prefect server start" in str(result.exception)


def test_schedule_says_when_its_prefect_server_does_not_answer() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.errors import ConfigError
    from tests.conftest import _free_port

    url = f"http://127.0.0.1:{_free_port()}/api"  # nothing listens there
    with temporary_settings({PREFECT_API_URL: url}):
        result = CliRunner().invoke(app, ["schedule"])
    assert isinstance(result.exception, ConfigError), result.output
    assert url in str(result.exception) and "prefect server start" in str(result.exception)
