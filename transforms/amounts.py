"""Exact decimal amounts and their canonical text (SPEC sections 2 and 3).

Amounts never touch floating point. The text is checked against the SPEC's grammar by one
regular expression and parsed by Polars' decimal parser (digits, not a float) into
Decimal(18, 6); sums are Decimal(38, 6). Arrow, DuckDB and Parquet all hold both exactly.
"""

from __future__ import annotations

import re
from decimal import Decimal

import polars as pl

# optional '-', digits, optional '.' and 1-6 digits (SPEC section 2)
AMOUNT_PATTERN = r"^-?[0-9]+(\.[0-9]{1,6})?$"
# What people send instead, named in the error message.
EXPONENT_PATTERN = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][+-]?[0-9]+$"
TOO_MANY_DECIMALS_PATTERN = r"^-?[0-9]+\.[0-9]{7,}$"

MAX_ABS_AMOUNT = Decimal(1_000_000_000)
AMOUNT_DTYPE = pl.Decimal(18, 6)
SUM_DTYPE = pl.Decimal(38, 6)


def amount_decimal(text: pl.Expr) -> pl.Expr:
    """Decimal(18, 6) of an amount text that matches `AMOUNT_PATTERN`; null for any other text.

    Texts of the right shape but too large for 12 integer digits come out null as well; callers
    that need to tell them apart test the pattern separately.
    """
    return pl.when(text.str.contains(AMOUNT_PATTERN)).then(text.cast(AMOUNT_DTYPE, strict=False))


def canonical_amount(amount: pl.Expr) -> pl.Expr:
    """The shortest plain decimal of a Decimal column: "-12.5", "3", "0.000001", "0"."""
    fixed = amount.cast(pl.String)  # always the scale's digits: "-12.500000"
    return (
        pl.when(fixed.str.contains(".", literal=True))
        .then(fixed.str.strip_chars_end("0").str.strip_chars_end("."))
        .otherwise(fixed)
    )


def format_amount(amount: Decimal | int) -> str:
    """`canonical_amount` of one value (bodies, receipts, tests)."""
    text = format(Decimal(amount).normalize(), "f")
    return "0" if text in ("-0", "0") else text


def parse_amount(text: str) -> Decimal:
    """The exact value of one amount text that matches `AMOUNT_PATTERN`; ValueError otherwise."""
    if not re.fullmatch(AMOUNT_PATTERN, text):
        raise ValueError(f"not an exact decimal amount: {text!r}")
    return Decimal(text)
