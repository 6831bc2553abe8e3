"""The nightly flow on the real Prefect engine, and the CLI around it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.pipeline import nightly_flow
from flows.warehouse import connect
from tests.conftest import Ledger, csv_row

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_nightly_flow_records_its_run(ledger: Ledger) -> None:
    ledger.land_csv(
        "2026-03-01.csv", csv_row("d1"), csv_row("d2", amount="-4.5"), csv_row("bad", amount="1e3")
    )
    s = ledger.settings
    summary = nightly_flow(inbox=s.inbox, output=s.output, warehouse=str(s.warehouse))
    assert (summary["filesIngested"], summary["rowsAccepted"], summary["rowsQuarantined"]) == (
        1,
        2,
        1,
    )
    assert summary["quarantineByCode"] == {"INVALID_AMOUNT": 1}
    assert summary["customersTouched"] == 1
    [(status, stored)] = ledger.rows(
        "SELECT status, summary FROM runs WHERE run_id = ?", [summary["runId"]]
    )
    assert status == "succeeded"
    assert json.loads(stored)["rowsAccepted"] == 2
    assert ledger.rows("SELECT closing_balance FROM customer_periods") == [(5.5,)]
    # March closed long ago: checkpointed, signed, and the JWKS published.
    assert (summary["checkpointsNew"], summary["checkpointsFirstVersions"]) == (1, 1)
    assert ledger.rows("SELECT period, tree_size, closing_balance FROM checkpoints") == [
        ("2026-03", 2, 5.5)
    ]
    jwks = json.loads((Path(s.output) / ".well-known" / "jwks.json").read_text())
    assert [k["kty"] for k in jwks["keys"]] == ["OKP"]


def test_cli_run_json_is_idempotent(ledger: Ledger) -> None:
    ledger.land_csv("2026-03-01.csv", csv_row("d1"), csv_row("d1"))
    runner = CliRunner()
    first = runner.invoke(app, ["run", "--json", "--as-of", "2026-04-02"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    expected_keys = {
        "filesSeen",
        "filesIngested",
        "filesSkipped",
        "rowsAccepted",
        "rowsDuplicate",
        "rowsQuarantined",
        "quarantineByCode",
    }
    assert expected_keys <= summary.keys()
    assert (summary["rowsAccepted"], summary["rowsDuplicate"], summary["asOf"]) == (
        1,
        1,
        "2026-04-02",
    )
    again = json.loads(runner.invoke(app, ["run", "--json"]).stdout)
    assert (again["filesSkipped"], again["rowsAccepted"], again["rowsRead"]) == (1, 0, 0)


def test_cli_refuses_a_bad_date() -> None:
    result = CliRunner().invoke(app, ["run", "--as-of", "2026-13-01"])
    assert result.exit_code == 2
    assert "--as-of" in result.output


def test_cli_run_rechecks_every_checkpoint_on_request(ledger: Ledger) -> None:
    """A run checks the customers whose data changed; a checkpoint deleted by hand comes back
    with `--recheck-checkpoints`."""
    ledger.land_csv("2026-03-01.csv", csv_row("d1"), csv_row("d2", customer="c2"))
    runner = CliRunner()
    assert runner.invoke(app, ["run", "--as-of", "2026-04-02"]).exit_code == 0
    con = connect(ledger.settings.warehouse)
    try:
        con.execute("DELETE FROM checkpoints WHERE customer_id = 'c2'").fetchall()
    finally:
        con.close()

    def run(*flags: str) -> int:
        result = runner.invoke(app, ["run", "--json", "--as-of", "2026-04-02", *flags])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)["checkpointsNew"]

    assert run() == 0
    assert run("--recheck-checkpoints") == 1
    assert ledger.rows("SELECT customer_id FROM checkpoints ORDER BY 1") == [("c1",), ("c2",)]
