"""Verification packages (SPEC section 5): a signed, sampled, offline-checkable slice of a
checkpoint, and the checks an outsider runs on one."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from decimal import Decimal
from typing import Any

import duckdb
import polars as pl

from flows import clock
from flows.errors import InvalidRequestError, UnprocessableError
from flows.fingerprints import Customer
from flows.receipts import checkpoint_document, latest_checkpoint
from flows.signing import SigningKey, sign_claims
from flows.storage import Location
from flows.verify import Checks, Verifier
from flows.warehouse import query_frame
from transforms import merkle
from transforms.jcs import canonicalize
from transforms.leaves import leaf_object, leaf_text
from transforms.paths import path_segment
from transforms.period_roots import leaf_hashes
from transforms.sampling import METHOD, sample_indices, sample_seed

PACKAGE_SPEC = "tallyproof/verification-package/v1"
MAX_SAMPLE = 1000
MAX_CHAIN = 100


PACKAGE_ID = re.compile(r"vpk_[a-z2-7]{25}[aeimquy4]")  # 128 bits: the last character holds 3


def new_package_id() -> str:
    """`vpk_` and 128 random bits in lowercase base32 (26 characters)."""
    return "vpk_" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


def build_package(
    con: duckdb.DuckDBPyConnection,
    customer: Customer,
    period: str,
    *,
    sample_size: int,
    key: SigningKey,
    nonce: str | None = None,
    chain_length: int = 1,
) -> dict[str, Any]:
    """A signed verification package of the customer's latest checkpoint of `period`."""
    if not 1 <= sample_size <= MAX_SAMPLE:
        raise InvalidRequestError("sampleSize", f"sampleSize must be 1 to {MAX_SAMPLE}")
    if not 0 <= chain_length <= MAX_CHAIN:
        raise InvalidRequestError("chainLength", f"chainLength must be 0 to {MAX_CHAIN}")
    if nonce is not None and not 1 <= len(nonce) <= 256:
        raise InvalidRequestError("nonce", "nonce must be 1 to 256 characters")
    latest = latest_checkpoint(con, customer, period)
    body = json.loads(latest["body"])
    population = body["treeSize"]
    if population == 0:
        raise UnprocessableError(
            f"{customer.customer_id!r} has no verified deltas in {period}: "
            "an empty tree cannot be sampled",
            details={"period": period},
        )
    nonce = nonce if nonce is not None else secrets.token_hex(16)
    seed = sample_seed(latest["fingerprint"], nonce)
    indices = sample_indices(seed, population, sample_size)

    rows = query_frame(con, "select_customer_leaves", customer.params(period))
    rows = rows.filter(pl.col("leaf_index") < population).with_columns(
        pl.col("occurred_at_utc").dt.replace_time_zone("UTC")
    )
    hashes = leaf_hashes(leaf_text(rows.lazy()))["leaf_hash"].to_list()
    tree = merkle.MerkleTree(hashes)
    by_index = {
        row["leaf_index"]: row
        for row in rows.filter(pl.col("leaf_index").is_in(indices)).to_dicts()
    }
    entries = [
        {
            "index": i,
            "leaf": leaf_object(by_index[i]),
            "leafHash": hashes[i].hex(),
            "proof": [h.hex() for h in tree.inclusion_path(i)],
        }
        for i in indices
    ]
    package = {
        "spec": PACKAGE_SPEC,
        "packageId": new_package_id(),
        "createdAt": clock.now_text(),
        "checkpoint": {k: v for k, v in checkpoint_document(latest).items() if k != "checkpointId"},
        "chain": _chain(con, body.get("previous"), chain_length),
        "sample": {
            "method": METHOD,
            "population": population,
            "size": sample_size,
            "nonce": nonce,
            "seed": seed.hex(),
        },
        "entries": entries,
    }
    digest = hashlib.sha256(canonicalize(package)).hexdigest()
    package["signature"] = sign_claims(key, {"sub": package["packageId"], "digest": digest})
    return package


def _chain(
    con: duckdb.DuckDBPyConnection, previous: str | None, length: int
) -> list[dict[str, Any]]:
    chain = []
    while previous and len(chain) < length:
        row = query_frame(con, "select_checkpoint_by_fingerprint", {"fingerprint": previous})
        if row.is_empty():
            break
        document = checkpoint_document(row.row(0, named=True))
        chain.append({k: v for k, v in document.items() if k != "checkpointId"})
        previous = document["body"].get("previous")
    return chain


def package_path(customer: Customer, package_id: str) -> str:
    return "/".join(
        [
            "packages",
            path_segment(customer.tenant_id),
            path_segment(customer.environment),
            path_segment(customer.customer_id),
            f"{path_segment(package_id)}.json",
        ]
    )


def store_package(location: Location, customer: Customer, package: dict[str, Any]) -> str:
    path = package_path(customer, package["packageId"])
    location.write_bytes(path, (json.dumps(package, ensure_ascii=False, indent=1) + "\n").encode())
    return path


# --- verification ----------------------------------------------------------------------------


def verify_package(verifier: Verifier, package: dict[str, Any]) -> Checks:
    """Every check of SPEC section 5, each reported with what it compared."""
    checks = Checks()
    unsigned = {k: v for k, v in package.items() if k != "signature"}
    digest = hashlib.sha256(canonicalize(unsigned)).hexdigest()
    verifier.signature(
        checks,
        "package",
        package.get("signature"),
        {"sub": package.get("packageId"), "digest": digest},
    )
    checks.add("package: spec", package.get("spec") == PACKAGE_SPEC, str(package.get("spec")))
    package_id = package.get("packageId")
    checks.add(
        "package: packageId",
        isinstance(package_id, str) and PACKAGE_ID.fullmatch(package_id) is not None,
        f"{package_id!r} is vpk_ and 26 lowercase base32 characters (128 bits)",
    )
    checkpoint = package.get("checkpoint") or {}
    body = checkpoint.get("body") or {}
    verifier.checkpoint(checks, "checkpoint", checkpoint)
    _verify_sample(checks, package, checkpoint)
    _verify_entries(checks, verifier, package, body)
    _verify_chain(checks, verifier, package, body)
    return checks


def _verify_sample(checks: Checks, package: dict[str, Any], checkpoint: dict[str, Any]) -> None:
    sample = package.get("sample") or {}
    body = checkpoint.get("body") or {}
    nonce, population, size = sample.get("nonce"), sample.get("population"), sample.get("size")
    if (
        sample.get("method") != METHOD
        or not isinstance(nonce, str)
        or not isinstance(population, int)
        or not isinstance(size, int)
    ):
        checks.add(
            "sample",
            False,
            f"method {sample.get('method')!r} with nonce, population and size is required",
        )
        return
    seed = sample_seed(str(checkpoint.get("fingerprint")), nonce)
    checks.add(
        "sample: seed",
        sample.get("seed") == seed.hex(),
        f"SHA-256 of the fingerprint and nonce is {seed.hex()}",
    )
    checks.add(
        "sample: population",
        population == body.get("treeSize"),
        f"population {population}, treeSize {body.get('treeSize')}",
    )
    if population <= 0 or not 1 <= size <= MAX_SAMPLE:
        checks.add("sample: indices", False, f"cannot sample {size} of {population}")
        return
    expected = sample_indices(seed, population, size)
    got = [e.get("index") for e in package.get("entries") or []]
    checks.add(
        "sample: indices",
        got == expected,
        "the entries are exactly the indices the seed selects"
        if got == expected
        else f"entries {got[:10]}, the seed selects {expected[:10]}",
    )


def _verify_entries(
    checks: Checks, verifier: Verifier, package: dict[str, Any], body: dict[str, Any]
) -> None:
    entries = package.get("entries") or []
    leaves = [e.get("leaf") or {} for e in entries]
    verifier.leaves_name_the_tree(checks, body, leaves, [e.get("index") for e in entries])
    root = (
        bytes.fromhex(body["root"])
        if isinstance(body.get("root"), str) and len(body["root"]) == 64
        else b""
    )
    for entry in entries:
        index = entry.get("index")
        label = f"entry {index}"
        try:
            leaf_hash = merkle.leaf_hash(canonicalize(entry.get("leaf")))
        except (TypeError, ValueError) as err:
            checks.add(f"{label}: leaf", False, f"not canonicalisable ({err})")
            continue
        if entry.get("leafHash") != leaf_hash.hex():
            checks.add(f"{label}: leafHash", False, f"the leaf hashes to {leaf_hash.hex()}")
            continue
        try:
            proof = [bytes.fromhex(h) for h in entry.get("proof") or []]
            merkle.verify_inclusion(
                int(index), int(body.get("treeSize", 0)), leaf_hash, proof, root
            )
            checks.add(f"{label}: proof", True, "leads to the checkpoint root")
        except (merkle.ProofError, ValueError, TypeError) as err:
            checks.add(f"{label}: proof", False, str(err))


def _verify_chain(
    checks: Checks, verifier: Verifier, package: dict[str, Any], body: dict[str, Any]
) -> None:
    newer = body
    for position, link in enumerate(package.get("chain") or []):
        label = f"chain[{position}]"
        verifier.checkpoint(checks, label, link)
        older = link.get("body") or {}
        scope = ("tenantId", "environment", "customerId")
        checks.add(
            f"{label}: links",
            newer.get("previous") == link.get("fingerprint")
            and all(older.get(k) == body.get(k) for k in scope)
            and str(older.get("period", "")) < str(newer.get("period", "")),
            "the checkpoint after it names it as previous",
        )
        try:
            agree = Decimal(newer["openingBalance"]) == Decimal(older["closingBalance"])
        except (KeyError, TypeError, ArithmeticError):
            agree = False
        checks.add(
            f"{label}: balances",
            agree,
            f"opening {newer.get('openingBalance')} of {newer.get('period')} and closing "
            f"{older.get('closingBalance')} of {older.get('period')}",
        )
        newer = older
