"""Run reports: the summary of a run as Prefect artifacts, and the runs a warehouse recorded."""

from __future__ import annotations

from typing import Any

import duckdb
import polars as pl

from flows.warehouse import query_frame

ROWS = [
    (
        "files seen / ingested / skipped / quarantined",
        "{filesSeen} / {filesIngested} / {filesSkipped} / {filesQuarantined}",
    ),
    (
        "rows read / accepted / duplicate / quarantined",
        "{rowsRead} / {rowsAccepted} / {rowsDuplicate} / {rowsQuarantined}",
    ),
    ("customers / customer-periods touched", "{customersTouched} / {customerPeriodsTouched}"),
    (
        "checkpoints made (first versions), through",
        "{checkpointsNew} ({checkpointsFirstVersions}), {checkpointedThrough}",
    ),
    ("leaves hashed in trees", "{leavesHashed} in {treesHashed}"),
    ("files published / unchanged, bytes", "{filesPublished} / {filesUnchanged}, {bytesPublished}"),
    ("manifest", "{manifest}"),
]


def report_markdown(summary: dict[str, Any]) -> str:
    lines = [
        f"# tallyproof {summary['kind']} run `{summary['runId']}`",
        f"as of {summary['asOf']}, {summary['seconds']} s",
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {label} | {value.format(**summary)} |" for label, value in ROWS]
    if summary["quarantineByCode"]:
        lines += ["", "## Quarantine by code", "", "| code | rows |", "|---|---|"]
        lines += [f"| `{code}` | {n} |" for code, n in summary["quarantineByCode"].items()]
    lines += ["", "## Time per stage", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {s} |" for stage, s in summary["stageSeconds"].items()]
    return "\n".join(lines) + "\n"


def report_table(summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"metric": label, "value": value.format(**summary)} for label, value in ROWS]
    rows += [
        {"metric": f"quarantine {code}", "value": str(n)}
        for code, n in summary["quarantineByCode"].items()
    ]
    rows += [
        {"metric": f"seconds {stage}", "value": str(s)}
        for stage, s in summary["stageSeconds"].items()
    ]
    return rows


def publish_artifacts(summary: dict[str, Any]) -> None:
    """The run summary as a table and a markdown artifact of the current flow run."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    key = f"tallyproof-{summary['kind']}-run"
    create_table_artifact(
        table=report_table(summary),
        key=key,
        description=f"run {summary['runId']} as of {summary['asOf']}",
    )
    create_markdown_artifact(
        markdown=report_markdown(summary),
        key=f"{key}-report",
        description=f"run {summary['runId']}",
    )


def recent_runs(con: duckdb.DuckDBPyConnection, limit: int) -> pl.DataFrame:
    return query_frame(con, "select_recent_runs", {"limit": limit})
