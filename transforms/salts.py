"""Leaf salts: HMAC-SHA256(key, tenantId "\\n" environment "\\n" deltaId), vectorised.

polars-hash's own `hmac_sha256` takes the key as text, but the operator's key may be 32 random
bytes that are not UTF-8, so HMAC (RFC 2104) is spelled out here over SHA-256 of binary columns:
two vectorised hashes per salt, no Python per row. `tests/transforms/test_salts.py` checks it
against the standard library's `hmac`.
"""

from __future__ import annotations

import hashlib
import hmac

import polars as pl
import polars_hash  # noqa: F401  (registers the `chash` expression namespace)

_BLOCK = 64


def _padded_key(key: bytes) -> bytes:
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    return key.ljust(_BLOCK, b"\0")


def salt(key: bytes, tenant_id: str, environment: str, delta_id: str) -> str:
    """One salt, with the standard library (reference and small paths)."""
    message = f"{tenant_id}\n{environment}\n{delta_id}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def salt_expr(key: bytes, tenant_id: pl.Expr, environment: pl.Expr, delta_id: pl.Expr) -> pl.Expr:
    """Lowercase hex salt of every row."""
    padded = _padded_key(key)
    inner_pad = bytes(b ^ 0x36 for b in padded)
    outer_pad = bytes(b ^ 0x5C for b in padded)
    message = pl.concat_str(tenant_id, pl.lit("\n"), environment, pl.lit("\n"), delta_id)
    # Binary columns concatenate with `+`; polars-hash answers in hex, so the inner digest is
    # decoded once to bytes before the outer hash.
    inner = (pl.lit(inner_pad) + message.cast(pl.Binary)).chash.sha2_256().str.decode("hex")
    return (pl.lit(outer_pad) + inner).chash.sha2_256()
