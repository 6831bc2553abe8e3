"""Validation and canonical form of the optional `metadata` object (SPEC section 2).

A JSON object of at most 50 string keys (1-40 characters) to string values (at most 500
characters); duplicate keys are refused (JCS could not canonicalise them). The canonical form is
the JCS text of the object, or null when the object is empty (SPEC section 3 leaves it out).

JSON has to be parsed, and Polars cannot parse a column that holds invalid documents, so this is
the one check that calls Python per value: per *distinct* value, which in ledgers is a small set
(plans, regions, sources), so the happy path stays vectorised in effect.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from transforms.jcs import canonical_text

MAX_KEYS = 50
MAX_KEY_CHARS = 40
MAX_VALUE_CHARS = 500

METADATA_DTYPE = pl.Struct({"canonical": pl.String, "error": pl.String})


class _DuplicateKey(ValueError):
    pass


def _object_without_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(key)
        seen[key] = value
    return seen


def check_metadata(text: str) -> tuple[str | None, str | None]:
    """(canonical JCS text or None when empty, error message or None) of one metadata text."""
    try:
        value = json.loads(text, object_pairs_hook=_object_without_duplicates)
    except _DuplicateKey as dup:
        return None, f"duplicate key {str(dup)[:40]!r}"
    except (ValueError, RecursionError):
        return None, "is not valid JSON"
    if not isinstance(value, dict):
        return None, f"must be a JSON object, not {_json_kind(value)}"
    if len(value) > MAX_KEYS:
        return None, f"has {len(value)} keys (at most {MAX_KEYS})"
    for key, item in value.items():
        if not 1 <= len(key) <= MAX_KEY_CHARS:
            return None, f"key {key[:40]!r} must be 1-{MAX_KEY_CHARS} characters"
        if not isinstance(item, str):
            return None, f"value of {key!r} must be a string, not {_json_kind(item)}"
        if len(item) > MAX_VALUE_CHARS:
            return None, f"value of {key!r} is longer than {MAX_VALUE_CHARS} characters"
    if not value:
        return None, None
    canonical = canonical_text(value)
    try:
        canonical.encode("utf-8")
    except UnicodeEncodeError:
        return None, "holds a lone surrogate (not valid Unicode)"
    return canonical, None


def _json_kind(value: object) -> str:
    """JSON's name for the kind of a parsed value (a sender knows JSON, not Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def check_metadata_series(texts: pl.Series) -> pl.Series:
    """`check_metadata` of every value, computed once per distinct value."""
    distinct = texts.drop_nulls().unique()
    results = [check_metadata(t) for t in distinct.to_list()]
    lookup = pl.DataFrame(
        {
            "text": distinct,
            "canonical": [r[0] for r in results],
            "error": [r[1] for r in results],
        },
        schema={"text": pl.String, "canonical": pl.String, "error": pl.String},
    )
    joined = (
        pl.DataFrame({"text": texts}, schema={"text": pl.String})
        .join(lookup, on="text", how="left", maintain_order="left")
        .select(pl.struct("canonical", "error").alias(texts.name))
    )
    return joined.to_series()


def metadata_check(text: pl.Expr) -> pl.Expr:
    """Struct {canonical, error} per row; both null where the metadata is absent."""
    return text.map_batches(check_metadata_series, return_dtype=METADATA_DTYPE)
