"""RFC 8785 JSON Canonicalization Scheme, for the documents tallyproof hashes and signs.

Written by hand rather than taken from the `rfc8785` package for two reasons: leaf bytes are built
column-wise (`json_string` below is a Polars expression, not a per-row call), and the package's
per-call overhead is measurable on millions of bodies. The tests check both against `rfc8785`
byte for byte. Only the JSON this project produces is supported: objects, arrays, strings,
integers, booleans and null (no floating point, which JCS would serialise as ECMAScript does).
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

# JSON.stringify escapes exactly these: the two specials and the C0 controls, short forms where
# they exist, otherwise \u00xx in lowercase hex. Everything else is written raw as UTF-8.
_SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}
_ESCAPES = {chr(c): _SHORT_ESCAPES.get(chr(c), f"\\u{c:04x}") for c in range(0x20)}
_ESCAPES.update(_SHORT_ESCAPES)

MAX_SAFE_INTEGER = 2**53 - 1


def utf16_key(key: str) -> bytes:
    """Sort key ordering strings by UTF-16 code units, as RFC 8785 section 3.2.3 requires."""
    return key.encode("utf-16-be", "surrogatepass")


def canonicalize(value: Any) -> bytes:
    """UTF-8 bytes of the JCS form of `value`."""
    return _encode(value).encode("utf-8")


def canonical_text(value: Any) -> str:
    return _encode(value)


def _encode(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"integer {value} is outside the interoperable JSON range")
        return str(value)
    if isinstance(value, str):
        # json.dumps with ensure_ascii=False escapes the same set as JSON.stringify.
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        items = sorted(value.items(), key=lambda kv: utf16_key(kv[0]))
        return "{" + ",".join(f"{_encode(k)}:{_encode(v)}" for k, v in items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_encode(v) for v in value) + "]"
    raise TypeError(f"JCS: unsupported type {type(value).__name__}")


def json_string(text: pl.Expr) -> pl.Expr:
    """The JSON string literal of each value (quotes included), escaped as JCS requires."""
    escaped = text.str.replace_many(list(_ESCAPES), list(_ESCAPES.values()))
    return pl.concat_str(pl.lit('"'), escaped, pl.lit('"'))
