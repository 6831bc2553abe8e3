"""`tallyproof generate`: write synthetic landing files, one per landing day.

`transforms.synthetic` decides the rows; this module renders them as CSV, JSONL or Parquet and
writes them into the inbox (a folder or an s3:// prefix). Files are named `YYYY-MM-DD.<ext>`, so
their lexicographic order is the order they landed in. With a bad-row rate it also lands three
files that cannot be read at all (not UTF-8, truncated Parquet, an unknown extension).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import polars as pl

from flows import progress
from flows.storage import open_location
from transforms import codes
from transforms.jcs import json_string
from transforms.messages import message
from transforms.synthetic import GeneratorSpec, landing_events

FIELDS = [
    "tenant_id",
    "environment",
    "delta_id",
    "customer_id",
    "amount",
    "reason",
    "reference_id",
    "status",
    "occurred_at",
    "metadata",
]
STEP = "generate"


@dataclass(frozen=True)
class GeneratedFiles:
    files: int
    rows: int
    bytes: int
    first_day: str
    last_day: str


def generate_landing_files(spec: GeneratorSpec, out: str) -> GeneratedFiles:
    events = landing_events(spec)
    location = open_location(out)
    days = events.partition_by("land_day", as_dict=True, maintain_order=True)
    written, files = 0, len(days)
    with progress.step(STEP, total=len(days)):
        for (day,), rows in days.items():
            data = render(rows, spec.format)
            location.write_bytes(f"{day.isoformat()}.{spec.format}", data)
            written += len(data)
            progress.advance(STEP)
        if spec.bad_rows > 0:
            last = max(day for (day,) in days)
            for name, data in unreadable_files(last.isoformat()).items():
                location.write_bytes(name, data)
                written += len(data)
                files += 1
    first_day = min(day for (day,) in days)
    last_day = max(day for (day,) in days)
    return GeneratedFiles(
        files, events.height, written, first_day.isoformat(), last_day.isoformat()
    )


def render(rows: pl.DataFrame, file_format: str) -> bytes:
    if file_format == "csv":
        return _render_csv(rows)
    if file_format == "jsonl":
        return _render_jsonl(rows)
    if file_format == "parquet":
        return _render_parquet(rows)
    raise ValueError(f"unknown format {file_format!r}")


def _render_csv(rows: pl.DataFrame) -> bytes:
    malformed = pl.col("corruption") == codes.MALFORMED_ROW
    text = rows.filter(~malformed.fill_null(False)).select(FIELDS).write_csv()
    broken = rows.filter(malformed.fill_null(False))
    # A record that lost its last fields in transit.
    extra = "".join(
        f"{t},{e},{d},{c}\n"
        for t, e, d, c in broken.select(
            "tenant_id", "environment", "delta_id", "customer_id"
        ).rows()
    )
    return (text + extra).encode("utf-8")


def _render_jsonl(rows: pl.DataFrame) -> bytes:
    code = pl.col("corruption")
    integral = pl.col("amount").str.contains(r"^-?[0-9]+$")
    amount = (
        pl.when(integral & (pl.col("occurred_us") % 3 == 0))
        .then(pl.col("amount"))
        .otherwise(json_string(pl.col("amount")))
    )
    reason = (
        pl.when(code == codes.INVALID_FIELD_TYPE)
        .then(pl.lit("42"))
        .otherwise(json_string(pl.col("reason")))
    )
    parts = [
        message('"tenant_id":{}', json_string(pl.col("tenant_id"))),
        message('"environment":{}', json_string(pl.col("environment"))),
        message('"delta_id":{}', json_string(pl.col("delta_id"))),
        message('"customer_id":{}', json_string(pl.col("customer_id"))),
        message('"amount":{}', amount),
        message('"reason":{}', reason),
        message('"reference_id":{}', json_string(pl.col("reference_id"))),
        message('"status":{}', json_string(pl.col("status"))),
        message('"occurred_at":{}', json_string(pl.col("occurred_at"))),
        message('"metadata":{}', pl.col("metadata")),
    ]
    line = pl.concat_str(
        pl.lit("{"), pl.concat_str(parts, separator=",", ignore_nulls=True), pl.lit("}")
    )
    line = (
        pl.when(code == codes.INVALID_JSON)
        .then(pl.lit('{"tenant_id": "acme", "amount": '))
        .otherwise(line)
    )
    lines = rows.select(line.alias("line"))["line"]
    return ("\n".join(lines.to_list()) + "\n").encode("utf-8")


def _render_parquet(rows: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    rows.select(FIELDS).write_parquet(buffer, compression="zstd")
    return buffer.getvalue()


def unreadable_files(day: str) -> dict[str, bytes]:
    """One file for each whole-file quarantine code."""
    header = ",".join(FIELDS) + "\n"
    latin1 = (
        header + "acme,production,dlt_latin1,cust_00001,5,Gebühr,,verified,2026-01-01T00:00:00Z,\n"
    )
    valid_parquet = io.BytesIO()
    pl.DataFrame({"tenant_id": ["acme"]}).write_parquet(valid_parquet)
    return {
        f"{day}-legacy.csv": latin1.encode("latin-1"),  # NOT_UTF8
        f"{day}-export.parquet": valid_parquet.getvalue()[:-20],  # UNREADABLE_FILE (truncated)
        f"{day}-notes.txt": b"call the customer about the March invoice\n",  # UNSUPPORTED_FILE_TYPE
    }
