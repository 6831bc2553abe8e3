"""Receipts (SPEC section 5): a customer's latest checkpoint of a period with every leaf, so the
customer can recompute the root alone."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import polars as pl

from flows.errors import UnprocessableError
from flows.fingerprints import Customer
from flows.warehouse import query_frame
from transforms.leaves import leaf_object

RECEIPT_SPEC = "tallyproof/receipt/v1"


def latest_checkpoint(
    con: duckdb.DuckDBPyConnection, customer: Customer, period: str
) -> dict[str, Any]:
    versions = query_frame(con, "select_customer_checkpoints", customer.params(period))
    latest = versions.filter(pl.col("is_latest"))
    if latest.is_empty():
        # The customer exists (the callers check): a 404 would say it does not (SPEC section 7).
        raise UnprocessableError(
            f"customer {customer.customer_id!r} has no checkpoint of {period}: a period is "
            "checkpointed once it is closed and has accepted deltas (the API's POST "
            ".../checkpoint makes one on request)",
            details={"period": period},
        )
    return latest.row(0, named=True)


def checkpoint_document(row: dict[str, Any]) -> dict[str, Any]:
    """The signed checkpoint as outsiders see it: body, fingerprint, id, signature."""
    return {
        "body": json.loads(row["body"]),
        "fingerprint": row["fingerprint"],
        "checkpointId": row["checkpoint_id"],
        "signature": row["signature"],
    }


def build_receipt(
    con: duckdb.DuckDBPyConnection, customer: Customer, period: str
) -> dict[str, Any]:
    latest = latest_checkpoint(con, customer, period)
    body = json.loads(latest["body"])
    leaves = query_frame(con, "select_customer_leaves", customer.params(period))
    leaves = leaves.filter(pl.col("leaf_index") < body["treeSize"])
    return {
        "spec": RECEIPT_SPEC,
        "receiptId": f"rcpt_{latest['fingerprint'][:24]}",
        "checkpoint": checkpoint_document(latest),
        "totals": {
            "openingBalance": body["openingBalance"],
            "credits": body["credits"],
            "debits": body["debits"],
            "closingBalance": body["closingBalance"],
            "treeSize": body["treeSize"],
        },
        "leaves": [leaf_object(row) for row in leaves.to_dicts()],
    }
