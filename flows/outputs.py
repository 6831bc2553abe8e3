"""What a publication writes (SPEC section 6): `OutputFile`s built from frames.

Publishing is split so it can scale out: the flow, which alone may open the warehouse, loads the
rows of one *shard* (some customers of one tenant, environment and period) into a `ShardInputs`
of plain frames; `build_shard` then makes that shard's files from those frames alone, on
whatever worker the task runner picks. Contents are built column-wise: a million small files
must not mean a million queries or a million `write_csv` calls.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb
import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` expression namespace)
import pyarrow.parquet as pq

from flows.fingerprints import tree_leaves
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
# The row order of each table's partition: the order of the feed, of activity exports and of
# receipts. Sorted by Polars after the query: a month's deltas of one tenant and environment
# (180,000 rows) came out of DuckDB in 0.25-0.29 s sorted and in 0.15-0.2 s sorted by Polars.
PARTITION_ORDER = {
    "deltas": ["customer_id", "occurred_at", "delta_id"],
    "customer_periods": ["customer_id"],
    "checkpoints": ["customer_id", "version"],
}


@dataclass(frozen=True)
class OutputFile:
    path: str  # below the output root
    data: bytes
    rows: int
    kind: str  # parquet | fixed


@dataclass(frozen=True)
class ShardWork:
    """Which outputs of one shard a publication rewrites."""

    tenant_id: str
    environment: str
    period: str
    shard: int  # the customers whose `shard_of` is this
    shards: int
    tables: frozenset[str]  # Parquet tables whose partition is rewritten
    activity: frozenset[str]  # customers whose activity export is rewritten (and so `deltas`)
    receipts: frozenset[str]  # customers whose receipt is rewritten

    @property
    def label(self) -> str:
        return f"{self.tenant_id}/{self.environment}/{self.period}#{self.shard}"

    @property
    def batch_exports(self) -> bool:
        """Whether this shard builds its partition's batch checkpoint exports: when it holds
        the whole partition and rewrites its checkpoints, the latest of which the exports list.
        A partition split into shards has its exports built by the flow instead."""
        return self.shards == 1 and "checkpoints" in self.tables


@dataclass
class ShardInputs:
    """Everything a shard's files are made from: plain frames, picklable to any worker."""

    work: ShardWork
    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    activity: pl.DataFrame | None = None
    receipts: pl.DataFrame | None = None  # latest checkpoints
    leaves: pl.DataFrame | None = None  # their leaves


def shard_of(customer: pl.Expr, shards: int) -> pl.Expr:
    """A customer's shard, the same in every run, process and machine: the first 32 bits of
    SHA-256 of its id, modulo the number of shards."""
    first_bits = customer.chash.sha2_256().str.slice(0, 8).str.to_integer(base=16)
    return (first_bits % shards).cast(pl.Int64)


def _in_shard(frame: pl.DataFrame, work: ShardWork) -> pl.DataFrame:
    if work.shards == 1:
        return frame
    return frame.filter(shard_of(pl.col("customer_id"), work.shards) == work.shard)


def load_shard(con: duckdb.DuckDBPyConnection, work: ShardWork) -> ShardInputs:
    """Read a shard's rows out of the warehouse (the only part that needs it)."""
    # The partition as constants, not a staged frame to join: DuckDB then skips the row groups
    # of other partitions by their statistics (the day's eight deltas partitions: 1.39-1.44 ->
    # 1.03-1.24 s; the checkpoints partitions, newest in the table, read the same).
    partition = {
        "tenant_id": work.tenant_id,
        "environment": work.environment,
        "period": work.period,
    }
    inputs = ShardInputs(work)
    for table in sorted(work.tables):
        rows = _in_shard(_utc(query_frame(con, PARQUET_TABLES[table], partition)), work)
        inputs.tables[table] = rows.sort(PARTITION_ORDER[table])
    if work.receipts:
        # A customer-period with a new checkpoint version has its checkpoints partition
        # rewritten (`plan_shards`): its latest version is among the rows loaded for it.
        receipts = pl.Series(sorted(work.receipts), dtype=pl.String)
        inputs.receipts = inputs.tables["checkpoints"].filter(
            pl.col("is_latest") & pl.col("customer_id").is_in(receipts.implode())
        )
        inputs.leaves = _receipt_leaves(con, inputs, receipts)
    if "deltas" in inputs.tables:
        inputs.tables["deltas"] = inputs.tables["deltas"].drop("salt")  # the feed has none
    if work.activity:
        # Likewise a customer-period with new events has its deltas partition rewritten, so
        # its activity is a part of rows already loaded, in the same order: a second scan of
        # the deltas table cost a nightly run more than the first.
        inputs.activity = inputs.tables["deltas"].filter(
            pl.col("customer_id").is_in(pl.Series(sorted(work.activity), dtype=pl.String).implode())
        )
    return inputs


def _receipt_leaves(
    con: duckdb.DuckDBPyConnection, inputs: ShardInputs, customers: pl.Series
) -> pl.DataFrame:
    """The verified deltas of the receipts' trees, as `select_tree_leaves` gives them."""
    if "deltas" in inputs.tables:
        # Taken from the partition's deltas when they are loaded (a day's new events): a second
        # query for them was a tenth of a nightly run's publish.
        return (
            inputs.tables["deltas"]
            .filter(
                (pl.col("status") == "verified") & pl.col("customer_id").is_in(customers.implode())
            )
            .rename({"occurred_at": "occurred_at_utc"})
        )
    # A partition can have new versions and no new deltas: an earlier month moved its opening
    # balance or its chain.
    return tree_leaves(con, inputs.receipts.select(CUSTOMER_PERIOD))


def build_shard(inputs: ShardInputs, publication_id: str) -> list[OutputFile]:
    """Every file of one shard, from its inputs alone."""
    work = inputs.work
    files = [
        parquet_file(table, work, rows, publication_id)
        for table, rows in sorted(inputs.tables.items())
    ]
    if inputs.activity is not None:
        files += activity_files(inputs.activity)
    if inputs.receipts is not None and inputs.leaves is not None:
        files += receipt_files(inputs.receipts, inputs.leaves)
    if work.batch_exports:
        # The partition's checkpoints are loaded for the feed already: a second query for
        # their latest versions, on the flow's thread after every shard, cost a nightly run
        # half a second.
        files += batch_checkpoint_files(inputs.tables["checkpoints"].filter("is_latest"))
    return files


def _utc(frame: pl.DataFrame) -> pl.DataFrame:
    """Timestamps as UTC instants (timestamp[us, UTC]) in what outsiders read."""
    return frame.with_columns(
        pl.col(name).dt.replace_time_zone("UTC")
        for name, dtype in frame.schema.items()
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is None
    )


# --- Parquet: the BI feed ------------------------------------------------------------------


def parquet_file(
    table: str, work: ShardWork, rows: pl.DataFrame, publication_id: str
) -> OutputFile:
    """One shard's part of a Hive partition. The partition columns live in the path only
    (`tenant=`, `environment=`, `period=`)."""
    buffer = io.BytesIO()
    pq.write_table(rows.drop(PARTITION).to_arrow(), buffer, compression="zstd")
    folder = partition_path(table, work.tenant_id, work.environment, work.period)
    name = f"part-{publication_id}-{work.shard:04d}.parquet"
    return OutputFile(f"{folder}/{name}", buffer.getvalue(), rows.height, "parquet")


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


def activity_path(tenant: str, environment: str, customer: str, period: str) -> str:
    return "/".join(
        [
            "exports",
            path_segment(tenant),
            path_segment(environment),
            "customers",
            path_segment(customer),
            f"{path_segment(period)}.csv",
        ]
    )


def activity_files(deltas: pl.DataFrame) -> list[OutputFile]:
    """`exports/<t>/<e>/customers/<customer>/<period>.csv` of every customer-period given."""
    files = (
        deltas.lazy()
        .select(*CUSTOMER_PERIOD, line=csv_line(ACTIVITY_COLUMNS))
        .group_by(CUSTOMER_PERIOD, maintain_order=True)
        .agg(body=pl.col("line").str.join("\r\n"), rows=pl.len())
        .collect()
    )
    header = csv_header(ACTIVITY_COLUMNS)
    text = pl.concat_str(pl.lit(header), "body", pl.lit("\r\n"))
    return _customer_period_files(files.with_columns(text=text), activity_path, "rows")


def _customer_period_files(
    documents: pl.DataFrame, path: Callable[[str, str, str, str], str], rows: str
) -> list[OutputFile]:
    """One file per row of `documents` (the customer-period, `rows` and its `text`). The bytes
    come from Polars as bytes: made into Python text and then encoded, and each named apart,
    they were a third of a publication's time under the interpreter lock."""
    return [
        OutputFile(path(t, e, c, p), data, count, "fixed")
        for (t, e, c, p, count), data in zip(
            documents.select(*CUSTOMER_PERIOD, rows).iter_rows(),
            documents["text"].cast(pl.Binary),
            strict=True,
        )
    ]


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


def load_batch_checkpoints(
    con: duckdb.DuckDBPyConnection, partitions: pl.DataFrame
) -> pl.DataFrame:
    """The latest checkpoint of every customer of the given partitions."""
    with staged(con, staged_partitions=partitions):
        return _utc(query_frame(con, "select_latest_of_partitions"))


def batch_checkpoint_paths(tenant: str, environment: str, period: str) -> list[str]:
    """The CSV and JSON batch checkpoint exports of one partition."""
    stem = "/".join(
        [
            "exports",
            path_segment(tenant),
            path_segment(environment),
            "batch-checkpoints",
            path_segment(period),
        ]
    )
    return [f"{stem}.csv", f"{stem}.json"]


def batch_checkpoint_files(latest: pl.DataFrame) -> list[OutputFile]:
    """`exports/<t>/<e>/batch-checkpoints/<period>.json` and `.csv` of each partition in
    `latest` (the latest checkpoint of each of its customers)."""
    files = []
    header = csv_header(BATCH_COLUMNS)
    for (tenant, environment, period), rows in (
        latest.sort([*PARTITION, "customer_id"])
        .partition_by(PARTITION, as_dict=True, maintain_order=True)
        .items()
    ):
        csv_path, json_path = batch_checkpoint_paths(str(tenant), str(environment), str(period))
        # Assembled as text, one checkpoint per line: `json.dumps` of parsed bodies was most
        # of a nightly run's publishing time. The body is stored as JCS text and the ids are
        # hex or base64url, so only the partition's own names need escaping.
        entries = rows.select(
            pl.concat_str(
                pl.lit('{"checkpointId":"'),
                pl.col("checkpoint_id"),
                pl.lit('","fingerprint":"'),
                pl.col("fingerprint"),
                pl.lit('","body":'),
                pl.col("body"),
                pl.lit(',"signature":"'),
                pl.col("signature"),
                pl.lit('","createdAt":"'),
                occurred_at_text(pl.col("created_at")),
                pl.lit('"}'),
            ).str.join(",\n")
        ).item()
        partition = {"tenantId": tenant, "environment": environment, "period": period}
        names = json.dumps(partition, ensure_ascii=False, separators=(",", ":"))[1:-1]
        text = f'{{{names},"checkpoints":[\n{entries}\n]}}\n'
        files.append(OutputFile(json_path, text.encode(), rows.height, "fixed"))
        lines = rows.select(line=csv_line(BATCH_COLUMNS))["line"].to_list()
        body = header + "".join(line + "\r\n" for line in lines)
        files.append(OutputFile(csv_path, body.encode(), rows.height, "fixed"))
    return files


# --- receipts ------------------------------------------------------------------------------


def output_root_of(document: str) -> str | None:
    """The output root a published document sits in, from the folders the paths here (and
    `flows.packages.package_path`) begin with: `s3://b/out/receipts/...` is in `s3://b/out`.
    None for a file outside one."""
    for folder in ("receipts", "packages", "exports"):
        root, found, _ = document.rpartition(f"/{folder}/")
        if found and root:
            return root
    return None


def receipt_path(tenant: str, environment: str, customer: str, period: str) -> str:
    return "/".join(
        [
            "receipts",
            path_segment(tenant),
            path_segment(environment),
            path_segment(customer),
            f"{path_segment(period)}.json",
        ]
    )


def receipt_files(latest: pl.DataFrame, leaves: pl.DataFrame) -> list[OutputFile]:
    """`receipts/<t>/<e>/<customer>/<period>.json` for each latest checkpoint given.

    Assembled as text: the body is stored as JCS text and every leaf comes from `leaf_text`,
    so each receipt is the JCS form of the document `flows.receipts.build_receipt` returns.
    """
    if latest.is_empty():
        return []
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
    return _customer_period_files(documents, receipt_path, "tree_size")


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
