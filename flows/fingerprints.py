"""Fingerprint candidates (SPEC section 4): every checkpoint version of a customer, with a tamper
check against the deltas stored today and the consistency proof to the version after it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import polars as pl

from flows.errors import InvalidRequestError, NotFoundError
from flows.warehouse import fetch_one, query_frame, staged
from transforms import merkle
from transforms.leaves import leaf_text
from transforms.ledger import TREE
from transforms.period_roots import leaf_hashes
from transforms.validate import ID_PATTERN_128

FINGERPRINT_PREFIX = re.compile(r"[0-9a-f]{8,64}")
CUSTOMER_ID = re.compile(ID_PATTERN_128)  # as ingest validates it


@dataclass(frozen=True)
class Customer:
    tenant_id: str
    environment: str
    customer_id: str

    def params(self, period: str | None = None) -> dict[str, Any]:
        return {
            "tenant_id": self.tenant_id,
            "environment": self.environment,
            "customer_id": self.customer_id,
            "period": period,
        }

    def frame(self) -> pl.DataFrame:
        """The customer as a one-row frame of tenant_id, environment and customer_id."""
        return pl.DataFrame([asdict(self)])

    def not_found(self) -> NotFoundError:
        """The answer for a customer the tenant does not have in the environment: the same
        whether it exists in another tenant or environment or nowhere (SPEC section 7)."""
        return NotFoundError(
            f"tenant {self.tenant_id!r} has no customer {self.customer_id!r} in {self.environment}",
            details={"customerId": self.customer_id},
        )


def require_customer(con: duckdb.DuckDBPyConnection, customer: Customer) -> None:
    """Raise `customer.not_found()` unless the warehouse has an accepted delta of it."""
    if CUSTOMER_ID.fullmatch(customer.customer_id) and customer.customer_id not in (".", ".."):
        key = {k: v for k, v in customer.params().items() if k != "period"}
        (exists,) = fetch_one(con, "api_customer_exists", key)
        if exists:
            return
    raise customer.not_found()


def tree_leaves(con: duckdb.DuckDBPyConnection, trees: pl.DataFrame) -> pl.DataFrame:
    """The verified deltas of `trees` (tenant, environment, customer, period, and optionally
    `from_index` and `to_index`: only the leaves from the one and before the other), sorted by
    tree and leaf index, with `occurred_at_utc` as a UTC instant: what `leaf_text` reads."""
    start = pl.col("from_index") if "from_index" in trees.columns else pl.lit(0)
    end = pl.col("to_index") if "to_index" in trees.columns else pl.lit(None)
    numbered = (
        trees.select(*TREE, from_index=start.cast(pl.Int64), to_index=end.cast(pl.Int64))
        .unique(TREE)
        .sort(TREE)
        .with_row_index("tree_no")
    )
    with staged(con, staged_trees=numbered):
        leaves = query_frame(con, "select_tree_leaves")
    return (
        leaves.sort(_tree_order(leaves))
        .drop("tree_no")
        .with_columns(pl.col("occurred_at_utc").dt.replace_time_zone("UTC"))
    )


def _tree_order(leaves: pl.DataFrame) -> pl.Expr | list[str]:
    """Sort key of tree and leaf index: the trees are numbered in key order, so this is the
    order of (tenant, environment, customer, period, leaf index). One 64-bit key sorts twice as
    fast as the two columns (1.85 million leaves: 0.4 against 0.8-1.0 s)."""
    if leaves.is_empty() or leaves["leaf_index"].max() < 1 << 32:
        return pl.col("tree_no").cast(pl.Int64) * (1 << 32) + pl.col("leaf_index")
    return ["tree_no", "leaf_index"]


def customer_leaf_hashes(
    con: duckdb.DuckDBPyConnection, customer: Customer, period: str | None = None
) -> dict[str, list[bytes]]:
    """Leaf hashes per period, rebuilt from the deltas as stored now."""
    leaves = query_frame(con, "select_customer_leaves", customer.params(period))
    if leaves.is_empty():
        return {}
    leaves = leaves.with_columns(pl.col("occurred_at_utc").dt.replace_time_zone("UTC"))
    hashed = leaf_hashes(leaf_text(leaves.lazy()))
    return {
        str(p): frame["leaf_hash"].to_list()
        for (p,), frame in hashed.partition_by("period", as_dict=True, maintain_order=True).items()
    }


def fingerprint_candidates(
    con: duckdb.DuckDBPyConnection,
    customer: Customer,
    *,
    period: str | None = None,
    fingerprint: str | None = None,
) -> list[dict[str, Any]]:
    """Every version ever made, newest first, each with its tamper check; or only those whose
    fingerprint starts with `fingerprint` (at least 8 lowercase hex)."""
    if fingerprint is not None and not FINGERPRINT_PREFIX.fullmatch(fingerprint):
        raise InvalidRequestError("fingerprint", "fingerprint must be 8 to 64 lowercase hex digits")
    versions = query_frame(con, "select_customer_checkpoints", customer.params(period))
    hashes = customer_leaf_hashes(con, customer, period)
    proofs_to_next = {
        (r["period"], r["version"] - 1): r["consistency_proof"]
        for r in versions.select("period", "version", "consistency_proof").to_dicts()
    }
    candidates = []
    for row in versions.to_dicts():
        if fingerprint and not row["fingerprint"].startswith(fingerprint):
            continue
        leaves = hashes.get(row["period"], [])
        size = row["tree_size"]
        recomputed = merkle.root_from_hashes(leaves[:size]).hex() if size <= len(leaves) else None
        body_intact = hashlib.sha256(row["body"].encode()).hexdigest() == row["fingerprint"]
        root_matches = recomputed == row["root"]
        proof = proofs_to_next.get((row["period"], row["version"]))
        candidates.append(
            {
                "checkpointId": row["checkpoint_id"],
                "fingerprint": row["fingerprint"],
                "period": row["period"],
                "version": row["version"],
                "isLatest": row["is_latest"],
                "createdAt": row["created_at"].isoformat(timespec="microseconds") + "Z",
                "body": json.loads(row["body"]),
                "signature": row["signature"],
                "tamperCheck": {
                    "rootMatches": root_matches,
                    "recomputedRoot": recomputed,
                    "leavesStored": len(leaves),
                    "bodyMatchesFingerprint": body_intact,
                    "ok": root_matches and body_intact,
                },
                "consistencyProofToNext": json.loads(proof) if proof is not None else None,
            }
        )
    return candidates
