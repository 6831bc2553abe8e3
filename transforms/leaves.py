"""Leaf objects and their bytes (SPEC section 3), column-wise and one at a time.

`leaf_text` builds the JCS text of every leaf with Polars string expressions: the keys of a leaf
object are fixed ASCII names, so their sorted order is fixed too, and only the free-text values
(`reason`, `referenceId`) need JSON escaping; identifiers, decimals, timestamps, periods and
salts cannot hold a character JCS would escape, and `metadata` is stored as its JCS text
already. `leaf_object` is the same leaf as a dict, for receipts, packages and verifiers; the
tests check that `canonicalize(leaf_object(row))` equals `leaf_text` byte for byte.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import polars as pl

from transforms.amounts import canonical_amount, format_amount
from transforms.jcs import json_string
from transforms.ledger import TREE
from transforms.timestamps import occurred_at_text

LEAF_SPEC = "tallyproof/leaf/v1"
# What `leaf_text` reads from a verified delta.
LEAF_COLUMNS = [
    *TREE,
    "delta_id",
    "leaf_index",
    "amount",
    "reason",
    "reference_id",
    "metadata",
    "occurred_at_utc",
    "salt",
]


def leaf_text(deltas: pl.LazyFrame) -> pl.LazyFrame:
    """TREE, `leaf_index` and `leaf` (the JCS text) of every verified delta given."""
    optional_metadata = (
        pl.when(pl.col("metadata").is_not_null())
        .then(pl.concat_str(pl.lit(',"metadata":'), pl.col("metadata")))
        .otherwise(pl.lit(""))
    )
    optional_reference = (
        pl.when(pl.col("reference_id").is_not_null())
        .then(pl.concat_str(pl.lit(',"referenceId":'), json_string(pl.col("reference_id"))))
        .otherwise(pl.lit(""))
    )
    leaf = pl.concat_str(
        pl.lit('{"amount":"'),
        canonical_amount(pl.col("amount")),
        pl.lit('","customerId":"'),
        pl.col("customer_id"),
        pl.lit('","deltaId":"'),
        pl.col("delta_id"),
        pl.lit('","environment":"'),
        pl.col("environment"),
        pl.lit('","index":'),
        pl.col("leaf_index").cast(pl.String),
        optional_metadata,
        pl.lit(',"occurredAt":"'),
        occurred_at_text(pl.col("occurred_at_utc")),
        pl.lit('","period":"'),
        pl.col("period"),
        pl.lit('","reason":'),
        json_string(pl.col("reason")),
        optional_reference,
        pl.lit(',"salt":"'),
        pl.col("salt"),
        pl.lit(f'","spec":"{LEAF_SPEC}","tenantId":"'),
        pl.col("tenant_id"),
        pl.lit('"}'),
    )
    return deltas.select(*TREE, "leaf_index", leaf.alias("leaf"))


def leaf_object(delta: dict[str, Any]) -> dict[str, Any]:
    """The leaf object of one verified delta (a row with LEAF_COLUMNS)."""
    occurred: datetime = delta["occurred_at_utc"]
    if occurred.tzinfo is not None:
        occurred = occurred.astimezone(UTC)
    leaf: dict[str, Any] = {
        "amount": format_amount(Decimal(delta["amount"])),
        "customerId": delta["customer_id"],
        "deltaId": delta["delta_id"],
        "environment": delta["environment"],
        "index": int(delta["leaf_index"]),
        "occurredAt": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "period": delta["period"],
        "reason": delta["reason"],
        "salt": delta["salt"],
        "spec": LEAF_SPEC,
        "tenantId": delta["tenant_id"],
    }
    if delta.get("reference_id"):
        leaf["referenceId"] = delta["reference_id"]
    if delta.get("metadata"):
        leaf["metadata"] = json.loads(delta["metadata"])
    return leaf
