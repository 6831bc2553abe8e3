"""Checkpointing: new checkpoint versions for the (customer, period)s that need one.

Only customers with a stale period are recomputed (a missing checkpoint, a grown tree, moved
balances, or a `previous` that no longer names the latest checkpoint before it), and of those
only the trees that grew are hashed again: leaves only append, so a tree of the same size has
the same root. Everything else is read back from the latest versions.

A nightly stage looks only at the customers that can be stale (`select_due_customers`): those
whose summaries were rewritten since the last complete stage (marked in `checkpoint_due` in the
same transaction), and those with a period above the one that stage reached
(`checkpoint_coverage`). A day's run then costs in proportion to the customers it touched,
not to every customer's history.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import numpy as np
import polars as pl

from flows import clock
from flows.config import Settings
from flows.errors import InvalidRequestError
from flows.fingerprints import Customer, tree_leaves
from flows.locks import writer_lock
from flows.signing import SigningKey, SigningPool
from flows.warehouse import execute, query_frame, staged, transaction
from transforms.checkpoints import KEY, checkpoint_versions
from transforms.leaves import leaf_text
from transforms.period_roots import (
    consistency_proof_hashes,
    extended_trees,
    leaf_hash_rows,
    tree_roots,
    tree_runs,
    with_leaf_hashes,
)

log = logging.getLogger(__name__)


@dataclass
class CheckpointSummary:
    customers: int = 0
    candidates: int = 0
    trees_hashed: int = 0
    leaves_hashed: int = 0
    new_versions: int = 0
    first_versions: int = 0


PERIOD = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def is_period(value: str) -> bool:
    """Whether `value` is a period as SPEC section 1 writes it, YYYY-MM."""
    return PERIOD.fullmatch(value) is not None


def run_date(as_of: date | None) -> date:
    """A run's date: `as_of`, or today in UTC. A date after today is refused (SPEC section 4:
    a period in the future cannot be checkpointed, and a run dated next year would close the
    months before it)."""
    today = datetime.now(UTC).date()
    if as_of is not None and as_of > today:
        raise InvalidRequestError(
            "as-of",
            f"--as-of {as_of} is after today ({today}, UTC): it would close periods "
            "that have not ended",
        )
    return as_of or today


def last_period(as_of: date, include_open_period: bool) -> str:
    """The newest period a run may checkpoint: the last closed one, or the open one on request.

    A period is closed once `as_of` is past its last day, so the open period is as_of's month.
    """
    if include_open_period:
        return f"{as_of:%Y-%m}"
    year, month = (as_of.year, as_of.month - 1) if as_of.month > 1 else (as_of.year - 1, 12)
    return f"{year:04d}-{month:02d}"


# A pass holds the leaves of its customers' grown trees while hashing. Passes are cut by those
# leaves as well as by customers: activity is skewed, and 25,000 customers were 1 million leaves
# in one pass and 7.5 million (6 GB) in another. A pass goes over by at most its last
# customer's leaves. Only grown trees count: a day's 11,000 customers hold 7.5 million leaves
# of history but 600,000 of them grew, and cutting by history made four passes of one, each
# scanning the deltas for its trees' leaves.
CUSTOMERS_PER_PASS = 25_000
LEAVES_PER_PASS = 2_000_000
CUSTOMER = ["tenant_id", "environment", "customer_id"]


def checkpoint_customers(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    max_period: str,
    key: SigningKey,
    customers: pl.DataFrame | None = None,
    customers_per_pass: int | None = None,
    recheck: bool = False,
    open_period: str | None = None,
) -> CheckpointSummary:
    """Make the checkpoint versions that are due up to `max_period`, and, from `open_period`
    (the run's open month) on, those of periods that have a checkpoint already, up to the first
    that has none: an open month checkpointed on request (and a later one a run with a later
    date checkpointed) is kept current, so that its `previous` and `openingBalance` follow a
    change before it. A month after an open month that has data but no checkpoint keeps its
    versions until a run reaches it: re-linked across that gap, its chain did not verify.

    `customers` (tenant_id, environment, customer_id) limits the pass; by default every customer
    with a stale period is taken. Customers are taken in passes of at most `customers_per_pass`
    (default `CUSTOMERS_PER_PASS`) and, when `customers` has a `leaves` column, about
    `LEAVES_PER_PASS` leaves; each pass is its own transaction (a customer's chain never spans
    passes). Idempotent: a second call makes nothing.

    The nightly stage (no `customers`) looks only at the customers that can be stale, or with
    `recheck` at every one (after the warehouse was edited by hand, say), and then records how
    far it reached. Customers given (the API, backfills) need no mark for the next one: a
    version is new only for a stale period, so the customer was due already, or the period and
    the later ones it re-links lie above the last complete stage's reach, where the next stage
    looks anyway.
    """
    nightly = customers is None
    if customers is None:
        due = due_customers(con, max_period, recheck)
        customers = stale_customers(con, max_period, due, open_period)
    summary = CheckpointSummary(customers=customers.height)
    with SigningPool() as signer:
        # One pass is signed by the pool's processes while the next reads and hashes its trees,
        # and is stored once that one has gone to the pool in turn: the main process used to
        # wait idle for a third of the stage. Passes have no customer in common, so a pass
        # reads nothing that the one before it still has to store.
        signing: SignedPass | None = None
        for chosen in passes(customers, customers_per_pass or CUSTOMERS_PER_PASS, LEAVES_PER_PASS):
            ready = _checkpoint_pass(
                con, summary, chosen.select(CUSTOMER), (max_period, open_period), key, signer
            )
            if signing is not None:
                _store_pass(con, signing, run_id, key)
            signing = ready
        if signing is not None:
            _store_pass(con, signing, run_id, key)
    if nightly:
        with transaction(con):
            execute(con, "delete_checkpoint_due")
            execute(
                con,
                "insert_checkpoint_coverage",
                {"max_period": max_period, "run_id": run_id, "covered_at": clock.now_naive()},
            )
    if summary.new_versions:
        log.info(
            "checkpoints: %d new versions (%d first) for %d customers",
            summary.new_versions,
            summary.first_versions,
            summary.customers,
        )
    return summary


@dataclass(frozen=True)
class SignedPass:
    """A pass's new versions and consistency proofs, and a function that waits for their
    signatures."""

    new: pl.DataFrame
    proofs: pl.DataFrame
    signatures: Callable[[], list[str]]


def _checkpoint_pass(
    con: duckdb.DuckDBPyConnection,
    summary: CheckpointSummary,
    customers: pl.DataFrame,
    reach: tuple[str, str | None],
    key: SigningKey,
    signer: SigningPool,
) -> SignedPass | None:
    """The new versions of `customers` up to `reach` (max_period, open_period), sent to be
    signed; None when there are none."""
    with staged(con, staged_customers=customers):
        candidates = query_frame(con, "select_checkpoint_candidates", _reach(*reach))
    summary.candidates += candidates.height

    grown = candidates.filter(
        (pl.col("tree_size") > 0) & pl.col("tree_size").ne_missing(pl.col("latest_tree_size"))
    )
    # A tree that grew from a version whose compact range is kept hashes only its new leaves;
    # the others (new trees, versions from before compact ranges were kept) are built whole.
    from_range = grown.filter(
        pl.col("latest_compact_range").is_not_null()
        & (pl.col("latest_tree_size") > 0)
        & (pl.col("latest_tree_size") < pl.col("tree_size"))
    )
    # Each tree is the leaves its summary counts (`tree_size`): a run that failed between its
    # ingest and its summaries leaves later leaves in the deltas, which the next summaries
    # count and the next version appends.
    whole = grown.join(from_range, on=KEY, how="anti").select(*KEY, to_index="tree_size")
    leaves, hashes = tree_leaf_hash_rows(con, whole)
    roots = tree_roots(leaves, hashes, compact_ranges=True)
    added = tree_leaf_hashes(
        con, from_range.select(*KEY, from_index="latest_tree_size", to_index="tree_size")
    )
    extended = extended_trees(
        from_range.select(*KEY, "latest_tree_size", "tree_size", "latest_compact_range"), added
    )
    summary.trees_hashed += roots.height + extended.height
    summary.leaves_hashed += len(hashes) + added.height

    built = pl.concat(
        [
            roots.select(*KEY, "root", "compact_range"),
            extended.select(*KEY, "root", "compact_range"),
        ]
    )
    decided = checkpoint_versions(
        candidates.join(
            built.select(*KEY, root=pl.col("root").bin.encode("hex")), on=KEY, how="left"
        )
    )
    new = decided.filter(pl.col("is_new"))
    summary.new_versions += new.height
    summary.first_versions += new.filter(pl.col("version") == 1).height
    if new.is_empty():
        return None
    # A version whose tree did not grow keeps its tree's compact range.
    new = new.join(built.select(*KEY, "compact_range"), on=KEY, how="left").with_columns(
        compact_range=pl.coalesce("compact_range", "latest_compact_range")
    )
    proofs = consistency_proofs(new, leaves, hashes, extended)
    signatures = signer.submit(key, new["checkpoint_id"].to_list(), new["fingerprint"].to_list())
    return SignedPass(new, proofs, signatures)


def _store_pass(
    con: duckdb.DuckDBPyConnection, signed: SignedPass, run_id: str, key: SigningKey
) -> None:
    """Insert a pass's versions with their signatures, in one transaction."""
    # Signatures are in the order of `new`: they are attached before any join. Rows go in by
    # partition (period first), so that publishing's reads of one partition's checkpoints
    # skip the other periods' row groups by their statistics (the day's eight partitions:
    # 0.67 -> 0.37 s from disk; all 96 of a first run: 2.7 -> 1.8 s).
    rows = (
        signed.new.with_columns(
            signature=pl.Series(signed.signatures(), dtype=pl.String),
            kid=pl.lit(key.kid),
            created_at=pl.lit(clock.now_naive()),
            run_id=pl.lit(run_id),
        )
        .join(signed.proofs, on=KEY, how="left")
        .sort("period", "tenant_id", "environment", "customer_id")
    )
    with transaction(con), staged(con, staged_checkpoints=rows):
        execute(con, "insert_checkpoints")
        execute(con, "insert_compact_ranges")


def passes(customers: pl.DataFrame, max_customers: int, max_leaves: int) -> Iterator[pl.DataFrame]:
    """`customers` cut into consecutive passes of at most `max_customers` rows and, by their
    `leaves` column if there is one, at most `max_leaves` leaves plus one customer's."""
    position = pl.int_range(pl.len()) // max_customers
    starts = position != position.shift(1)
    if "leaves" in customers.columns:
        window = (pl.col("leaves").cum_sum() - pl.col("leaves")) // max_leaves
        starts = starts | (window != window.shift(1))
    numbered = customers.with_columns(_pass=starts.fill_null(True).cum_sum())
    for _, chosen in numbered.group_by("_pass", maintain_order=True):
        yield chosen.drop("_pass")


def due_customers(
    con: duckdb.DuckDBPyConnection, max_period: str, everyone: bool = False
) -> pl.DataFrame:
    """The customers that can be stale up to `max_period`: all of them with `everyone`, or
    until a nightly stage has completed."""
    return query_frame(
        con, "select_due_customers", {"max_period": max_period, "everyone": everyone}
    )


def stale_customers(
    con: duckdb.DuckDBPyConnection,
    max_period: str,
    customers: pl.DataFrame,
    open_period: str | None = None,
) -> pl.DataFrame:
    """Of `customers` (tenant_id, environment, customer_id), those with a period up to
    `max_period` (or a checkpointed one from `open_period` on, without a gap) that needs a
    version, and the leaves of their grown trees (`leaves`)."""
    with staged(con, staged_customers=customers.select(CUSTOMER)):
        return query_frame(con, "select_stale_customers", _reach(max_period, open_period))


def _reach(max_period: str, open_period: str | None) -> dict[str, str]:
    # No open period: the bound is above every period (YYYY-MM sorts below "~").
    return {"max_period": max_period, "open_period": open_period or "~"}


def mark_checkpoints_due(con: duckdb.DuckDBPyConnection, customers: pl.DataFrame) -> None:
    """Have the next nightly stage look at `customers` (tenant_id, environment, customer_id)."""
    with staged(con, staged_due=customers.select(CUSTOMER)):
        execute(con, "insert_checkpoint_due")


def tree_leaf_hashes(con: duckdb.DuckDBPyConnection, trees: pl.DataFrame) -> pl.DataFrame:
    """KEY, `leaf_index`, `leaf_hash` of every leaf of `trees` (from its `from_index` on and
    before its `to_index`, where `trees` has them), sorted by tree and index."""
    return with_leaf_hashes(*tree_leaf_hash_rows(con, trees))


def tree_leaf_hash_rows(
    con: duckdb.DuckDBPyConnection, trees: pl.DataFrame
) -> tuple[pl.DataFrame, np.ndarray]:
    """`tree_leaf_hashes` as KEY and `leaf_index` per leaf and its hashes as an (n, 32) array
    (`transforms.period_roots.leaf_hash_rows`)."""
    if trees.is_empty():
        schema = {**{c: pl.String for c in KEY}, "leaf_index": pl.Int64}
        return pl.DataFrame(schema=schema), np.empty((0, 32), np.uint8)
    return leaf_hash_rows(leaf_text(tree_leaves(con, trees).lazy()))


def consistency_proofs(
    new: pl.DataFrame,
    leaves: pl.DataFrame,
    hashes: np.ndarray,
    extended: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """KEY and `consistency_proof` (JSON list of hex) of every new version with a version
    before it: RFC 6962 PROOF(old size, new tree); an empty list when the tree did not grow or
    grew from empty (every tree extends the empty one, and RFC 6962 defines no proof for it).

    Trees grown from their compact range (`extended`, from `extended_trees`) bring their proofs
    along; the other grown trees' proofs are hashed from their leaf hashes, `hashes` ((n, 32))
    of the leaves whose KEY and `leaf_index` are `leaves`."""
    rows = []
    if extended is not None:
        rows = [
            (*key, _proof_text(proof))
            for *key, proof in extended.select(*KEY, "consistency_proof").iter_rows()
        ]
        new = new.join(extended, on=KEY, how="anti")
    superseding = new.filter(pl.col("latest_tree_size").is_not_null())
    same = superseding.filter(
        (pl.col("latest_tree_size") == pl.col("tree_size")) | (pl.col("latest_tree_size") == 0)
    )
    grew = superseding.filter(
        (pl.col("latest_tree_size") < pl.col("tree_size")) & (pl.col("latest_tree_size") > 0)
    )
    if superseding.height != same.height + grew.height:
        raise RuntimeError("a tree shrank between versions: leaves are append-only")
    given = len(rows)
    rows += [(*key, "[]") for key in same.select(KEY).iter_rows()]
    if grew.height:
        # Every tree's proof in one vectorised pass (tree by tree in Python, the day's 11,000
        # proofs took 0.43-0.44 s; now 0.30-0.37 s).
        runs = grew.select(*KEY, "latest_tree_size").join(tree_runs(leaves), on=KEY)
        trees = runs.select("latest_tree_size", "start", "tree_size").rows()
        proofs = consistency_proof_hashes(hashes, trees)
        for key, proof in zip(runs.select(KEY).iter_rows(), proofs, strict=True):
            rows.append((*key, _proof_text(proof)))
    if len(rows) - given != superseding.height:
        raise RuntimeError("a grown tree's leaves were not all given")
    schema = {**{c: pl.String for c in KEY}, "consistency_proof": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row")


def _proof_text(proof: list[bytes]) -> str:
    """A proof as stored: a JSON array of hex hashes."""
    return json.dumps([h.hex() for h in proof])


def ensure_checkpoint(
    settings: Settings, customer: Customer, period: str, *, today: date, wait_seconds: float
) -> tuple[dict[str, Any], bool]:
    """Create the customer's checkpoint of `period` if it is due, or return the latest one.

    The same pass as the nightly run (so the same fingerprint), for one customer, under the
    writer lock: concurrent requests for one scope make one version, not two. A period of the
    future cannot be checkpointed; the open one can. Returns (latest row, whether it is new).
    """
    from flows.errors import UnprocessableError
    from flows.pipeline import open_warehouse
    from flows.receipts import latest_checkpoint
    from flows.runs import finish_run, new_run_id, start_run
    from flows.signing import active_signing_key
    from flows.snapshots import take_snapshot
    from flows.summaries import refresh_customer_periods

    if period > f"{today:%Y-%m}":
        raise UnprocessableError(
            f"{period} is in the future and cannot be checkpointed", details={"period": period}
        )
    run_id = new_run_id()
    with writer_lock(
        settings.warehouse, purpose=f"api checkpoint {run_id}", wait_seconds=wait_seconds
    ):
        with open_warehouse(settings) as con:
            who_params = {k: v for k, v in customer.params().items() if k != "period"}
            periods = query_frame(con, "select_customer_delta_periods", who_params)
            if periods.is_empty():
                raise customer.not_found()
            if period not in set(periods["period"].to_list()):
                raise UnprocessableError(
                    f"{customer.customer_id!r} has no accepted deltas in {period}",
                    details={"period": period},
                )
            start_run(con, run_id, "api", today)  # marks dead runs crashed
            # A run that died between ingest and its summaries left deltas without them: they
            # are summarised first, as the next nightly run would, so that the snapshot taken
            # below never shows half a run (its deltas beside the summaries from before them).
            summarised = refresh_customer_periods(con, run_id)
            made = checkpoint_customers(
                con,
                run_id=run_id,
                max_period=period,
                key=active_signing_key(settings),
                customers=customer.frame(),
            )
            finish_run(
                con,
                run_id,
                "succeeded",
                {
                    "runId": run_id,
                    "kind": "api",
                    "summariesWritten": summarised,
                    "checkpointsNew": made.new_versions,
                },
            )
            latest = latest_checkpoint(con, customer, period)
            con.execute("CHECKPOINT").fetchall()
        created = latest["run_id"] == run_id
        if summarised or made.new_versions:
            take_snapshot(settings, run_id)
    return latest, created
