"""Amount rules and canonical text (SPEC sections 2 and 3): the edge cases by name."""

from __future__ import annotations

from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from transforms.amounts import amount_decimal, canonical_amount, format_amount
from transforms.validate import LANDING_SCHEMA, validated_rows

GOOD = {
    "100.00": "100",  # trailing zeros
    "-12.5": "-12.5",
    "007": "7",  # leading zeros
    "-0007.250": "-7.25",
    "0.000001": "0.000001",  # six decimal places, the smallest amount
    "-0.000001": "-0.000001",
    "1000000000": "1000000000",  # the upper bound itself
    "-1000000000": "-1000000000",
    "999999999.999999": "999999999.999999",
    "00000000000000000001": "1",  # many leading zeros are still a small number
}
BAD = {
    "1e5": "INVALID_AMOUNT",  # exponent notation
    "1.5E3": "INVALID_AMOUNT",
    "1.1234567": "INVALID_AMOUNT",  # seven decimal places
    "+5": "INVALID_AMOUNT",
    ".5": "INVALID_AMOUNT",
    "5.": "INVALID_AMOUNT",
    "1,50": "INVALID_AMOUNT",
    " 5": "INVALID_AMOUNT",
    "0": "ZERO_AMOUNT",
    "-0.000": "ZERO_AMOUNT",
    "1000000000.000001": "AMOUNT_OUT_OF_RANGE",  # just above the bound
    "-1000000000.000001": "AMOUNT_OUT_OF_RANGE",
    "12345678901234567890": "AMOUNT_OUT_OF_RANGE",  # far beyond, and beyond Decimal(18, 6)
    "": "MISSING_FIELD",
}


def landing(amounts: list[str | None], amount_type: str | None = None) -> pl.LazyFrame:
    rows = [
        {
            "_file": "f.csv",
            "_file_order": 0,
            "_line": i + 2,
            "_amount_type": amount_type,
            "tenant_id": "acme",
            "environment": "production",
            "delta_id": f"d{i}",
            "customer_id": "c1",
            "amount": amount,
            "reason": "r",
            "status": "verified",
            "occurred_at": "2026-03-01T00:00:00Z",
        }
        for i, amount in enumerate(amounts)
    ]
    return pl.DataFrame(rows, schema=LANDING_SCHEMA).lazy()


@pytest.mark.parametrize(("text", "canonical"), GOOD.items())
def test_good_amounts_are_exact_and_canonical(text: str, canonical: str) -> None:
    row = validated_rows(landing([text])).collect().row(0, named=True)
    assert row["_code"] is None
    assert row["amount"] == Decimal(canonical)
    out = pl.select(canonical_amount(pl.lit(row["amount"], pl.Decimal(18, 6)))).item()
    assert out == canonical


@pytest.mark.parametrize(("text", "code"), BAD.items())
def test_bad_amounts_are_refused_with_their_code(text: str, code: str) -> None:
    row = validated_rows(landing([text])).collect().row(0, named=True)
    assert row["_code"] == code
    assert row["_field"] == "amount"
    assert "f.csv line 2" in row["_message"]


def test_exponent_message_says_why() -> None:
    row = validated_rows(landing(["1e5"])).collect().row(0, named=True)
    assert "exponent" in row["_message"]


def test_json_floats_are_refused_even_when_they_look_exact() -> None:
    # {"amount": 12.5} in JSONL: the reader marks the JSON type, the rule refuses it.
    row = validated_rows(landing(["12.5"], amount_type="float")).collect().row(0, named=True)
    assert row["_code"] == "INVALID_AMOUNT"
    assert "floats lose cents" in row["_message"]


def test_json_integers_are_accepted() -> None:
    row = validated_rows(landing(["-15"], amount_type="integer")).collect().row(0, named=True)
    assert row["_code"] is None and row["amount"] == Decimal(-15)


@given(
    st.decimals(
        min_value=Decimal("-1000000000"),
        max_value=Decimal("1000000000"),
        places=6,
        allow_nan=False,
        allow_infinity=False,
    )
)
def test_canonical_text_round_trips(value: Decimal) -> None:
    text = format_amount(value)
    assert Decimal(text) == value
    assert "e" not in text.lower() and not text.startswith("+")
    if "." in text:
        assert not text.endswith("0") and not text.endswith(".")
    vectorised = pl.select(canonical_amount(amount_decimal(pl.lit(f"{value:f}")))).item()
    assert vectorised == text
