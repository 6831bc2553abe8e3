"""CSV text as Polars expressions (SPEC section 6): UTF-8, a header row, RFC 4180 quoting and
CRLF line ends, and a formula guard on text cells.

Built by hand rather than with `DataFrame.write_csv` because exports are a million small files
(one per customer and period): one vectorised pass makes every line, then lines are joined per
file, where a `write_csv` call per file would cost a planning round trip each. The tests parse
the output back with Python's csv module.

A *text* cell (identifiers, reasons, references, metadata, messages, raw rows) that starts with
`=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'` so that a spreadsheet shows it
instead of running it. Numbers, decimals, timestamps and hashes are not text cells: a debit stays
`-12.5`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

CRLF = "\r\n"
_FORMULA_START = r"^[=+\-@\t\r]"


@dataclass(frozen=True)
class Column:
    name: str  # the CSV header
    value: pl.Expr  # a String expression (null for an empty cell)
    text: bool = False  # apply the formula guard


def guarded(text: pl.Expr) -> pl.Expr:
    return pl.when(text.str.contains(_FORMULA_START)).then(pl.lit("'") + text).otherwise(text)


def quoted(text: pl.Expr) -> pl.Expr:
    """RFC 4180: a field with a comma, quote, CR or LF is quoted, quotes doubled."""
    needs = text.str.contains(r'[,"\r\n]')
    return (
        pl.when(needs)
        .then(
            pl.concat_str(pl.lit('"'), text.str.replace_all('"', '""', literal=True), pl.lit('"'))
        )
        .otherwise(text)
    )


def csv_line(columns: Sequence[Column]) -> pl.Expr:
    """One CSV record per row, without its line end."""
    cells = [quoted(guarded(c.value) if c.text else c.value).fill_null(pl.lit("")) for c in columns]
    return pl.concat_str(cells, separator=",")


def csv_header(columns: Sequence[Column]) -> str:
    return ",".join(c.name for c in columns) + CRLF
