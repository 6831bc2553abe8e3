"""Checkpoint bodies, fingerprints, versions and chains (SPEC section 4), column-wise.

A body's keys are fixed ASCII names and its values are identifiers, decimals, hex and integers,
none of which JCS escapes, so the JCS text of every body is one string concatenation. The chain
makes periods depend on each other (a body names the fingerprint of the customer's checkpoint
before it), so `checkpoint_versions` walks the periods of all customers in step: at step k every
customer's k-th period is decided at once, knowing the fingerprints of step k-1.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` expression namespace)

from transforms.amounts import SUM_DTYPE, canonical_amount, format_amount
from transforms.jcs import canonicalize
from transforms.merkle import EMPTY_ROOT

CHECKPOINT_SPEC = "tallyproof/checkpoint/v1"
CUSTOMER = ["tenant_id", "environment", "customer_id"]
KEY = [*CUSTOMER, "period"]
EMPTY_ROOT_HEX = EMPTY_ROOT.hex()
_COMPARED = ["tree_size", "root", "opening_balance", "credits", "debits"]


def fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonicalize(body)).hexdigest()


def checkpoint_id(fingerprint_hex: str) -> str:
    return f"chk_{fingerprint_hex[:24]}"


def checkpoint_body(
    *,
    tenant_id: str,
    environment: str,
    customer_id: str,
    period: str,
    tree_size: int,
    root: str,
    opening_balance: Decimal,
    credits: Decimal,
    debits: Decimal,
    version: int,
    previous: str | None = None,
    supersedes: str | None = None,
) -> dict[str, Any]:
    """One body as a dict, the way a verifier builds it."""
    body: dict[str, Any] = {
        "spec": CHECKPOINT_SPEC,
        "tenantId": tenant_id,
        "environment": environment,
        "customerId": customer_id,
        "period": period,
        "treeSize": tree_size,
        "root": root,
        "openingBalance": format_amount(opening_balance),
        "credits": format_amount(credits),
        "debits": format_amount(debits),
        "closingBalance": format_amount(opening_balance + credits + debits),
        "version": version,
    }
    if previous:
        body["previous"] = previous
    if supersedes:
        body["supersedes"] = supersedes
    return body


def body_text() -> pl.Expr:
    """The JCS text of each row's body (columns: KEY, tree_size, root, the balances, previous,
    supersedes, version)."""
    optional = {
        name: pl.when(pl.col(name).is_not_null())
        .then(pl.concat_str(pl.lit(f',"{name}":"'), pl.col(name), pl.lit('"')))
        .otherwise(pl.lit(""))
        for name in ("previous", "supersedes")
    }
    return pl.concat_str(
        pl.lit('{"closingBalance":"'),
        canonical_amount(pl.col("closing_balance")),
        pl.lit('","credits":"'),
        canonical_amount(pl.col("credits")),
        pl.lit('","customerId":"'),
        pl.col("customer_id"),
        pl.lit('","debits":"'),
        canonical_amount(pl.col("debits")),
        pl.lit('","environment":"'),
        pl.col("environment"),
        pl.lit('","openingBalance":"'),
        canonical_amount(pl.col("opening_balance")),
        pl.lit('","period":"'),
        pl.col("period"),
        pl.lit('"'),
        optional["previous"],
        pl.lit(',"root":"'),
        pl.col("root"),
        pl.lit(f'","spec":"{CHECKPOINT_SPEC}"'),
        optional["supersedes"],
        pl.lit(',"tenantId":"'),
        pl.col("tenant_id"),
        pl.lit('","treeSize":'),
        pl.col("tree_size").cast(pl.String),
        pl.lit(',"version":'),
        pl.col("version").cast(pl.String),
        pl.lit("}"),
    )


def checkpoint_versions(candidates: pl.DataFrame) -> pl.DataFrame:
    """Decide every candidate period: keep its latest version, or make the next one.

    `candidates` holds every period to consider of whole customers (from the first period on,
    so the chain can be followed): KEY, `tree_size`, `root` (hex, null where it was not
    recomputed), the summary balances, and the latest version's `latest_*` columns (null when
    there is none). Returns one row per candidate with `version`, `fingerprint`, `previous`,
    `is_new`, and for new versions `body`, `supersedes`, `checkpoint_id`.
    """
    if candidates.is_empty():
        return candidates.with_columns(
            version=pl.lit(None, pl.Int32),
            fingerprint=pl.lit(None, pl.String),
            previous=pl.lit(None, pl.String),
            is_new=pl.lit(None, pl.Boolean),
            body=pl.lit(None, pl.String),
            supersedes=pl.lit(None, pl.String),
            checkpoint_id=pl.lit(None, pl.String),
        )
    same_tree = pl.col("tree_size") == pl.col("latest_tree_size")
    ranked = candidates.sort(KEY).with_columns(
        root=pl.coalesce(
            pl.col("root"),
            pl.when(same_tree).then(pl.col("latest_root")),
            pl.when(pl.col("tree_size") == 0).then(pl.lit(EMPTY_ROOT_HEX)),
        ),
        closing_balance=(pl.col("opening_balance") + pl.col("credits") + pl.col("debits")).cast(
            SUM_DTYPE
        ),
        _step=pl.int_range(pl.len()).over(CUSTOMER),
    )
    missing = ranked.filter(pl.col("root").is_null())
    if missing.height:
        raise ValueError(
            f"{missing.height} candidate trees have no root, e.g. {missing.select(KEY).row(0)}"
        )
    decided: list[pl.DataFrame] = []
    previous = pl.DataFrame(schema={**{c: pl.String for c in CUSTOMER}, "previous": pl.String})
    for step in range(int(ranked["_step"].max()) + 1):  # type: ignore[arg-type]
        rows = ranked.filter(pl.col("_step") == step).join(previous, on=CUSTOMER, how="left")
        rows = _decide(rows)
        decided.append(rows)
        previous = rows.select(*CUSTOMER, previous=pl.col("fingerprint"))
    return pl.concat(decided).sort(KEY).drop("_step")


def _decide(rows: pl.DataFrame) -> pl.DataFrame:
    unchanged = pl.col("latest_fingerprint").is_not_null() & pl.col("previous").eq_missing(
        pl.col("latest_previous")
    )
    for name in _COMPARED:
        unchanged = unchanged & (pl.col(name) == pl.col(f"latest_{name}")).fill_null(False)
    decided = rows.with_columns(is_new=~unchanged).with_columns(
        version=pl.when(pl.col("is_new"))
        .then(pl.col("latest_version").fill_null(0) + 1)
        .otherwise(pl.col("latest_version"))
        .cast(pl.Int32),
        supersedes=pl.when(pl.col("is_new")).then(pl.col("latest_fingerprint")),
    )
    body = pl.when(pl.col("is_new")).then(body_text())
    return (
        decided.with_columns(body=body)
        .with_columns(
            fingerprint=pl.when(pl.col("is_new"))
            .then(pl.col("body").chash.sha2_256())
            .otherwise(pl.col("latest_fingerprint")),
        )
        .with_columns(
            checkpoint_id=pl.when(pl.col("is_new")).then(
                pl.lit("chk_") + pl.col("fingerprint").str.slice(0, 24)
            ),
        )
    )
