"""What a publication writes (SPEC section 6), as `OutputFile`s built from the warehouse.

Contents are built column-wise and per partition: a Parquet file per (table, tenant,
environment, period), and the per-customer exports and receipts of a partition from one
vectorised pass each (a million small files must not mean a million queries).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import polars as pl
import pyarrow.parquet as pq

from flows.receipts import RECEIPT_SPEC
from flows.warehouse import query_frame, staged
from transforms.amounts import canonical_amount
from transforms.csv_text import Column, csv_header, csv_line
from transforms.leaves import leaf_text
from transforms.paths import partition_path, path_segment
from transforms.timestamps import occurred_at_text

PARTITION = ["tenant_id", "environment", "period"]
CUSTOMER_PERIOD = ["tenant_id", "environment", "customer_id", "period"]
PARQUET_TABLES = {
    "deltas": "select_partition_deltas",
    "customer_periods": "select_partition_customer_periods",
    "checkpoints": "select_partition_checkpoints",
}


@dataclass(frozen=True)
class OutputFile:
    path: str  # below the output root
    data: bytes
    rows: int
    kind: str  # parquet | fixed


# --- Parquet: the BI feed ------------------------------------------------------------------


def parquet_files(
    con: duckdb.DuckDBPyConnection, table: str, partitions: pl.DataFrame, run_id: str
) -> Iterator[OutputFile]:
    """One file per (tenant, environment, period) of `table`, Hive-partitioned. The partition
    columns live in the path only (`tenant=`, `environment=`, `period=`)."""
    if partitions.is_empty():
        return
    with staged(con, staged_partitions=partitions):
        frame = query_frame(con, PARQUET_TABLES[table])
    frame = _utc(frame)
    for (tenant, environment, period), rows in frame.partition_by(
        PARTITION, as_dict=True, maintain_order=True
    ).items():
        buffer = io.BytesIO()
        pq.write_table(rows.drop(PARTITION).to_arrow(), buffer, compression="zstd")
        folder = partition_path(table, str(tenant), str(environment), str(period))
        yield OutputFile(
            f"{folder}/part-{run_id}.parquet", buffer.getvalue(), rows.height, "parquet"
        )


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as UTC instants (timestamp[us, UTC]) in what outsiders read."""
    return frame.with_columns(
        pl.col(name).dt.replace_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    )


# --- per-customer activity exports ---------------------------------------------------------

ACTIVITY_COLUMNS = [
    Column("delta_id", pl.col("delta_id"), text=True),
    Column("occurred_at", occurred_at_text(pl.col("occurred_at"))),
    Column("amount", canonical_amount(pl.col("amount"))),
    Column("status", pl.col("status"), text=True),
    Column("reason", pl.col("reason"), text=True),
    Column("reference_id", pl.col("reference_id"), text=True),
    Column("metadata", pl.col("metadata"), text=True),
    Column("leaf_index", pl.col("leaf_index").cast(pl.String)),
]


def activity_csv_lines(deltas: pl.LazyFrame) -> pl.LazyFrame:
    """CUSTOMER_PERIOD and one `line` per delta, in file order."""
    return deltas.select(*CUSTOMER_PERIOD, line=csv_line(ACTIVITY_COLUMNS))


def activity_files(
    con: duckdb.DuckDBPyConnection, customer_periods: pl.DataFrame
) -> Iterator[OutputFile]:
    """`exports/<t>/<e>/customers/<customer>/<period>.csv` of the given customer-periods."""
    if customer_periods.is_empty():
        return
    with staged(con, staged_customer_periods=customer_periods):
        deltas = _utc(query_frame(con, "select_activity"))
    files = (
        activity_csv_lines(deltas.lazy())
        .group_by(CUSTOMER_PERIOD, maintain_order=True)
        .agg(body=pl.col("line").str.join("\r\n"), rows=pl.len())
        .collect()
    )
    header = csv_header(ACTIVITY_COLUMNS)
    for tenant, environment, customer, period, body, rows in files.iter_rows():
        path = "/".join(
            [
                "exports",
                path_segment(tenant),
                path_segment(environment),
                "customers",
                path_segment(customer),
                f"{path_segment(period)}.csv",
            ]
        )
        yield OutputFile(path, (header + body + "\r\n").encode(), rows, "fixed")


# --- batch checkpoint exports --------------------------------------------------------------

BATCH_COLUMNS = [
    Column("spec", pl.lit("tallyproof/checkpoint/v1")),
    Column("tenant_id", pl.col("tenant_id"), text=True),
    Column("environment", pl.col("environment"), text=True),
    Column("customer_id", pl.col("customer_id"), text=True),
    Column("period", pl.col("period")),
    Column("tree_size", pl.col("tree_size").cast(pl.String)),
    Column("root", pl.col("root")),
    Column("opening_balance", canonical_amount(pl.col("opening_balance"))),
    Column("credits", canonical_amount(pl.col("credits"))),
    Column("debits", canonical_amount(pl.col("debits"))),
    Column("closing_balance", canonical_amount(pl.col("closing_balance"))),
    Column("previous", pl.col("previous")),
    Column("supersedes", pl.col("supersedes")),
    Column("version", pl.col("version").cast(pl.String)),
    Column("checkpoint_id", pl.col("checkpoint_id")),
    Column("fingerprint", pl.col("fingerprint")),
    Column("created_at", occurred_at_text(pl.col("created_at"))),
]


def batch_checkpoint_files(
    con: duckdb.DuckDBPyConnection, partitions: pl.DataFrame
) -> Iterator[OutputFile]:
    """`exports/<t>/<e>/batch-checkpoints/<period>.json` and `.csv`: the latest checkpoint of
    every customer of each given partition."""
    if partitions.is_empty():
        return
    with staged(con, staged_partitions=partitions):
        latest = _utc(query_frame(con, "select_latest_of_partitions"))
    header = csv_header(BATCH_COLUMNS)
    for (tenant, environment, period), rows in latest.partition_by(
        PARTITION, as_dict=True, maintain_order=True
    ).items():
        folder = "/".join(
            [
                "exports",
                path_segment(str(tenant)),
                path_segment(str(environment)),
                "batch-checkpoints",
            ]
        )
        document = {
            "tenantId": tenant,
            "environment": environment,
            "period": period,
            "checkpoints": [
                {
                    "checkpointId": r["checkpoint_id"],
                    "fingerprint": r["fingerprint"],
                    "body": json.loads(r["body"]),
                    "signature": r["signature"],
                    "createdAt": r["created_at"].strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                }
                for r in rows.to_dicts()
            ],
        }
        text = json.dumps(document, ensure_ascii=False, indent=1) + "\n"
        yield OutputFile(
            f"{folder}/{path_segment(str(period))}.json", text.encode(), rows.height, "fixed"
        )
        lines = rows.select(line=csv_line(BATCH_COLUMNS))["line"].to_list()
        body = header + "".join(line + "\r\n" for line in lines)
        yield OutputFile(
            f"{folder}/{path_segment(str(period))}.csv", body.encode(), rows.height, "fixed"
        )


# --- receipts ------------------------------------------------------------------------------


def receipt_files(
    con: duckdb.DuckDBPyConnection, customer_periods: pl.DataFrame
) -> Iterator[OutputFile]:
    """`receipts/<t>/<e>/<customer>/<period>.json` for the given customer-periods.

    Assembled as text: the body is stored as JCS text and every leaf comes from `leaf_text`,
    so each receipt is the JCS form of the document `flows.receipts.build_receipt` returns.
    """
    if customer_periods.is_empty():
        return
    with staged(con, staged_customer_periods=customer_periods):
        latest = query_frame(con, "select_latest_of_customer_periods")
    if latest.is_empty():
        return
    with staged(con, staged_trees=latest.select(CUSTOMER_PERIOD)):
        leaves = query_frame(con, "select_tree_leaves")
    leaves = leaves.with_columns(pl.col("occurred_at_utc").dt.replace_time_zone("UTC"))
    joined = (
        leaf_text(leaves.lazy())
        .join(latest.lazy().select(*CUSTOMER_PERIOD, "tree_size"), on=CUSTOMER_PERIOD)
        .filter(pl.col("leaf_index") < pl.col("tree_size"))
        .group_by(CUSTOMER_PERIOD)
        .agg(leaves=pl.col("leaf").sort_by("leaf_index").str.join(","))
    )
    # Keys in JCS order; body, leaves and ids need no escaping (JCS text, hex, base64url).
    receipt = pl.concat_str(
        pl.lit('{"checkpoint":{"body":'),
        pl.col("body"),
        pl.lit(',"checkpointId":"'),
        pl.col("checkpoint_id"),
        pl.lit('","fingerprint":"'),
        pl.col("fingerprint"),
        pl.lit('","signature":"'),
        pl.col("signature"),
        pl.lit('"},"leaves":['),
        pl.col("leaves").fill_null(""),
        pl.lit('],"receiptId":"rcpt_'),
        pl.col("fingerprint").str.slice(0, 24),
        pl.lit(f'","spec":"{RECEIPT_SPEC}","totals":{{"closingBalance":"'),
        canonical_amount(pl.col("closing_balance")),
        pl.lit('","credits":"'),
        canonical_amount(pl.col("credits")),
        pl.lit('","debits":"'),
        canonical_amount(pl.col("debits")),
        pl.lit('","openingBalance":"'),
        canonical_amount(pl.col("opening_balance")),
        pl.lit('","treeSize":'),
        pl.col("tree_size").cast(pl.String),
        pl.lit("}}"),
    )
    documents = (
        latest.lazy()
        .join(joined, on=CUSTOMER_PERIOD, how="left")
        .select(*CUSTOMER_PERIOD, "tree_size", text=receipt)
        .collect()
    )
    for tenant, environment, customer, period, size, text in documents.iter_rows():
        path = "/".join(
            [
                "receipts",
                path_segment(tenant),
                path_segment(environment),
                path_segment(customer),
                f"{path_segment(period)}.json",
            ]
        )
        yield OutputFile(path, text.encode(), size, "fixed")


# --- quarantine ----------------------------------------------------------------------------

QUARANTINE_COLUMNS = [
    Column("run_id", pl.col("run_id"), text=True),
    Column("file", pl.col("file"), text=True),
    Column("file_sha256", pl.col("file_sha256")),
    Column("line", pl.col("line").cast(pl.String)),
    Column("code", pl.col("code"), text=True),
    Column("field", pl.col("field"), text=True),
    Column("message", pl.col("message"), text=True),
    Column("raw", pl.col("raw"), text=True),
    Column("tenant_id", pl.col("tenant_id"), text=True),
    Column("environment", pl.col("environment"), text=True),
    Column("delta_id", pl.col("delta_id"), text=True),
    Column("quarantined_at", occurred_at_text(pl.col("quarantined_at"))),
]


def quarantine_file(con: duckdb.DuckDBPyConnection, run_id: str) -> OutputFile:
    """`quarantine/<runId>.csv`: everything the run refused (a header only when nothing)."""
    rows = _utc(query_frame(con, "select_run_quarantine", {"run_id": run_id}))
    lines = rows.select(line=csv_line(QUARANTINE_COLUMNS))["line"].to_list()
    body = csv_header(QUARANTINE_COLUMNS) + "".join(line + "\r\n" for line in lines)
    return OutputFile(f"quarantine/{path_segment(run_id)}.csv", body.encode(), rows.height, "fixed")
