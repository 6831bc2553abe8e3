"""The command line around the flows: runs, backfill, reading while a run writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from flows.errors import ConfigError, StorageError
from flows.locks import writer_lock
from flows.warehouse import connect
from tests.conftest import Ledger, _free_port, csv_row


def test_runs_lists_recent_runs(ledger: Ledger) -> None:
    ledger.land_csv("a.csv", csv_row("d1"), csv_row("bad", amount="x"))
    first = ledger.run(as_of=date(2026, 4, 2))
    second = ledger.run(as_of=date(2026, 4, 2))
    result = CliRunner().invoke(app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["run_id"] for r in rows] == [second.run_id, first.run_id]
    assert all(r["status"] == "succeeded" and r["published_at"] for r in rows)
    # For scripts: the summary is an object, times are RFC 3339 in UTC.
    assert rows[1]["summary"]["rowsAccepted"] == 1
    assert rows[1]["summary"]["rowsQuarantined"] == 1
    assert rows[1]["as_of"] == "2026-04-02"
    assert rows[1]["publication_id"] == first.run_id  # each run published its own changes
    for key in ("started_at", "finished_at", "published_at"):
        assert rows[1][key].endswith("Z")
        assert datetime.fromisoformat(rows[1][key]).tzinfo is not None
    table = CliRunner().invoke(app, ["runs"], env={"COLUMNS": "200"})
    assert first.run_id in table.output and "succeeded" in table.output
    # Off a terminal (80 columns) every column used to be cut to an ellipsis.
    logged = CliRunner().invoke(app, ["runs"], env={"COLUMNS": None})
    assert first.run_id in logged.output and "quarantined" in logged.output
    assert "…" not in logged.output


def test_a_writer_waits_for_a_reading_command_and_runs_shows_dead_runs_crashed(
    ledger: Ledger,
) -> None:
    """A command reading the live warehouse shares the writer lock: a run that starts
    meanwhile waits for it (it failed at once, DuckDB refusing a writer while another process
    has the file open). Reading under that lock, `runs` shows a run that died as crashed."""
    from flows.cli import _reading_warehouse
    from flows.errors import WarehouseBusyError
    from flows.runs import start_run

    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 2))
    with _reading_warehouse(None) as (_, live):
        assert live
        with _reading_warehouse(None) as (_, also_live):  # readers share it
            assert also_live
        with (
            pytest.raises(WarehouseBusyError),
            writer_lock(ledger.settings.warehouse, purpose="test", wait_seconds=0.3),
        ):
            pass
    with writer_lock(ledger.settings.warehouse, purpose="a run that dies"):
        con = connect(ledger.settings.warehouse)
        start_run(con, "run_dead", "nightly", date(2026, 4, 3))
        con.close()
        running = CliRunner().invoke(app, ["runs", "--json"])  # a snapshot: as it was then
    assert "run_dead" not in running.stdout
    rows = json.loads(CliRunner().invoke(app, ["runs", "--json"]).stdout)
    assert (rows[0]["run_id"], rows[0]["status"]) == ("run_dead", "crashed")


def test_a_warehouse_another_program_holds_is_busy_not_a_config_error(ledger: Ledger) -> None:
    import subprocess
    import sys

    from flows.errors import WarehouseBusyError
    from flows.pipeline import open_warehouse

    ledger.run(as_of=date(2026, 4, 2))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print(1, flush=True); input()",
            str(ledger.settings.warehouse),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline()
        with (
            pytest.raises(WarehouseBusyError, match="open in another program"),
            open_warehouse(ledger.settings),
        ):
            pass
    finally:
        holder.communicate(b"\n")


def test_reading_commands_fall_back_to_the_snapshot_while_a_run_writes(ledger: Ledger) -> None:
    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 2))
    with writer_lock(ledger.settings.warehouse, purpose="test"):
        writer = connect(ledger.settings.warehouse)  # DuckDB's own lock, held by this process
        try:
            result = CliRunner().invoke(
                app, ["receipt", "--tenant", "acme", "--customer", "c1", "--period", "2026-03"]
            )
        finally:
            writer.close()
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{") :])["totals"]["treeSize"] == 1


def test_package_prints_what_verify_reads_and_messages_keep_paths_whole(ledger: Ledger) -> None:
    ledger.land_csv(
        "a.csv", *(csv_row(f"d{i}", occurred_at="2026-03-01T00:00:00Z") for i in range(3))
    )
    ledger.run(as_of=date(2026, 4, 2))
    args = "package --tenant acme --customer c1 --period 2026-03 --sample-size 2"
    made = CliRunner().invoke(app, args.split())
    assert made.exit_code == 0, made.output
    path = made.stdout.strip()
    assert Path(path).is_file() and len(path) > 80
    # Not on a terminal, Rich broke lines at 80 columns, paths included.
    assert f"written to {path}" in made.stderr
    checked = CliRunner().invoke(app, ["verify", path])
    assert checked.exit_code == 0, checked.output


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_command(ledger: Ledger) -> None:
    ledger.land_csv(
        "a.csv",
        csv_row("d1", occurred_at="2026-02-01T00:00:00Z"),
        csv_row("d2", occurred_at="2026-03-01T00:00:00Z"),
    )
    runner = CliRunner()
    dry = runner.invoke(
        app,
        [
            "backfill",
            "--from",
            "2026-02",
            "--to",
            "2026-03",
            "--as-of",
            "2026-04-02",
            "--dry-run",
            "--json",
        ],
    )
    assert dry.exit_code == 0, dry.output
    summary = json.loads(dry.stdout)
    assert summary["dryRun"] and summary["changed"]
    assert [p["newVersions"] for p in summary["periods"]] == [1, 1]
    assert not (ledger.settings.data_dir / "warehouse.duckdb").exists()
    real = runner.invoke(
        app, ["backfill", "--from", "2026-02", "--to", "2026-03", "--as-of", "2026-04-02"]
    )
    assert real.exit_code == 0, real.output
    assert "2026-02" in real.output and "2026-03" in real.output
    assert "did change the periods above" in real.output
    again = runner.invoke(
        app, ["backfill", "--from", "2026-02", "--to", "2026-03", "--as-of", "2026-04-02"]
    )
    assert "nothing changed" in again.output
    bad = runner.invoke(app, ["backfill", "--from", "2026-03", "--to", "2026-02"])
    assert bad.exit_code == 1


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("debug", [False, True])
def test_a_failed_run_leaves_prefects_tracebacks_to_debug(
    ledger: Ledger, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The command prints our own error as one line (`main`); Prefect's console would print
    its traceback twice before it, once for the task and once for the flow."""
    result = CliRunner().invoke(app, [*(["--debug"] if debug else []), "run", "--inbox", "s3:///x"])
    assert isinstance(result.exception, StorageError)
    # Filtered as Prefect's console is: every handler on the root logger
    assert "Finished in state Failed" in caplog.text  # which task failed, in one line
    assert ("Traceback" in caplog.text) is debug


@pytest.mark.parametrize("command", [["run"], ["backfill", "--from", "2026-03", "--to", "2026-03"]])
def test_an_unreachable_dask_scheduler_fails_before_the_warehouse_is_touched(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, command: list[str]
) -> None:
    """prefect-dask connects at the first shard, after ingest and checkpoints have committed;
    the command asks the scheduler first, so a wrong address changes nothing."""
    from flows import runners

    monkeypatch.setattr(runners, "SCHEDULER_TIMEOUT_SECONDS", 1.0)
    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    result = CliRunner().invoke(app, [*command, "--dask-address", address, "--as-of", "2026-04-02"])
    assert isinstance(result.exception, ConfigError), result.output
    assert address in str(result.exception) and "--dask-address" in str(result.exception)
    assert not ledger.settings.warehouse.exists()


def test_a_dask_scheduler_that_answers_passes_the_check() -> None:
    from distributed import LocalCluster

    from flows.config import Settings
    from flows.runners import check_runner

    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        check_runner(Settings(dask_address=cluster.scheduler_address))


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_takes_its_options_from_the_environment(ledger: Ledger) -> None:
    """SPEC section 8: every option also reads from a `TALLYPROOF_*` variable; a cron line
    can say `TALLYPROOF_RUN_AS_OF=... tallyproof run` instead of `--as-of`."""
    ledger.land_csv(
        "a.csv",
        csv_row("d1", occurred_at="2026-03-01T00:00:00Z"),
        csv_row("d2", occurred_at="2026-04-01T00:00:00Z"),
    )
    env = {
        "TALLYPROOF_RUN_AS_OF": "2026-04-02",
        "TALLYPROOF_RUN_INCLUDE_OPEN_PERIOD": "true",
        "TALLYPROOF_RUN_JSON": "1",
    }
    result = CliRunner().invoke(app, ["run"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["checkpointsNew"] == 2  # March and the open April
    assert ledger.rows("SELECT period FROM checkpoints ORDER BY 1") == [("2026-03",), ("2026-04",)]
    (run,) = ledger.rows("SELECT as_of FROM runs")
    assert run == (date(2026, 4, 2),)
    # A bad value from the environment names its option, as on the command line.
    bad = CliRunner().invoke(app, ["run"], env={"TALLYPROOF_RUN_AS_OF": "April"})
    assert bad.exit_code == 2 and "--as-of" in bad.output


# The options that are settings read the setting's own variable, as `Settings` does.
SETTINGS_OPTIONS = {"inbox", "output", "warehouse", "runner", "dask_address"}


def _options(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every option of every command, with the command's path (Typer's vendored Click)."""
    for param in command.params:
        if param.param_type_name == "option" and param.name not in CLICKS_OWN:
            yield path, param
    for name, sub in getattr(command, "commands", {}).items():
        yield from _options(sub, (*path, name))


CLICKS_OWN = {"help", "install_completion", "show_completion"}


def test_every_option_reads_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A setting's option reads `TALLYPROOF_<SETTING>`; any other reads
    `TALLYPROOF_<COMMAND>_<OPTION>`, spelled as its flag; and `--help` names the variable."""
    root = typer.main.get_command(app)
    seen = 0
    for path, option in _options(root):
        flag = max(option.opts, key=len).removeprefix("--").replace("-", "_").upper()
        if option.name in SETTINGS_OPTIONS:
            expected = f"TALLYPROOF_{flag}"
        elif path == ("api",):
            expected = f"TALLYPROOF_API_{flag}"  # the settings api_host and api_port
        else:
            expected = "_".join(["TALLYPROOF", *path, flag]).upper().replace("-", "_")
        ctx = root.make_context("tallyproof", [], resilient_parsing=True)
        for part in path:
            ctx = ctx.command.get_command(ctx, part).make_context(
                part, [], parent=ctx, resilient_parsing=True
            )
        monkeypatch.setenv(expected, "from-env")
        assert option.resolve_envvar_value(ctx) == "from-env", (path, option.opts, expected)
        monkeypatch.delenv(expected)
        seen += 1
    assert seen > 60
    help_text = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"}).output
    for name in ("TALLYPROOF_INBOX", "TALLYPROOF_RUN_AS_OF", "TALLYPROOF_RUN_JSON"):
        assert name in help_text


def test_a_rotation_that_cannot_publish_keeps_the_old_key(ledger: Ledger, tmp_path) -> None:
    """A key is active only once the JWKS that lists it is published: packages signed by a
    key missing from the JWKS would verify nowhere."""
    from flows.signing import active_signing_key, jwks

    before = active_signing_key(ledger.settings).kid
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    failed = CliRunner().invoke(app, ["keys", "rotate", "--output", str(blocked / "out")])
    assert failed.exit_code == 1
    assert active_signing_key(ledger.settings).kid == before
    rotated = CliRunner().invoke(app, ["keys", "rotate"])
    assert rotated.exit_code == 0, rotated.output
    after = active_signing_key(ledger.settings).kid
    assert after != before and after in rotated.output
    assert {before, after} <= {k["kid"] for k in jwks(ledger.settings)["keys"]}
    published = json.loads((ledger.settings.data_dir / "output/.well-known/jwks.json").read_text())
    assert published["keys"][0]["kid"] == after  # the active key first, as in every JWKS


def test_verify_finds_the_jwks_of_the_output_the_document_sits_in(ledger: Ledger, tmp_path) -> None:
    """A receipt in another output root (a copy, an s3:// prefix) is checked against that
    root's JWKS, not the default output's."""
    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 2))
    elsewhere = tmp_path / "copied-output"
    (ledger.settings.data_dir / "output").rename(elsewhere)
    receipt = elsewhere / "receipts/acme/production/c1/2026-03.json"
    result = CliRunner().invoke(app, ["verify", str(receipt)])
    assert result.exit_code == 0, result.output
    assert f"keys from {elsewhere}/.well-known/jwks.json" in result.output.replace("\n", "")


def test_verify_of_the_csv_batch_export_points_to_the_json(ledger: Ledger) -> None:
    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 2))
    batch = ledger.settings.data_dir / "output/exports/acme/production/batch-checkpoints"
    result = CliRunner().invoke(app, ["verify", str(batch / "2026-03.csv")])
    assert result.exit_code == 1
    assert "verify the .json beside it" in result.output
    assert CliRunner().invoke(app, ["verify", str(batch / "2026-03.json")]).exit_code == 0


def test_variables_cannot_turn_on_completion_and_flags_can_be_turned_off(
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    tmp_path: Path,
) -> None:
    """Found by a review: TALLYPROOF_INSTALL_COMPLETION=1 made every command edit ~/.bashrc
    and do nothing else, and TALLYPROOF_RUNS_JSON=1 could not be undone on the command line."""
    from flows.cli import main

    ledger.land_csv("a.csv", csv_row("d1"))
    ledger.run(as_of=date(2026, 4, 2))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TALLYPROOF_INSTALL_COMPLETION", "1")
    monkeypatch.setenv("TALLYPROOF_SHOW_COMPLETION", "1")
    monkeypatch.setenv("TALLYPROOF_RUNS_JSON", "1")
    monkeypatch.setattr("sys.argv", ["tallyproof", "runs"])
    main()
    assert json.loads(capsys.readouterr().out)[0]["status"] == "succeeded"
    assert not (tmp_path / "home").exists()
    monkeypatch.setattr("sys.argv", ["tallyproof", "runs", "--no-json"])
    main()
    table = capsys.readouterr().out
    assert "runs" in table and not table.lstrip().startswith("[")


@pytest.mark.parametrize("args", [[], ["keys"]])
def test_no_command_prints_the_help_alone(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, args: list[str]
) -> None:
    code, stderr = _main(monkeypatch, capsys, *args)
    assert code == 2 and stderr == ""


def _main(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple:
    """(exit code, stderr) of the installed command's entry point, in this process."""
    from flows.cli import main

    monkeypatch.setattr("sys.argv", ["tallyproof", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    return exited.value.code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        (["runs"], {"TALLYPROOF_WORKERS": "0"}, 1, "CONFIG_ERROR: TALLYPROOF_WORKERS"),
        (["runs"], {"TALLYPROOF_LOCK_WAIT_SECONDS": "abc"}, 1, "TALLYPROOF_LOCK_WAIT_SECONDS"),
        # A second review: usage errors were boxed over many lines, and a bad value from a
        # variable named the option, not the variable; empty or short secrets were taken.
        (["runs"], {"TALLYPROOF_RUNS_LIMIT": "abc"}, 2, "(from TALLYPROOF_RUNS_LIMIT)"),
        (["run"], {"TALLYPROOF_RUN_AS_OF": "April"}, 2, "--as-of: 'April' is not a date"),
        (["run"], {"TALLYPROOF_RUN_AS_OF": "April"}, 2, "(from TALLYPROOF_RUN_AS_OF)"),
        (["runs", "--nosuch"], {}, 2, "USAGE: No such option: --nosuch"),
        (["runs"], {"TALLYPROOF_SALT_KEY": ""}, 1, "TALLYPROOF_SALT_KEY: must not be empty"),
        (["token", "--tenant", "a"], {"TALLYPROOF_JWT_SECRET": "short"}, 1, "at least 32 bytes"),
        # A third review: a token the API would refuse was minted.
        (["token", "--tenant", "bad tenant"], {}, 2, "--tenant: 'bad tenant' is not a tenant"),
        # The API's secret is checked where it is used: a pipeline command does not need it.
        (["runs", "--limit", "x"], {"TALLYPROOF_JWT_SECRET": "short"}, 2, "--limit"),
        (["runs"], {"TALLYPROOF_JWT_ALGORITHMS": "RS256,none"}, 1, "JWT_ALGORITHMS[1]: Input"),
        (["generate", "--end-month", "2026-13"], {}, 2, "--end-month"),
        (["run", "--as-of", "20260402"], {}, 2, "--as-of"),  # ISO's basic form is not taken
        (["demo", "--as-of", "2026-13-01"], {}, 2, "--as-of"),
        # SPEC section 4: a period in the future cannot be checkpointed
        (["run", "--as-of", "2099-01-01"], {}, 2, "is after today"),
        (
            ["backfill", "--from", "2026-01", "--to", "2026-01", "--as-of", "2099-01-01"],
            {},
            2,
            "--as-of",
        ),
        (["demo", "--as-of", "2099-01-01"], {}, 2, "is after today"),
        (["api", "--port", "99999"], {}, 2, "--port"),
        (["verify", "."], {}, 1, "IO_ERROR"),
        (["verify", "s3://only-a-bucket"], {}, 1, "does not name one object"),
        (["verify", "s3://bucket/a/../r.json"], {}, 1, "does not name one object"),
        (["receipt", "--tenant", "acme", "--customer", "c1", "--period", "x"], {}, 1, "--period"),
        (
            ["receipt", "--tenant", "nope", "--customer", "c1", "--period", "2026-03"],
            {},
            1,
            "NOT_FOUND: tenant 'nope' has no customer 'c1'",
        ),
        (["fingerprints", "--tenant", "acme", "--customer", "nobody"], {}, 1, "NOT_FOUND"),
        (
            [
                "receipt",
                "--tenant",
                "acme",
                "--customer",
                "c1",
                "--period",
                "2026-03",
                "--out",
                "/nonexistent/r.json",
            ],
            {},
            1,
            "IO_ERROR",
        ),
    ],
)
def test_a_known_mistake_is_one_line(
    ledger: Ledger,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
    args: list[str],
    env: dict[str, str],
    code: int,
    says: str,
) -> None:
    """Found by a review: each of these ended in a traceback (or, for an unknown customer,
    in a message about a missing checkpoint)."""
    from flows.config import get_settings

    ledger.land_csv("a.csv", csv_row("d1", occurred_at="2026-03-01T00:00:00Z"))
    ledger.run(as_of=date(2026, 4, 2))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        exit_code, stderr = _main(monkeypatch, capsys, *args)
    finally:
        get_settings.cache_clear()
    assert exit_code == code and says in stderr and "Traceback" not in stderr, stderr
    # One line, however long, for logs read line by line.
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_a_warehouse_that_is_not_one_is_a_config_error(ledger: Ledger, tmp_path) -> None:
    from flows.errors import ConfigError
    from flows.pipeline import open_warehouse

    not_duckdb = tmp_path / "notes.txt"
    not_duckdb.write_text("hello")
    settings = ledger.settings.with_overrides(warehouse=not_duckdb)
    with pytest.raises(ConfigError, match="cannot open the warehouse"), open_warehouse(settings):
        pass
