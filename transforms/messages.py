"""Message templates as Polars expressions.

`message("delta '{}' is {}", a, b)` is `pl.format` built from `pl.concat_str`. Polars 2.1's
`pl.format` panics ("assertion failed: i < self.len()") when its template starts with literal
text and the frame is a filtered multi-chunk one, which is exactly what ingest batches are;
`concat_str` does not. Nulls propagate as with `pl.format`.
"""

from __future__ import annotations

import polars as pl


def message(template: str, *values: pl.Expr | str | int) -> pl.Expr:
    pieces = template.split("{}")
    if len(pieces) != len(values) + 1:
        raise ValueError(f"template {template!r} has {len(pieces) - 1} slots, got {len(values)}")
    parts: list[pl.Expr] = []
    for piece, value in zip(pieces, [*values, None], strict=True):
        if piece:
            parts.append(pl.lit(piece))
        if value is not None:
            parts.append((value if isinstance(value, pl.Expr) else pl.lit(value)).cast(pl.String))
    return pl.concat_str(parts)
